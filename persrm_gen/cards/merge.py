"""Regenerating a card without losing what the user wrote.

A card is ``---\\n<yaml>\\n---\\n<body>``. The body's generated parts sit between
``<!-- persrm-gen:begin NAME -->`` and ``<!-- persrm-gen:end NAME -->``; only those are
replaced. A trailing ``<!-- persrm-gen:state {...} -->`` comment records what the
generator wrote last time (its defaults for user-owned YAML keys and its section names),
which turns regeneration into a three-way merge: a value that differs from what we
wrote is a user edit and stays; a section we wrote that is now gone was deleted by the
user and stays deleted; a section we never wrote before (a newer persrm-gen) is added.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from persrm_gen.userfiles import read_text

# Refreshed on every build: they describe the files, not the user's intent.
MACHINE_KEYS = ("configs", "dataset_info", "size_categories")
UNION_KEYS = ("tags",)

SECTION_RE = re.compile(
    r"<!-- persrm-gen:begin (?P<name>[\w-]+) -->.*?<!-- persrm-gen:end (?P=name) -->\n?", re.S
)
STATE_RE = re.compile(r"\n*<!-- persrm-gen:state (?P<json>\{.*?\}) -->\n?", re.S)
FRONT_RE = re.compile(r"\A---[ \t]*\r?\n(?P<yaml>.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)


@dataclass
class Card:
    meta: dict
    body: str
    state: dict = field(default_factory=dict)


def read_card(path: Path) -> str | None:
    """The README.md a card is merged into, or None when there is none. It is the user's
    file: a non-UTF-8 one (or a folder, a FIFO) is an InputError with ``FILE:LINE``, raised
    by the build before any work so that nothing is written."""
    if not os.path.lexists(path):
        return None
    return read_text(path)


def parse_card(text: str) -> Card:
    """Split a README into YAML, body and our state comment. Bad YAML counts as body."""
    meta: dict = {}
    body = text
    m = FRONT_RE.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group("yaml")) or {}
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict):
            meta, body = loaded, text[m.end():]
    state: dict = {}
    s = STATE_RE.search(body)
    if s:
        try:
            state = json.loads(s.group("json"))
        except json.JSONDecodeError:
            state = {}
        body = body[: s.start()] + body[s.end():]
    return Card(meta, body, state if isinstance(state, dict) else {})


def state_comment(state: dict) -> str:
    # '>' escaped so that no value can close the HTML comment early.
    text = json.dumps(state, sort_keys=True, ensure_ascii=True).replace(">", "\\u003e")
    return f"<!-- persrm-gen:state {text} -->\n"


def dump_card(meta: dict, body: str, state: dict) -> str:
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return f"---\n{front}---\n\n{body.strip()}\n\n{state_comment(state)}"


def merge_meta(fresh: dict, existing: dict, previous: dict | None) -> dict:
    """Machine keys from ``fresh``; elsewhere the user's value wins when it is an edit.

    ``previous`` is what we generated last time for the user-owned keys (None: the
    README was not ours, so every value in it is the user's).
    """
    out: dict = {}
    for key, value in fresh.items():
        if key in MACHINE_KEYS or key not in existing:
            out[key] = value
        elif key in UNION_KEYS:
            mine = existing[key] if isinstance(existing[key], list) else [existing[key]]
            out[key] = mine + [v for v in value if v not in mine]
        elif previous is not None and existing[key] == previous.get(key):
            out[key] = value  # untouched since we wrote it: refresh
        else:
            out[key] = existing[key]
    for key, value in existing.items():
        if key not in out and key not in MACHINE_KEYS:
            out[key] = value
    return out


def sections(body: str) -> dict[str, str]:
    return {m.group("name"): m.group(0) for m in SECTION_RE.finditer(body)}


def merge_body(fresh: str, existing: str, previous_sections: list[str] | None) -> str:
    """Replace generated sections in ``existing``; keep everything the user wrote."""
    new = sections(fresh)
    merged = SECTION_RE.sub(lambda m: _ensure_nl(new.get(m.group("name"), m.group(0))), existing)
    present = set(sections(merged))
    deleted = set(previous_sections or []) - present
    order = list(new)
    for i, name in enumerate(order):
        if name in present or name in deleted:
            continue
        merged = _insert(merged, name, new[name], order[:i], order[i + 1:], present)
        present.add(name)
    return merged


def _insert(body: str, name: str, block: str, earlier: list[str], later: list[str], present: set) -> str:
    """Put a new section where the template has it: after the nearest earlier one we
    find, else before the nearest later one, else at the end."""
    found = sections(body)
    before = [n for n in earlier if n in present]
    after = [n for n in later if n in present]
    if before:
        anchor = found[before[-1]]
        at = body.index(anchor) + len(anchor)
        return body[:at] + "\n" + _ensure_nl(block) + body[at:]
    if after:
        at = body.index(found[after[0]])
        return body[:at] + _ensure_nl(block) + "\n" + body[at:]
    return body.rstrip() + ("\n\n" if body.strip() else "") + _ensure_nl(block)


def _ensure_nl(block: str) -> str:
    return block if block.endswith("\n") else block + "\n"

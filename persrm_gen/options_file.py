"""``--config FILE`` for every command, and the one place where options are merged.

One reader for ``build``, ``train sft|rft`` and ``eval``: a YAML or JSON mapping of option
names (``snake_case`` or ``kebab-case``) to values. Every defect names the file and the
line of its key: unreadable or non-UTF-8 text, a key that names no option (never silently
ignored), a key given twice.

:func:`load_options` merges the defaults, the file and the command line (which wins) and
lets the options class validate the result once, whatever the source of each value; a
value it refuses is reported where it came from: the flag, or the file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError

from persrm_gen.errors import InputError, InputIssue
from persrm_gen.userfiles import read_text

# The config of every options class: a value of the wrong type is refused, never guessed
# (``context_size: "2"``), as are NaN, infinities and unknown names.
STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")


@dataclass(frozen=True)
class OptionsFile:
    """A parsed ``--config`` file: its values and the line of each key."""

    path: Path
    values: dict[str, Any]
    lines: dict[str, int]


def read_options_file(path: Path, known: Collection[str]) -> OptionsFile:
    """The file's mapping with keys in ``snake_case``; every key must be in ``known``."""
    text = read_text(path)  # regular UTF-8 files only; FILE:LINE for bad bytes
    data, lines = _parse(path, text)
    if data is None:
        return OptionsFile(path, {}, {})
    if not isinstance(data, dict):
        raise InputError(InputIssue(str(path), 1, "expected a mapping of option names to values"))
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    # option names may be kebab-case; nested keys (model names under pricing) are data
    lines = {_snake_first(k): n for k, n in lines.items()}
    issues = [InputIssue(str(path), lines.get(k), f"{k}: unknown option{_suggest(k, known)}") for k in values if k not in known]
    if issues:
        raise InputError(issues)
    return OptionsFile(path, values, lines)


def _snake_first(dotted: str) -> str:
    head, dot, rest = dotted.partition(".")
    return head.replace("-", "_") + dot + rest


def _suggest(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(known))}"


def _parse(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    """The document and the line of each mapping key; a key given twice is an error."""
    import yaml  # only needed when a file is given

    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            try:  # JSON is YAML (tabs aside): its composer tells the lines the json module does not
                node = yaml.compose(text.replace("\t", " "), Loader=_yaml_loader())
            except yaml.YAMLError:
                node = None  # valid JSON all the same: errors will name the file without a line
            return data, _key_lines(path, node)
        loader = _yaml_loader()(text)
        try:
            node = loader.get_single_node()
            return (loader.construct_document(node) if node is not None else None), _key_lines(path, node)
        finally:
            loader.dispose()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - yaml and json raise different types; both mean "unreadable"
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        line = line + 1 if line is not None else getattr(exc, "lineno", None)
        # The parsers' own messages span lines; their one-line core is enough beside the line number.
        reason = getattr(exc, "problem", None) or getattr(exc, "msg", None) or str(exc)
        raise InputError(InputIssue(str(path), line, f"cannot parse: {' '.join(str(reason).split())}")) from None


def _key_lines(path: Path, node, prefix: str = "", seen: set[int] | None = None) -> dict[str, int]:
    """``{"seed": 3, "pricing": 4, "pricing.gpt-x": 5, ...}``: the line of every mapping key."""
    import yaml

    seen = set() if seen is None else seen
    if not isinstance(node, yaml.MappingNode) or id(node) in seen:  # an alias is walked once
        return {}
    seen.add(id(node))
    lines: dict[str, int] = {}
    for key, value in node.value:
        name, line = prefix + str(key.value), key.start_mark.line + 1
        if name in lines:
            raise InputError(InputIssue(str(path), line, f"{name}: duplicate option (first given on line {lines[name]})"))
        lines[name] = line
        lines.update(_key_lines(path, value, name + ".", seen))
    return lines


@functools.cache
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads ``1e-4`` as a number (YAML 1.2), not as the string YAML 1.1 makes it."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def load_options(cls: type, config_file: str | Path | None, cli: Mapping[str, Any], **fixed: Any):
    """The options ``cls``: its defaults, then ``--config FILE``, then the command line.

    ``cli`` holds the values given on the command line (``None``: not given); ``fixed``
    those the program sets itself (no file may set them). ``cls`` validates the merged
    values once; each value it refuses is reported with its flag, or its file and line.
    """
    values: dict[str, Any] = {}
    found = OptionsFile(Path(), {}, {})
    if config_file is not None:
        found = read_options_file(Path(config_file), {f.name for f in dataclasses.fields(cls)} - set(fixed))
        values.update(found.values)
    flags = {key for key, value in cli.items() if value is not None}
    values.update({key: cli[key] for key in flags})
    try:
        return cls(**values, **fixed)
    except ValidationError as exc:
        raise InputError(describe(exc, found, flags)) from None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe(exc: ValidationError, found: OptionsFile, flags: Collection[str]) -> list[InputIssue]:
    """One issue per refused option, named by its flag, or by its file and the line of the
    innermost key the error is about; never more than one per option."""
    issues: dict[str, InputIssue] = {}
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]] or [err.get("ctx", {}).get("field", "options")]
        key, label, message = loc[0], ".".join(loc), _message(err)
        if key in issues:
            continue
        if key in found.values and key not in flags:
            line = next((found.lines[p] for p in _prefixes(loc) if p in found.lines), None)
            issues[key] = InputIssue(str(found.path), line, f"{label}: {message}")
        else:
            issues[key] = InputIssue(flag(key), None, message if len(loc) == 1 else f"{label}: {message}")
    return sorted(issues.values(), key=lambda i: (i.path, i.line or 0))  # in file order


def _prefixes(loc: list[str]) -> list[str]:
    """``["pricing", "m", "output"]`` -> ``pricing.m.output``, ``pricing.m``, ``pricing``."""
    return [".".join(loc[:n]) for n in range(len(loc), 0, -1)]


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "option":  # ours: says what is wrong and never echoes the value (it may be a secret)
        return err["msg"]
    if err["type"] in ("missing", "missing_argument"):
        return "missing"
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return "unknown option"
    msg = err["msg"][:1].lower() + err["msg"][1:]
    value = err.get("input")
    if isinstance(value, (str, int, float)):
        shown = repr(value)
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return msg

"""Find things that look like credentials before they leave the machine.

Reports say *where* and *what kind*, never the value itself, so the refusal message
can be printed and logged safely.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("Anthropic API key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-\.=+/]{20,}")),
    (
        "credential assignment",
        re.compile(
            r"(?i)\b[\w-]*(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|password|passwd)"
            r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-\.+/=]{16,}"
        ),
    ),
]

ENV_SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True)
class SecretHit:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: looks like a secret ({self.kind})"


def _env_values(extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    out = []
    for name in (*ENV_SECRETS, *extra):
        value = os.environ.get(name, "")
        if len(value) >= 8:  # shorter values would match ordinary words
            out.append((f"value of ${name}", value))
    return out


def scan_text(text: str, path: str, *, extra_env: tuple[str, ...] = ()) -> list[SecretHit]:
    hits: list[SecretHit] = []
    env = _env_values(extra_env)
    for lineno, line in enumerate(text.splitlines(), start=1):
        for kind, value in env:
            if value in line:
                hits.append(SecretHit(path, lineno, kind))
        for kind, rx in PATTERNS:
            if rx.search(line):
                hits.append(SecretHit(path, lineno, kind))
                break  # one report per line is enough to refuse
    return hits


def scan_files(root: Path, rel_paths: list[str], *, extra_env: tuple[str, ...] = ()) -> list[SecretHit]:
    hits: list[SecretHit] = []
    for rel in rel_paths:
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        hits.extend(scan_text(text, rel, extra_env=extra_env))
    return hits

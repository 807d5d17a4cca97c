"""Find things that look like credentials before they leave the machine.

Reports say *where* and *what kind*, never the value itself, so the refusal message
can be printed and logged safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from persrm_gen.secrets import env_secret_values, find_secrets


@dataclass(frozen=True)
class SecretHit:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: looks like a secret ({self.kind})"


def scan_text(text: str, path: str, *, extra_env: tuple[str, ...] = ()) -> list[SecretHit]:
    hits: list[SecretHit] = []
    env = env_secret_values(extra_env)
    for lineno, line in enumerate(text.splitlines(), start=1):
        kinds = find_secrets(line, env)
        if kinds:
            hits.append(SecretHit(path, lineno, kinds[0]))  # one report per line is enough to refuse
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

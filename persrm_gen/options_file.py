"""``--config FILE`` for every command: a YAML or JSON mapping of option names to values.

One reader for ``build``, ``train sft|rft`` and ``eval``: errors name the file (and the
line, where the parser knows it); keys may be written ``snake_case`` or ``kebab-case``;
a key that names no option is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from persrm_gen.errors import InputError, InputIssue


def read_options_file(path: Path, known: Collection[str]) -> dict[str, Any]:
    """The file's mapping with keys in ``snake_case``; every key must be in ``known``."""
    if not path.is_file():
        raise InputError(InputIssue(str(path), None, "--config file not found"))
    text = _read_text(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # noqa: PLC0415 - only needed when a file is given

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise different types; both mean "unreadable"
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        line = line + 1 if line is not None else getattr(exc, "lineno", None)
        # The parsers' own messages span lines; their one-line core is enough beside the line number.
        reason = getattr(exc, "problem", None) or getattr(exc, "msg", None) or str(exc)
        raise InputError(InputIssue(str(path), line, f"cannot parse: {' '.join(str(reason).split())}")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(InputIssue(str(path), 1, "expected a mapping of option names to values"))
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(known))
    if unknown:
        lines = option_lines(path)
        raise InputError([InputIssue(str(path), lines.get(key), f"unknown option {key}{_suggest(key, known)}")
                          for key in unknown])  # fmt: skip
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(InputIssue(str(path), line, "not UTF-8 text")) from None


def _suggest(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(sorted(known))}"


def option_lines(path: Path) -> dict[str, int]:
    """Line of each key in an options file (``snake_case``; ``outer.inner`` one level down), for messages."""
    import yaml  # noqa: PLC0415

    try:
        root = yaml.compose(_read_text(path))  # JSON parses as YAML too
    except (InputError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        name = str(key.value).replace("-", "_")
        lines.setdefault(name, key.start_mark.line + 1)
        for inner, _ in value.value if isinstance(value, yaml.MappingNode) else ():
            lines.setdefault(f"{name}.{inner.value}", inner.start_mark.line + 1)
    return lines

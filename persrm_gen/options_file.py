"""``--config FILE`` for every command: a YAML or JSON mapping of option names to values.

One reader for ``build``, ``train sft|rft`` and ``eval``: errors name the file (and the
line, where the parser knows it); keys may be written ``snake_case`` or ``kebab-case``;
a key that names no option is an error, never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from persrm_gen.errors import InputError, InputIssue


def read_options_file(path: Path, known: Collection[str]) -> dict[str, Any]:
    """The file's mapping with keys in ``snake_case``; every key must be in ``known``."""
    if not path.is_file():
        raise InputError(InputIssue(str(path), None, "--config file not found"))
    text = path.read_text(encoding="utf-8")
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
        raise InputError(
            InputIssue(str(path), None, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        )
    return data

"""``persrm-gen build --config FILE``: defaults for any build option, plus the price table.

A YAML or JSON mapping whose keys are build option names (``context_size``,
``negatives``, ``concurrency`` ...) and optionally ``pricing: {model: {input, output}}``
(USD per 1M tokens). Options given on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import yaml

from persrm_gen.errors import InputError, InputIssue

_TUPLES = {"negatives", "axes", "language"}
_PATHS = {"authors", "out", "prompts_dir"}


def load_config(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(InputIssue(str(path), None, "config file not found")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(InputIssue(str(path), mark.line + 1 if mark else None, f"invalid YAML/JSON ({exc})")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(InputIssue(str(path), 1, "the config must be a mapping of option names to values"))
    return data


def apply_config(opts, path: Path, from_cli: Callable[[str], bool]) -> None:
    """Set every option the file names unless the command line gave it; store ``pricing``."""
    data = load_config(path)
    fields = {f.name for f in dataclasses.fields(opts)} - {"command", "extra"}
    unknown = sorted(set(data) - fields - {"pricing"})
    if unknown:
        raise InputError(InputIssue(str(path), None, f"unknown option(s) {', '.join(unknown)}; "
                                    f"known: pricing, {', '.join(sorted(fields))}"))
    pricing = data.pop("pricing", None)
    if pricing is not None:
        if not isinstance(pricing, dict):
            raise InputError(InputIssue(str(path), None, "pricing must map model names to {input, output} USD per 1M tokens"))
        opts.extra["pricing"] = pricing
    for key, value in data.items():
        if from_cli(key):
            continue
        if key in _TUPLES and value is not None:
            value = tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else tuple(value)
        elif key in _PATHS and value is not None:
            value = Path(value)
        setattr(opts, key, value)

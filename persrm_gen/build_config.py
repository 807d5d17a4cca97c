"""``persrm-gen build --config FILE``: defaults for any build option, plus the price table.

A YAML or JSON mapping whose keys are build option names (``context_size``,
``negatives``, ``concurrency`` ...) and optionally ``pricing: {model: {input, output}}``
(USD per 1M tokens). Options given on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from persrm_gen.errors import InputError, InputIssue
from persrm_gen.options_file import read_options_file

_TUPLES = {"negatives", "axes", "language"}
_PATHS = {"authors", "out", "prompts_dir"}


def apply_config(opts, path: Path, from_cli: Callable[[str], bool]) -> None:
    """Set every option the file names unless the command line gave it; store ``pricing``."""
    fields = {f.name for f in dataclasses.fields(opts)} - {"command", "extra"}
    data = read_options_file(path, fields | {"pricing"})
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

"""A small slice of examples/authors.jsonl for builds that must stay quick: the first and
last authors (two genres), each cut to its first few samples."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"


def write_example_slice(path: Path, *, first: int, last: int, samples: int) -> Path:
    lines = EXAMPLES.read_text().splitlines()
    with path.open("w") as fh:
        for line in lines[:first] + lines[-last:]:
            a = json.loads(line)
            a["samples"] = a["samples"][:samples]
            fh.write(json.dumps(a) + "\n")
    return path

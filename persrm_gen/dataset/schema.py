"""The output folder's contract in one place (../shared/design.md): configs, splits, columns.

Every module that writes, reads, checks or describes ``data/<config>/<split>-*.parquet``
takes these names from here (file names: ``dataset.layout``), so the writer, the folder check, the dataset card and the
trainers can never disagree on what a folder holds or in which order it is listed.
The Arrow schemas are explicit (never inferred from rows) so that the same pairs always
give byte-identical files, whatever values the first rows happen to hold.
"""

from __future__ import annotations

import pyarrow as pa

CONFIGS = ("pairs", "sft", "rft", "preference")  # contract order
SPLITS = ("train", "test_seen_authors", "test_unseen_authors", "test_unseen_genre")  # train first
TEST_SPLITS = tuple(s for s in SPLITS if s != "train")

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

SCHEMAS = {
    "pairs": pa.schema([
        ("id", pa.string()), ("author_id", pa.string()), ("genre", pa.string()), ("query", pa.string()),
        ("context", pa.list_(pa.string())), ("chosen", pa.string()), ("rejected", pa.string()),
        ("chosen_source", pa.string()), ("rejected_source", pa.string()),
        ("response_a", pa.string()), ("response_b", pa.string()), ("label", pa.string()),
        ("rationale", pa.string()), ("style_margin", pa.float64()), ("split", pa.string()),
        ("strategy", pa.string()), ("chosen_strategy", pa.string()), ("real_side", pa.string()),
        ("sample_id", pa.string()),
        ("rationale_source", pa.string()), ("rationale_ok", pa.bool_()), ("backend", pa.string()),
        ("model", pa.string()),
    ]),
    "sft": pa.schema([("prompt", _MESSAGES), ("completion", _MESSAGES)]),
    "rft": pa.schema([("prompt", _MESSAGES), ("label", pa.string())]),
    "preference": pa.schema([("prompt", _MESSAGES), ("chosen", _MESSAGES), ("rejected", _MESSAGES)]),
}


def in_contract_order(names, order: tuple[str, ...]) -> list[str]:
    """``names`` listed as ``order`` (CONFIGS or SPLITS) lists them, then any others by name."""
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)

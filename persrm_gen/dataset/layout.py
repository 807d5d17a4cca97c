"""File names under ``data/<config>/``: the one place that spells out how a split is sharded.

Kept free of pyarrow so that the folder check and the readers can name files cheaply.
"""

from __future__ import annotations

import re

# A split is written as Hugging Face's numbered shards (``train-00000-of-00003.parquet``), so
# a build can write it as it goes and the Hub viewer and ``load_dataset`` read the glob.
# Folders built before sharding hold one ``<split>.parquet``; every reader takes both.
_SHARD_FILE = re.compile(r"(?P<split>[A-Za-z0-9_]+)(-(?P<index>\d{5})-of-(?P<total>\d{5}))?\.parquet")


def shard_file(split: str, index: int, total: int) -> str:
    """The file name of shard ``index`` (from 0) of ``total`` of a split."""
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def split_of_file(name: str) -> str | None:
    """``train-00001-of-00003.parquet`` (or the legacy ``train.parquet``) -> ``train``; None
    for any other name."""
    m = _SHARD_FILE.fullmatch(name)
    if m is None or (m["index"] is not None and int(m["index"]) >= int(m["total"])):
        return None
    return m["split"]

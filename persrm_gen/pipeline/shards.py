"""Which authors a build makes, and in which shards.

Everything a pair depends on is decided per author (its split, tasks, draws, A/B placement,
traces), so authors can be built in any grouping: a build carries ``--shard-authors`` of
them at a time through every stage and writes them before taking the next, which bounds
its memory and lets an interrupted build resume at the first unfinished shard. With
``--num-shards K --shard-index i`` a machine builds only the authors whose id hashes to
partition ``i``; ``persrm-gen merge`` then combines the K folders. The hash is of the
author id alone (blake2b, not Python's per-process ``hash``), so every machine agrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def partition_of(author_id: str, num_shards: int) -> int:
    """The partition (0 .. num_shards - 1) an author belongs to."""
    digest = hashlib.blake2b(author_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_shards


def in_partition(authors: Sequence, num_shards: int, shard_index: int) -> list:
    """The authors of partition ``shard_index``, in file order."""
    if num_shards == 1:
        return list(authors)
    return [a for a in authors if partition_of(a.author_id, num_shards) == shard_index]


def author_shards(authors: Sequence, shard_authors: int) -> list[list]:
    """Consecutive groups of ``shard_authors`` authors (the last one may be smaller)."""
    return [list(authors[i : i + shard_authors]) for i in range(0, len(authors), shard_authors)]

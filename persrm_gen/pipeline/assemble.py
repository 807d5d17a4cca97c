"""From finished shards to one dataset: the cross-shard checks, then the published files.

A *unit* is one source of rows: a finished shard of a build (``OUT/.shards/NNNNN``) or a
shard folder given to ``persrm-gen merge``. Within a unit the configs agree row for row
(``rft`` and ``preference`` follow ``pairs``; ``sft`` follows its pairs with a usable trace),
so a row the cross-shard checks reject is removed from every config by position, without
rendering a prompt again. Each source file becomes at most one published file,
``data/<config>/<split>-NNNNN-of-MMMMM.parquet`` numbered in unit order; a file that loses
no row is linked (or copied), not rewritten.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from persrm_gen.dataset.crosscheck import CrossShardCheck
from persrm_gen.dataset.layout import shard_file, split_of_file
from persrm_gen.dataset.schema import CONFIGS, SPLITS, in_contract_order
from persrm_gen.dataset.writer import write_table

@dataclass
class Unit:
    """config -> split -> the unit's files of that split, in order."""

    files: dict[str, dict[str, list[Path]]] = field(default_factory=dict)

    @classmethod
    def of_folder(cls, root: Path) -> Unit:
        """The data files of a folder holding ``data/<config>/<split>*.parquet``."""
        unit = cls()
        for config in CONFIGS:
            folder = root / "data" / config
            for f in sorted(folder.glob("*.parquet")) if folder.is_dir() else ():
                split = split_of_file(f.name)
                if split is not None:
                    unit.files.setdefault(config, {}).setdefault(split, []).append(f)
        return unit

    def of(self, config: str, split: str) -> list[Path]:
        return self.files.get(config, {}).get(split, [])

    def splits(self) -> list[str]:
        return in_contract_order({s for c in self.files.values() for s in c}, SPLITS)


def cross_check(units: Sequence[Unit]) -> dict[str, tuple[str, str]]:
    """pair id -> (reason, detail) of the rows rejected by the checks across units."""
    check = CrossShardCheck()
    for unit in units:
        for split in unit.splits():
            for f in unit.of("pairs", split):
                check.add_file(f)
    return check.rejected()


def publish_files(units: Sequence[Unit], rejected: set[str], staging: Path, *, link: bool) -> dict[str, dict[str, int]]:
    """Write every unit's rows but ``rejected`` as numbered shards under ``staging/data``;
    returns rows per config and split. ``link``: hard-link unchanged files (our own shards)."""
    outputs: dict[tuple[str, str], list[tuple[Path, np.ndarray | None, int]]] = {}
    for unit in units:
        for split in unit.splits():
            for config, src, mask, n in _masks(unit, split, rejected):
                kept = n if mask is None else int(mask.sum())
                if kept:
                    outputs.setdefault((config, split), []).append((src, mask, kept))
    counts: dict[str, dict[str, int]] = {}
    for config in CONFIGS:
        for split in SPLITS:
            files = outputs.get((config, split), [])
            for k, (src, mask, _n) in enumerate(files):
                _write_one(src, mask, staging / "data" / config / shard_file(split, k, len(files)), link=link)
            if files:
                counts.setdefault(config, {})[split] = sum(n for *_, n in files)
    return counts


def _masks(unit: Unit, split: str, rejected: set[str]):
    """(config, file, keep mask or None when every row stays, rows) for one split of a unit."""
    import pyarrow.parquet as pq  # only when a folder is read

    pairs_files = unit.of("pairs", split)
    ids, ok = [], []
    for f in pairs_files:
        t = pq.read_table(f, columns=["id", "rationale_ok"])
        ids += t.column("id").to_pylist()
        ok += t.column("rationale_ok").to_pylist()
    keep = np.array([i not in rejected for i in ids], dtype=bool)
    by_config = {"pairs": keep, "rft": keep, "preference": keep, "sft": keep[np.array(ok, dtype=bool)] if ok else keep}
    for config in CONFIGS:
        mask, at = by_config[config], 0
        for f in unit.of(config, split):
            n = pq.ParquetFile(f).metadata.num_rows
            part = mask[at : at + n]
            if len(part) != n:
                raise ValueError(f"{f}: {config} rows do not follow the pairs rows of {split}")
            at += n
            yield config, f, (None if part.all() else part), n


def _write_one(src: Path, mask: np.ndarray | None, dest: Path, *, link: bool) -> None:
    import pyarrow.parquet as pq  # only when a folder is read

    dest.parent.mkdir(parents=True, exist_ok=True)
    if mask is not None:
        write_table(dest, pq.read_table(src).filter(mask))
        return
    if link:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(src, dest)


"""Compact per-pair rows: what the card's stats, the manifest and the blind audit need, without the texts.

The end step of a build (and of ``persrm-gen merge``) used to read every published pair's
chosen and rejected texts back to measure the card's statistics, holding them all in
memory at once, so the build's peak memory grew with the dataset however small its shards.
Instead each shard measures its own pairs once, when it finishes, and keeps one compact row
per pair: the fields the stats read, the context-blind audit's features of the pair
(``blind_audit.FEATURES``, chosen minus rejected, as ``blind_audit.pair_features`` gives
them) and whether the chosen is the longer (``pair_longer``, as ``blind_audit`` counts it).
``dataset.blind_audit.audit`` uses these precomputed values when rows carry them, so the
card is byte-identical to one computed from the texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from persrm_gen.dataset.blind_audit import FEATURES, longer_chosen, pair_features
from persrm_gen.dataset.schema import SCHEMAS, SPLITS

# the pairs columns the stats and the manifest read (never a text)
FIELDS = ("id", "author_id", "genre", "split", "label", "style_margin", "strategy", "rationale_ok",
          "rationale_source", "chosen_source", "rejected_source")
SCHEMA = pa.schema([SCHEMAS["pairs"].field(name) for name in FIELDS]
                   + [pa.field("pair_features", pa.list_(pa.float64(), len(FEATURES))),
                      pa.field("pair_longer", pa.float64())])
# the columns a pairs parquet file is measured from
TEXT_COLUMNS = [*FIELDS, "chosen", "rejected"]


def compact_table(rows: Sequence[dict]) -> pa.Table:
    """The compact rows of ``rows`` (pairs rows with their texts), in the same order."""
    if not rows:
        return SCHEMA.empty_table()
    chosen, rejected = [r["chosen"] for r in rows], [r["rejected"] for r in rows]
    x = pair_features(chosen, rejected)
    longer = longer_chosen(chosen, rejected)
    columns = {name: [r[name] for r in rows] for name in FIELDS}
    columns["pair_features"] = [list(map(float, v)) for v in x]
    columns["pair_longer"] = [float(v) for v in longer]
    return pa.table(columns, schema=SCHEMA)


def compact_of_file(path: Path) -> pa.Table:
    """The compact rows of one ``pairs`` parquet file (a merge measures a folder this way)."""
    import pyarrow.parquet as pq  # only when a folder is read

    return compact_table(pq.read_table(path, columns=TEXT_COLUMNS).to_pylist())


def write_compact(path: Path, table: pa.Table) -> None:
    from persrm_gen.dataset.writer import write_table

    write_table(path, table)


def read_compact(path: Path) -> pa.Table:
    import pyarrow.parquet as pq  # only when a folder is read

    return pq.read_table(path, schema=SCHEMA)


def published_rows(tables: Iterable[pa.Table], rejected: set[str]) -> CompactRows:
    """The compact rows of the published pairs, in the order the published files list them:
    split by split (contract order), unit by unit, rows in file order; ``rejected`` left out."""
    tables = list(tables)
    kept: list[pa.Table] = []
    for split in SPLITS:
        for t in tables:
            keep = np.array([s == split and i not in rejected
                             for s, i in zip(t.column("split").to_pylist(), t.column("id").to_pylist())], dtype=bool)
            if keep.any():
                kept.append(t.filter(keep))
    return CompactRows(pa.concat_tables(kept) if kept else SCHEMA.empty_table())


class CompactRows(Sequence):
    """Compact rows kept column-wise, read as rows (``row["split"]``, ``row.get(...)``): every
    pair of a large build is held at once at the end step, and a dict per pair cost ~1.7 KB.
    A column of strings holds each distinct string once (authors, splits, strategies); a
    pair's features are a row of one array."""

    def __init__(self, table: pa.Table):
        self._columns = {name: _interned(table.column(name).to_pylist()) if name != "id"
                         else table.column(name).to_pylist() for name in FIELDS}
        self._columns["pair_features"] = np.asarray(table.column("pair_features").combine_chunks().flatten(),
                                                    dtype=float).reshape(-1, len(FEATURES))
        self._columns["pair_longer"] = np.asarray(table.column("pair_longer").to_numpy(), dtype=float)
        self._n = table.num_rows

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return _Row(self._columns, i % self._n)


class _Row(Mapping):
    """One compact row, read from the columns."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: dict, i: int):
        self._columns, self._i = columns, i

    def __getitem__(self, name: str):
        value = self._columns[name][self._i]
        return float(value) if name == "pair_longer" else value

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _interned(values: list) -> list:
    one: dict = {}
    return [one.setdefault(v, v) for v in values]

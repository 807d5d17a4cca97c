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
    split by split (contract order), unit by unit, rows in file order; ``rejected`` left out.

    Each unit's table is read once and only its kept rows stay (a copy per split), and the
    freed Arrow pages go back to the system before the card's numpy work (the end step of a
    large build holds every pair's compact row here)."""
    pieces: dict[str, list[pa.Table]] = {split: [] for split in SPLITS}
    for t in tables:
        splits, ids = t.column("split").to_pylist(), t.column("id").to_pylist()
        for split in SPLITS:
            keep = np.array([s == split and i not in rejected for s, i in zip(splits, ids)], dtype=bool)
            if keep.any():
                pieces[split].append(t.filter(keep))
    kept = [p for split in SPLITS for p in pieces.pop(split)]
    rows = CompactRows(pa.concat_tables(kept) if kept else SCHEMA.empty_table())
    del kept
    pa.default_memory_pool().release_unused()
    return rows


class CompactRows(Sequence):
    """Compact rows kept column-wise, read as rows (``row["split"]``, ``row.get(...)``): every
    pair of a large build is held at once at the end step, and a dict per pair cost ~1.7 KB.
    No Python object is kept per pair: a column of strings is an int32 code per row into its
    distinct values (authors, splits, strategies), ids are utf-8 bytes in one numpy array,
    numbers and flags numpy arrays, a pair's features a row of one array. ``coded``, ``ids``
    and ``array`` give the columns themselves (the blind audit reads them so)."""

    def __init__(self, table: pa.Table):
        self._n = table.num_rows
        self._columns: dict = {}
        for name in FIELDS:
            column = table.column(name).combine_chunks()
            if name == "id":
                self._columns[name] = _Ids(np.array([v.encode() for v in column.to_pylist()], dtype=bytes))
            elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                coded = column.dictionary_encode()
                values, codes = coded.dictionary.to_pylist(), coded.indices
                if column.null_count:  # a null is one more value
                    values, codes = [*values, None], codes.fill_null(len(values))
                self._columns[name] = _Coded(codes.to_numpy(), values)
            elif column.null_count == 0:
                self._columns[name] = _Numbers(column.to_numpy(zero_copy_only=False))
            else:
                self._columns[name] = column.to_pylist()
        self._columns["pair_features"] = np.asarray(table.column("pair_features").combine_chunks().flatten(),
                                                    dtype=float).reshape(-1, len(FEATURES))
        self._columns["pair_longer"] = _Numbers(np.asarray(table.column("pair_longer").to_numpy(), dtype=float))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return _Row(self._columns, i % self._n)

    def coded(self, name: str) -> tuple[np.ndarray, list]:
        """A string column as (a code per row, the values the codes index)."""
        column = self._columns[name]
        return column.codes, column.values

    def ids(self) -> np.ndarray:
        """The ids, utf-8 encoded, as a numpy bytes array (sorts as the strings do)."""
        return self._columns["id"].raw

    def array(self, name: str) -> np.ndarray:
        """A numeric column (``pair_features``: one row per pair)."""
        column = self._columns[name]
        return column if isinstance(column, np.ndarray) else column.raw


class _Coded:
    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: list):
        self.codes, self.values = codes, values

    def __getitem__(self, i: int):
        return self.values[self.codes[i]]


class _Ids:
    __slots__ = ("raw",)

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def __getitem__(self, i: int) -> str:
        return bytes(self.raw[i]).decode()


class _Numbers:
    """A numpy column read as Python numbers (floats, bools), as the rows' dicts held them."""

    __slots__ = ("raw",)

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def __getitem__(self, i: int):
        return self.raw[i].item()


class _Row(Mapping):
    """One compact row, read from the columns."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: dict, i: int):
        self._columns, self._i = columns, i

    def __getitem__(self, name: str):
        return self._columns[name][self._i]

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


class Verdicts(Mapping):
    """pair id -> the style judge's verdict (``style.Comparison.predicted``), for every pair
    of a build, which the card's stats look up: the ids as one sorted numpy bytes array and a
    small code per pair, instead of a dict entry and an id string per pair (~120 B, held
    through the whole end step). ``update`` as a dict's (a later id wins); iterated in id
    order."""

    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._codes: dict = {}  # verdict -> code
        self._values: list = []
        self._ids, self._of = np.zeros(0, dtype="S1"), np.zeros(0, dtype=np.int32)

    def update(self, verdicts: Mapping[str, str]) -> None:
        if verdicts:
            ids = np.array([k.encode() for k in verdicts], dtype=bytes)
            codes = np.fromiter((self._code(v) for v in verdicts.values()), dtype=np.int32, count=len(verdicts))
            self._chunks.append((ids, codes))

    def _code(self, value) -> int:
        if value not in self._codes:
            self._codes[value] = len(self._values)
            self._values.append(value)
        return self._codes[value]

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """The ids sorted, each once (its last verdict), with their codes."""
        if self._chunks:
            ids = np.concatenate([self._ids, *(c[0] for c in self._chunks)])
            codes = np.concatenate([self._of, *(c[1] for c in self._chunks)])
            self._chunks = []
            order = np.argsort(ids, kind="stable")  # equal ids stay in the order they came
            ids, codes = ids[order], codes[order]
            last = np.append(ids[1:] != ids[:-1], True)
            self._ids, self._of = ids[last], codes[last]
        return self._ids, self._of

    def __getitem__(self, pair_id: str):
        ids, codes = self._sorted()
        key = pair_id.encode()
        at = int(np.searchsorted(ids, key))
        if at < len(ids) and ids[at] == key:  # a key wider than the ids never equals one
            return self._values[codes[at]]
        raise KeyError(pair_id)

    def __iter__(self):
        return (bytes(i).decode() for i in self._sorted()[0])

    def __len__(self) -> int:
        return len(self._sorted()[0])

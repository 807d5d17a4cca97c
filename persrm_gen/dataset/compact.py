"""Compact per-pair rows: what the card's stats, the manifest and the blind audit need, without the texts.

The end step of a build (and of ``persrm-gen merge``) used to read every published pair's
chosen and rejected texts back to measure the card's statistics, holding them all in
memory at once: about 0.2 MB per sample, the largest allocation of a 100k-sample build.
Instead each shard measures its own pairs once, when it finishes, and keeps one compact row
per pair: the fields the stats read, the context-blind audit's features of the pair
(``blind_audit.FEATURES``, chosen minus rejected, as ``blind_audit.pair_features`` gives
them) and whether the chosen is the longer (``pair_longer``, as ``blind_audit`` counts it).
``dataset.blind_audit.audit`` uses these precomputed values when rows carry them, so the
card is byte-identical to one computed from the texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from sys import intern

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


def published_rows(tables: Iterable[pa.Table], rejected: set[str]) -> list[dict]:
    """The compact rows of the published pairs, in the order the published files list them:
    split by split (contract order), unit by unit, rows in file order; ``rejected`` left out."""
    tables = list(tables)
    rows: list[dict] = []
    for split in SPLITS:
        for t in tables:
            keep = np.array([s == split and i not in rejected
                             for s, i in zip(t.column("split").to_pylist(), t.column("id").to_pylist())], dtype=bool)
            if keep.any():
                rows += _dicts(t.filter(keep))
    return rows


def _dicts(table: pa.Table) -> list[dict]:
    """``table.to_pylist()``, lighter: every pair of a large build is held at once at the end
    step, so repeated strings (authors, splits, strategies, sources) are one object each and
    a pair's features are a view of one array, not a list of 12 float objects."""
    columns = {name: table.column(name).to_pylist() for name in FIELDS}
    for name in FIELDS:
        if pa.types.is_string(SCHEMA.field(name).type) and name != "id":
            columns[name] = [v if v is None else intern(v) for v in columns[name]]
    x = np.asarray(table.column("pair_features").combine_chunks().flatten(), dtype=float).reshape(-1, len(FEATURES))
    longer = {v: v for v in (0.0, 0.5, 1.0)}
    rows = [dict(zip(FIELDS, values)) for values in zip(*columns.values())]
    for row, features, ln in zip(rows, x, table.column("pair_longer").to_pylist()):
        row["pair_features"] = features
        row["pair_longer"] = longer.get(ln, ln)
    return rows

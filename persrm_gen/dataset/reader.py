"""Reading a built output folder: where a split's file is, which splits a config has, its rows.

The commands that read a folder (``validate``, ``stats``, the card, the trainers and the
evaluator) find its files through these few functions, so the folder's layout
(``data/<config>/<split>-NNNNN-of-MMMMM.parquet``, or one ``<split>.parquet`` in folders
built before sharding) is spelled out once for reading, as
``dataset.writer`` spells it out once for writing. pyarrow is imported only when a file
is actually opened.
"""

from __future__ import annotations

from pathlib import Path

from persrm_gen.dataset.layout import split_of_file
from persrm_gen.errors import InputError, InputIssue


def split_files(out: str | Path, config: str, split: str) -> list[Path]:
    """The files of one split of one config, in shard order (empty when there are none)."""
    folder = Path(out) / "data" / config
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if split_of_file(p.name) == split)


def split_path(out: str | Path, config: str, split: str) -> Path:
    """Where a split is, for messages: its first file, or the glob of its shards when it has none."""
    files = split_files(out, config, split)
    return files[0] if files else Path(out) / "data" / config / f"{split}-*.parquet"


def available_splits(out: str | Path, config: str) -> list[str]:
    """The splits one config of a built folder has, by name."""
    folder = Path(out) / "data" / config
    if not folder.is_dir():
        return []
    return sorted({s for p in folder.glob("*.parquet") if (s := split_of_file(p.name)) is not None})


def load_split_rows(out: Path, config: str) -> dict[str, list[dict]]:
    """split -> rows of one config of a built folder (its shards concatenated in order)."""
    import pyarrow.parquet as pq  # only when a folder is read

    return {split: [r for p in split_files(out, config, split) for r in pq.read_table(p).to_pylist()]
            for split in available_splits(out, config)}


def check_split_file(path: Path) -> None:
    """A corrupt or empty split is an input error (a reader would fail on either with a traceback)."""
    import pyarrow as pa  # only when a folder is read
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputError(InputIssue(str(path), None, f"not a readable parquet file ({_first_line(exc)})")) from None
    if rows == 0:
        raise InputError(InputIssue(str(path), None, "has no rows"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__

"""Reading a built output folder: where a split's file is, which splits a config has, its rows.

The commands that read a folder (``validate``, ``stats``, the card, the trainers and the
evaluator) find its files through these few functions, so the folder's layout
(``data/<config>/<split>.parquet``) is spelled out once for reading, as
``dataset.writer`` spells it out once for writing. pyarrow is imported only when a file
is actually opened.
"""

from __future__ import annotations

from pathlib import Path

from persrm_gen.errors import InputError, InputIssue


def split_path(out: str | Path, config: str, split: str) -> Path:
    return Path(out) / "data" / config / f"{split}.parquet"


def available_splits(out: str | Path, config: str) -> list[str]:
    """The splits one config of a built folder has, by name."""
    folder = Path(out) / "data" / config
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def load_split_rows(out: Path, config: str) -> dict[str, list[dict]]:
    """split -> rows of one config of a built folder."""
    import pyarrow.parquet as pq  # only when a folder is read

    folder = out / "data" / config
    if not folder.is_dir():
        return {}
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))}


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

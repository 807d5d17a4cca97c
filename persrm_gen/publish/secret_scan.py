"""Find things that look like credentials before they leave the machine.

Every file a push uploads is scanned: text files line by line, parquet files in every
string value (nested lists, structs and maps too), safetensors files in their JSON
header. Reports say *where* and *what kind*, never the value itself, so the refusal
message can be printed and logged safely.

Parquet is read one record batch at a time (row groups stream; memory stays flat for
any dataset size). Each batch column is first searched as one joined string, which is
fast; only a column with a match is walked row by row to say which row holds it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from persrm_gen.secrets import env_secret_values, find_secrets

# Hits kept per file: enough to refuse and count, bounded for a file full of them.
MAX_HITS_PER_FILE = 100
BATCH_ROWS = 1024  # rows per record batch: memory stays near one row group's size
MAX_SAFETENSORS_HEADER = 100_000_000  # the format's own limit


@dataclass(frozen=True)
class SecretHit:
    where: str  # "README.md:12" or "data/pairs/train.parquet: context (row 3)"
    kind: str

    def __str__(self) -> str:
        return f"{self.where}: looks like a secret ({self.kind})"


def scan_text(text: str, path: str, *, env: list[tuple[str, str]]) -> list[SecretHit]:
    """Hits in ``text``, one per line (one report per line is enough to refuse)."""
    if not find_secrets(text, env):  # one pass over the whole text; most files stop here
        return []
    hits = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        kinds = find_secrets(line, env)
        if kinds:
            hits.append(SecretHit(f"{path}:{lineno}", kinds[0]))
            if len(hits) >= MAX_HITS_PER_FILE:
                break
    if not hits:  # a match across lines (a key block) is still a match
        hits.append(SecretHit(path, find_secrets(text, env)[0]))
    return hits


def scan_parquet(path: Path, rel: str, *, env: list[tuple[str, str]]) -> list[SecretHit]:
    """Hits in every string value of a parquet file, as ``rel: column (row N)`` (N from 0)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    columns = [f.name for f in pf.schema_arrow if _has_strings(f.type)]
    if not columns:
        return []
    hits: list[SecretHit] = []
    first_row = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        for name, column in zip(batch.schema.names, batch.columns):
            if any(find_secrets(_joined(leaf), env) for leaf in _string_leaves(column)):
                hits += _rows_with_secrets(column, rel, name, first_row, env)
                if len(hits) >= MAX_HITS_PER_FILE:
                    return hits
        first_row += batch.num_rows
    return hits


def scan_safetensors(path: Path, rel: str, *, env: list[tuple[str, str]]) -> list[SecretHit]:
    """Hits in a safetensors file's JSON header (``__metadata__`` is free text)."""
    with open(path, "rb") as fh:
        size_bytes = fh.read(8)
        if len(size_bytes) < 8:
            return []
        (size,) = struct.unpack("<Q", size_bytes)
        header = fh.read(min(size, MAX_SAFETENSORS_HEADER)).decode("utf-8", "replace")
    return [SecretHit(f"{rel} (header)", h.kind) for h in scan_text(header, rel, env=env)[:1]]


def scan_files(root: Path, rel_paths: list[str], *, extra_env: tuple[str, ...] = ()) -> list[SecretHit]:
    """Scan each file by its kind; every other file is read as text (binary bytes are replaced)."""
    env = env_secret_values(extra_env)
    hits: list[SecretHit] = []
    for rel in rel_paths:
        path = root / rel
        if rel.endswith(".parquet"):
            hits += scan_parquet(path, rel, env=env)
        elif rel.endswith(".safetensors"):
            hits += scan_safetensors(path, rel, env=env)
        else:
            hits += scan_text(path.read_text(encoding="utf-8", errors="replace"), rel, env=env)
    return hits


# ---- arrow values -------------------------------------------------------------------


def _has_strings(t) -> bool:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_strings(t.value_type)
    if pa.types.is_map(t):
        return _has_strings(t.key_type) or _has_strings(t.item_type)
    if hasattr(t, "value_type"):  # list, large_list, fixed_size_list, list_view
        return _has_strings(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_strings(t.field(i).type) for i in range(t.num_fields))
    return False


def _string_leaves(arr) -> Iterator:
    """Every string array inside ``arr``. May include values just outside a sliced batch;
    harmless, since a match is confirmed row by row."""
    import pyarrow as pa

    t = arr.type
    if pa.types.is_dictionary(t):
        yield from _string_leaves(arr.dictionary_decode())
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        yield arr
    elif pa.types.is_map(t):
        yield from _string_leaves(arr.keys)
        yield from _string_leaves(arr.items)
    elif pa.types.is_struct(t):
        for child in arr.flatten():
            yield from _string_leaves(child)
    elif hasattr(t, "value_type"):
        yield from _string_leaves(arr.flatten())


def _joined(arr) -> str:
    """All strings of ``arr`` as one text, one value per line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(arr) == 0:
        return ""
    values = pc.fill_null(arr.cast(pa.large_string()), "")
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)
    return pc.binary_join(whole, pa.scalar("\n", pa.large_string()))[0].as_py() or ""


def _rows_with_secrets(column, rel: str, name: str, first_row: int, env) -> list[SecretHit]:
    hits = []
    for i, value in enumerate(column.to_pylist()):
        kinds = find_secrets("\n".join(_python_strings(value)), env)
        if kinds:
            hits.append(SecretHit(f"{rel}: {name} (row {first_row + i})", kinds[0]))
    return hits


def _python_strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _python_strings(v)
    elif isinstance(value, (list, tuple)):  # lists; maps come as lists of (key, value)
        for v in value:
            yield from _python_strings(v)


def describe(hits: list[SecretHit]) -> str:
    """The first hit and how many more: one line."""
    more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
    return f"{hits[0]}{more}"


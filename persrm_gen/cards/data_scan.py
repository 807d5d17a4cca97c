"""What the output folder's ``data/`` holds: configs, splits, files and their Arrow schema.

The dataset card's ``configs:`` and ``dataset_info:`` YAML is derived from the parquet
files themselves (not from what the build meant to write), so the card always tells
``datasets.load_dataset`` and the Hub viewer the truth about the folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from persrm_gen.dataset.schema import CONFIGS, SPLITS, in_contract_order

# Configs and splits are listed in contract order (dataset.schema); any other folder or
# file found under data/ comes after, by name.


@dataclass
class SplitData:
    files: list[str]  # paths relative to the output folder, posix style
    num_examples: int
    num_bytes: int  # uncompressed size, as the Hub's dataset_info reports it
    download_size: int  # bytes on disk


@dataclass
class ConfigData:
    name: str
    splits: dict[str, SplitData] = field(default_factory=dict)
    schema: object | None = None  # pyarrow.Schema of the first file (all shards share it)


def split_of(path: Path) -> str:
    """``train.parquet`` and shards such as ``train-00000-of-00002.parquet`` -> ``train``."""
    return path.name.removesuffix(".parquet").split("-")[0]


def scan_data(out_dir: Path) -> dict[str, ConfigData]:
    """Configs under ``out_dir/data/<config>/<split>*.parquet``, in contract order."""
    data_dir = Path(out_dir) / "data"
    found: dict[str, ConfigData] = {}
    if not data_dir.is_dir():
        return found
    for cfg_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        cfg = ConfigData(cfg_dir.name)
        by_split: dict[str, list[Path]] = {}
        for f in sorted(cfg_dir.glob("*.parquet")):
            by_split.setdefault(split_of(f), []).append(f)
        for split in in_contract_order(by_split, SPLITS):
            files = by_split[split]
            metas = [pq.ParquetFile(f).metadata for f in files]
            if cfg.schema is None:
                cfg.schema = pq.read_schema(files[0])
            cfg.splits[split] = SplitData(
                files=[f.relative_to(out_dir).as_posix() for f in files],
                num_examples=sum(m.num_rows for m in metas),
                num_bytes=sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups)),
                download_size=sum(f.stat().st_size for f in files),
            )
        if cfg.splits:
            found[cfg.name] = cfg
    return {name: found[name] for name in in_contract_order(found, CONFIGS)}


def data_files_glob(config: str, split: str, data: SplitData) -> str:
    """One path for one file, a glob for shards (the Hub YAML accepts both)."""
    if len(data.files) == 1:
        return data.files[0]
    return f"data/{config}/{split}-*.parquet"

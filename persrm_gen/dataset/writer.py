"""Writing the output folder (contract in ../shared/design.md): parquet per config and split.

Rows are written with the explicit Arrow schemas of ``dataset.schema`` and fixed writer
settings, so the same pairs always give byte-identical files. The build writes into a
staging folder that ``dataset.folder.OutputFolder.publish`` switches into place in one step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from persrm_gen.dataset.schema import CONFIGS, SCHEMAS, SPLITS
from persrm_gen.fileio import write_text_atomic
from persrm_gen.records import Pair


def pair_row(pair: Pair) -> dict:
    row = asdict(pair)
    row["rationale_ok"] = bool(pair.meta.get("rationale_ok", True))
    row.pop("meta")
    return row


def config_rows(
    pairs: Sequence[dict],
    judge_prompt: Callable[[dict], list[dict]],
    preference_prompt: Callable[[dict], list[dict]],
) -> dict[str, dict[str, list[dict]]]:
    """config -> split -> rows, derived from the canonical pair rows."""
    out: dict[str, dict[str, list[dict]]] = {c: {} for c in CONFIGS}
    for row in pairs:
        split = row["split"]
        prompt = judge_prompt(row)
        out["pairs"].setdefault(split, []).append(row)
        out["rft"].setdefault(split, []).append({"prompt": prompt, "label": row["label"]})
        pref = preference_prompt(row)
        out["preference"].setdefault(split, []).append({
            "prompt": pref,
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        })
        if row["rationale_ok"]:  # never a trace whose verdict or evidence disagrees
            out["sft"].setdefault(split, []).append({
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": row["rationale"]}],
            })
    return out


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    write_table(path, pa.Table.from_pylist(rows, schema=schema))


def write_table(path: Path, table: pa.Table) -> None:
    """One parquet file, always with the same settings (so the same rows give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def write_data(staging: Path, by_config: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, int]]:
    """Write data/<config>/<split>.parquet under ``staging`` (one shard's rows: the build
    numbers the published files, see ``pipeline.assemble``); returns the row counts."""
    counts: dict[str, dict[str, int]] = {}
    for config in CONFIGS:
        for split in SPLITS:
            rows = by_config[config].get(split)
            if rows:
                write_parquet(staging / "data" / config / f"{split}.parquet", rows, SCHEMAS[config])
                counts.setdefault(config, {})[split] = len(rows)
    return counts


def write_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

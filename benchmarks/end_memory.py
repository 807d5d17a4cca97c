"""Bytes per pair the end step of a build holds, phase by phase, measured with tracemalloc on a built folder.

    python benchmarks/scale.py --samples 10000 --negatives mimic,other-author --rationales evidence --keep /tmp/k
    PYTHONPATH=. python benchmarks/end_memory.py /tmp/k/out-10000-0
    PYTHONPATH=/path/to/other/checkout python benchmarks/end_memory.py /tmp/k/out-10000-0   # the same, other code

Peak RSS (scale.py --rss-trace) mixes the end step's per-pair state with everything else the
process holds; this isolates it. The phases are those of ``pipeline.write.write_dataset``:
the cross-shard check (its state once every file is added, and its peak while it makes the
verdicts), the compact rows of the published pairs, the style verdicts of every shard (as
main held them, every summary at once, and as a ``dataset.compact.Verdicts`` where the code
has one) and the card's stats over the rows (peak). Bounded caches (``textutil.normalized``)
are cleared before each reading, so what is left grows with the pairs. Memory numpy takes
is traced; Arrow buffers are not. The digest covers the rejections and the stats: equal
digests, same verdicts and same card numbers.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq

from persrm_gen.dataset.compact import compact_of_file, published_rows
from persrm_gen.dataset.crosscheck import CrossShardCheck
from persrm_gen.dataset.stats import compute_stats
from persrm_gen.pipeline.assemble import Unit
from persrm_gen.textutil import normalized


def main(out: Path) -> dict:
    unit = Unit.of_folder(out)
    files = [f for s in unit.splits() for f in unit.of("pairs", s)]
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    compacts = [compact_of_file(f) for f in files]
    summaries = [json.dumps({"verdicts": {i: "AB"[k % 2] for k, i in enumerate(
        pq.read_table(f, columns=["id"]).column("id").to_pylist())}}) for f in files]  # one summary per file
    CrossShardCheck().add_file(files[0])  # imports done before measuring
    res: dict = {"pairs": n}

    def now() -> int:
        normalized.cache_clear()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    def since(base: int, peak: bool = False) -> int:
        current = now()
        return round(((tracemalloc.get_traced_memory()[1] if peak else current) - base) / n)

    tracemalloc.start()
    base = now()
    check = CrossShardCheck()
    for f in files:
        check.add_file(f)
    res["check_state_B"] = since(base)
    tracemalloc.reset_peak()
    rejected = check.rejected()
    res["check_peak_B"] = since(base, peak=True)
    del check
    base = now()
    rows = published_rows(compacts, set(rejected))
    res["compact_rows_B"] = since(base)
    base = now()
    loaded = [json.loads(s) for s in summaries]
    merged: dict = {}
    for s in loaded:
        merged.update(s["verdicts"])
    res["verdicts_dicts_B"] = since(base)  # main: every summary read at once, then one dict
    del loaded, merged
    try:
        from persrm_gen.dataset.compact import Verdicts
    except ImportError:
        Verdicts = dict
    base = now()
    verdicts = Verdicts()
    for s in summaries:
        verdicts.update(json.loads(s)["verdicts"])
    len(verdicts)
    res[f"verdicts_{Verdicts.__name__}_B"] = since(base)
    base = now()
    tracemalloc.reset_peak()
    stats = compute_stats(rows, {}, predicted=verdicts)
    res["stats_peak_B"] = since(base, peak=True)
    res["digest"] = hashlib.sha256(json.dumps([sorted(rejected.items()), stats], sort_keys=True,
                                              default=str).encode()).hexdigest()[:12]
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))

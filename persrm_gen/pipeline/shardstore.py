"""Finished shards of a build, kept in ``OUT/.shards`` until the dataset is published.

Each shard's rows go to ``.shards/NNNNN/data/<config>/<split>.parquet`` with a
``summary.json`` (drops, samples skipped, usage, the style judge's verdicts) and a
``stats.parquet`` (its pairs' compact rows, ``dataset.compact``: what the card's stats read,
so the end step reads no text) as soon as the shard is done: written into ``tmp-NNNNN``, fsynced, renamed, so a shard is either finished
or absent. A build that was interrupted (Ctrl-C, a crash, a budget stop) finds them and
starts at the first unfinished shard; nothing of a finished one is computed again.

``state.json`` holds a fingerprint of everything the rows depend on (the authors file,
the options that shape rows, the templates, the version): a build with another
fingerprint starts the store afresh, so a changed command never mixes in stale shards.
The store is removed once the dataset it made is published.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pyarrow as pa

from persrm_gen import __version__
from persrm_gen.dataset.compact import SCHEMA, compact_of_file, read_compact, write_compact
from persrm_gen.dataset.folder import SHARDS
from persrm_gen.dataset.schema import SPLITS
from persrm_gen.dataset.writer import write_data, write_json
from persrm_gen.fileio import fsync_dir, fsync_tree
from persrm_gen.pipeline.options import BuildOptions

STATE = "state.json"
SUMMARY = "summary.json"
COMPACT = "stats.parquet"
# Options that change how a build runs, never which rows it makes.
_RUNTIME = frozenset({"out", "command", "concurrency", "rpm", "tpm", "timeout", "max_cost", "max_requests",
                      "max_failure_rate", "dry_run", "new_cache", "batch", "batch_poll"})


def fingerprint(opts: BuildOptions, templates: dict) -> str:
    """What the finished shards were made from; ``templates``: the renderer's used hashes."""
    fields = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name not in _RUNTIME}
    h = hashlib.sha256(json.dumps([__version__, fields, templates], sort_keys=True, default=str).encode())
    for path in (opts.authors, opts.test_authors):
        if path is not None and Path(path).is_file():
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


class ShardStore:
    def __init__(self, out: Path, fingerprint: str):
        self.root = Path(out) / SHARDS
        self.fingerprint = fingerprint

    def open(self) -> None:
        """Resume the store of the same build, or start an empty one."""
        try:
            state = json.loads((self.root / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True)
            write_json(self.root / STATE, {"fingerprint": self.fingerprint})
        for tmp in self.root.glob("tmp-*"):  # a shard interrupted while being saved
            shutil.rmtree(tmp, ignore_errors=True)

    def path(self, i: int) -> Path:
        return self.root / f"{i:05d}"

    def is_done(self, i: int) -> bool:
        return (self.path(i) / SUMMARY).is_file()

    def save(self, i: int, by_config: dict, compact: pa.Table, summary: dict) -> None:
        """Record shard ``i`` as finished: its rows per config and split, its summary and its
        pairs' compact rows."""
        tmp = self.root / f"tmp-{i:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        counts = write_data(tmp, by_config)
        write_compact(tmp / COMPACT, compact)
        write_json(tmp / SUMMARY, {**summary, "counts": counts})
        fsync_tree(tmp)
        os.replace(tmp, self.path(i))
        fsync_dir(self.root)
        if os.environ.get("PERSRM_GEN_TEST_CRASH_AFTER_SHARD") == str(i):  # test hook: a power cut here
            os.kill(os.getpid(), signal.SIGKILL)

    def summary(self, i: int) -> dict:
        return json.loads((self.path(i) / SUMMARY).read_text(encoding="utf-8"))

    def compact(self, i: int) -> pa.Table:
        """Shard ``i``'s compact rows (measured from its pairs files if it has none saved)."""
        path = self.path(i) / COMPACT
        if path.is_file():
            return read_compact(path)
        files = [f for split in SPLITS for f in sorted((self.path(i) / "data" / "pairs").glob(f"{split}.parquet"))]
        return pa.concat_tables([compact_of_file(f) for f in files]) if files else SCHEMA.empty_table()

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

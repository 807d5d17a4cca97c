"""Time and memory of a whole ``persrm-gen build --backend openai`` as the corpus grows.

    python benchmarks/scale.py                                   # 1,000 and 10,000 samples
    python benchmarks/scale.py --samples 1000 --code /work/main  # the same against another checkout
    python benchmarks/scale.py --samples 10000 --shard-authors 50
    python benchmarks/scale.py --samples 100000 --negatives mimic,other-author --rationales evidence --rss-trace

Corpora are synthetic: N samples, ``--per-author`` (20) samples per author, each sample 8
sentences drawn from ../shared/corpora (PEPs and presidential speeches), every author
drawing from their own slice of the sentences so authors differ in style, in two genres.
The server is tests/fakeserver.py's FakeServer (a real aiohttp server on 127.0.0.1, in a
thread of this process) answering after ``--delay`` seconds with tests/test_build_api.py's
``persona`` (a deterministic stand-in model whose replies pass the validators). Requests
are counted server-side. The build runs as a subprocess, as a user runs it; its peak RSS is
the child's own ``ru_maxrss`` from ``wait4`` (the server's memory is not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import KEY, FakeServer  # noqa: E402
from test_build_api import persona  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"


def sentences() -> list[str]:
    """Every sentence of the shared corpora long enough to read like one."""
    from persrm_gen.textutil import sentences as split

    found: list[str] = []
    for name in ("peps.jsonl", "speeches.jsonl"):
        path = CORPORA / name
        if not path.is_file():
            path = Path("/work/shared/corpora") / name
        for line in path.read_text(encoding="utf-8").splitlines():
            for s in json.loads(line)["samples"]:
                found += [x for x in split(s["text"]) if 6 <= len(x.split()) <= 40]
    return found


def write_corpus(path: Path, n_samples: int, per_author: int, seed: int = 0) -> int:
    pool = sentences()
    rng = random.Random(seed)
    n_authors = max(2, n_samples // per_author)
    with path.open("w", encoding="utf-8") as fh:
        for a in range(n_authors):
            lo = rng.randrange(len(pool) - 400)
            mine = pool[lo : lo + 400]  # an author's own slice: their "style"
            samples = [{"id": str(i), "text": " ".join(rng.sample(mine, 8)), "genre": ("essay", "speech")[a % 2]}
                       for i in range(per_author)]
            fh.write(json.dumps({"author_id": f"author-{a:05d}", "samples": samples}) + "\n")
    return n_authors


def run_build(authors: Path, out: Path, server: FakeServer, args) -> dict:
    cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
           "--backend", "openai", "--model", "gpt-4.1-mini", "--base-url", server.openai_base,
           "--concurrency", str(args.concurrency), "--quiet"]
    if args.shard_authors:
        cmd += ["--shard-authors", str(args.shard_authors)]
    cmd += strategy_args(args)
    env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200", "PYTHONPATH": str(args.code or ROOT)}
    before = len(server.snapshot())
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT)
        trace = RssTrace(proc.pid, out, t0) if args.rss_trace else None
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        traced = trace.stop() if trace else {}
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"build failed:\n{err.read().decode()[-4000:]}")
    requests = len(server.snapshot()) - before
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_s": round(seconds, 1), "requests": requests, "req_per_s": round(requests / seconds, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
            "pairs": sum(manifest["counts"]["pairs"].values()), **traced}


def strategy_args(args) -> list[str]:
    """``--negatives`` / ``--rationales`` passed through: a subset of the build's stages makes
    the 100,000-sample run feasible on a small machine (say so beside its numbers)."""
    out = []
    if args.negatives:
        out += ["--negatives", args.negatives]
    if args.rationales:
        out += ["--rationales", args.rationales]
    return out


class RssTrace:
    """The build's resident memory every ``every`` seconds (``/proc/PID/status``, VmRSS),
    with the stage it was in: ``shards k/N`` while shard k+1 of N is under way (k shards
    saved in ``OUT/.shards``), ``end step`` once all are saved (cross-shard checks, files,
    manifest, card). ``stop`` reports the peak, where it happened, and the peak per tenth of
    the shards, which shows whether memory stays flat as the build goes through the corpus."""

    def __init__(self, pid: int, out: Path, t0: float, every: float = 0.5):
        import threading

        self.pid, self.out, self.t0, self.every = pid, out, t0, every
        self.samples: list[tuple[float, float, int]] = []  # (seconds, GB, shards saved)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss_gb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024 / 1024
        except (OSError, ValueError):
            return None
        return None

    def _shards(self) -> tuple[int, int]:
        """(shards saved, shard folders the build knows of so far)."""
        root = self.out / ".shards"
        try:
            names = [p.name for p in root.iterdir()]
        except OSError:
            return 0, 0
        done = sum(n.isdigit() for n in names)
        return done, done + sum(n.startswith("tmp-") for n in names)

    def _run(self) -> None:
        saved = 0  # never goes down: the build removes .shards once the dataset is published
        while not self._stop.wait(self.every):
            rss = self._rss_gb()
            saved = max(saved, self._shards()[0])
            if rss is not None:
                self.samples.append((time.perf_counter() - self.t0, rss, saved))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        if not self.samples:
            return {}
        total = max(k for *_, k in self.samples)  # every shard is saved before the end step
        t, gb, k = max(self.samples, key=lambda s: s[1])
        stage = "end step" if total and k == total else f"shards {k}/{total}"
        tenths = [0.0] * 10
        for _t, g, kk in self.samples:
            if kk < total:
                i = min(9, kk * 10 // total)
                tenths[i] = max(tenths[i], round(g, 2))
        end = [g for _t, g, kk in self.samples if total and kk == total]
        return {"rss_trace": {"peak_gb": round(gb, 2), "peak_at_s": round(t, 1), "peak_stage": stage,
                              "shards": total, "peak_gb_per_tenth_of_shards": tenths,
                              "end_step_peak_gb": round(max(end), 2) if end else None,
                              "end_step_s": round(self.samples[-1][0] - min(tt for tt, _g, kk in self.samples
                                                                            if kk == total), 1) if end else None,
                              "samples": self._coarse()}}

    def _coarse(self, points: int = 40) -> list[list]:
        """About ``points`` samples, evenly spaced, each the peak of its stretch: [s, GB, shards saved]."""
        step = max(1, len(self.samples) // points)
        out = []
        for i in range(0, len(self.samples), step):
            t, gb, k = max(self.samples[i : i + step], key=lambda s: s[1])
            out.append([round(t, 1), round(gb, 2), k])
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="1000,10000", help="comma list of corpus sizes")
    ap.add_argument("--per-author", type=int, default=20)
    ap.add_argument("--delay", type=float, default=0.05, help="server reply delay, seconds")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--shard-authors", type=int, default=None)
    ap.add_argument("--code", type=Path, default=None, help="checkout to build with (PYTHONPATH); default this one")
    ap.add_argument("--negatives", default=None, help="passed to build --negatives (a subset of strategies)")
    ap.add_argument("--rationales", default=None, help="passed to build --rationales (auto, evidence, llm)")
    ap.add_argument("--rss-trace", action="store_true", help="sample the build's RSS every 0.5 s; report where it peaked")
    args = ap.parse_args()
    with FakeServer(reply=persona, delay=args.delay) as server, tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.samples.split(",")):
            authors = Path(tmp) / f"authors-{n}.jsonl"
            n_authors = write_corpus(authors, n, args.per_author)
            row = run_build(authors, Path(tmp) / f"out-{n}", server, args)
            print(json.dumps({"samples": n, "authors": n_authors, **row}), flush=True)


if __name__ == "__main__":
    main()

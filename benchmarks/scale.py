"""Time and memory of a whole ``persrm-gen build --backend openai`` as the corpus grows.

    python benchmarks/scale.py                                   # 1,000 and 10,000 samples
    python benchmarks/scale.py --samples 1000 --code b1b5030,HEAD  # two commits side by side
    python benchmarks/scale.py --samples 1000 --rerun --profile    # + re-run time, py-spy top functions
    python benchmarks/scale.py --samples 10000 --shard-authors 50
    python benchmarks/scale.py --samples 100000 --negatives mimic,other-author --rationales evidence --rss-trace

Corpora are synthetic: N samples, ``--per-author`` (20) samples per author, each sample 8
sentences drawn from ../shared/corpora (PEPs and presidential speeches), every author
drawing from their own slice of the sentences so authors differ in style, in two genres.
The server is tests/fakeserver.py's FakeServer (a real aiohttp server on 127.0.0.1, in a
thread of this process) answering after ``--delay`` seconds with tests/test_build_api.py's
``persona`` (a deterministic stand-in model whose replies pass the validators). Requests
are counted server-side. The build runs as a subprocess, as a user runs it; its peak RSS is
the child's own ``ru_maxrss`` from ``wait4`` (the server's memory is not in it), and its CPU
seconds (user + sys of the child and its children, from the same ``wait4``).

``--code`` takes checkout folders or git commits (comma list). A commit is checked out
in a temporary ``git worktree``; the build runs with PYTHONPATH at that tree and its cwd
OUTSIDE every tree: ``python -m`` puts the cwd first on sys.path, so a cwd inside this
checkout silently ran this checkout's code whatever PYTHONPATH said (and without
PYTHONPATH the installed editable package, /work/main, would answer).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
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


def build_cmd(authors: Path, out: Path, server: FakeServer, args) -> list[str]:
    cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
           "--backend", "openai", "--model", "gpt-4.1-mini", "--base-url", server.openai_base,
           "--concurrency", str(args.concurrency), "--quiet"]
    if args.shard_authors:
        cmd += ["--shard-authors", str(args.shard_authors)]
    return cmd + strategy_args(args)


def copy_corpus(src: Path, dst: Path) -> int:
    """A given corpus, copied so that every checkout reads the same file: its author count."""
    dst.write_bytes(src.read_bytes())
    return sum(1 for line in src.read_text(encoding="utf-8").splitlines() if line.strip())


def run_child(cmd: list[str], code: Path, cwd: Path, trace_out: Path | None = None) -> tuple[float, os.struct_rusage, dict]:
    """Run ``cmd`` with ``code`` first on the path and cwd outside any checkout: wall, rusage,
    and the RSS trace of the build writing ``trace_out`` when one is asked for."""
    env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200", "PYTHONPATH": str(code)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        trace = RssTrace(proc.pid, trace_out, t0) if trace_out else None
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        traced = trace.stop() if trace else {}
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"build failed ({code}):\n{err.read().decode()[-4000:]}")
    return seconds, usage, traced


def run_build(authors: Path, out: Path, server: FakeServer, args, code: Path, cwd: Path) -> dict:
    cmd = build_cmd(authors, out, server, args)
    if args.profile:
        cmd = profiled(cmd, out.with_name(out.name + ".pyspy.txt"))
    before = len(server.snapshot())
    seconds, usage, traced = run_child(cmd, code, cwd, out if args.rss_trace else None)
    requests = len(server.snapshot()) - before
    manifest = json.loads((out / "manifest.json").read_text())
    row = {"wall_s": round(seconds, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
           "requests": requests, "req_per_s": round(requests / seconds, 1),
           "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
           "pairs": sum(manifest["counts"]["pairs"].values()), "digest": digest(out), **traced}
    if args.rerun:
        row.update(rerun(authors, out, server, args, code, cwd, row["digest"]))
    if args.profile:
        row["profile_top"] = top_functions(out.with_name(out.name + ".pyspy.txt"))
    return row


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


def digest(out: Path) -> str:
    """One hash over the published files (data shards, card): equal digests = identical datasets.

    The card quotes the command, whose ``--out`` differs between the checkouts compared."""
    h = hashlib.sha256()
    for f in sorted([*out.glob("data/**/*.parquet"), out / "README.md"]):
        h.update(str(f.relative_to(out)).encode() + b"\0" + f.read_bytes().replace(str(out).encode(), b"OUT"))
    return h.hexdigest()[:16]


def rerun(authors: Path, out: Path, server: FakeServer, args, code: Path, cwd: Path, first: str) -> dict:
    """Time the identical command again: it must send nothing and leave the files byte-identical."""
    before = len(server.snapshot())
    cmd = build_cmd(authors, out, server, args)
    raw = out.with_name(out.name + ".rerun.pyspy.txt")
    seconds, usage, _ = run_child(profiled(cmd, raw) if args.profile else cmd, code, cwd)
    sent = len(server.snapshot()) - before
    same = digest(out) == first
    row = {"rerun_s": round(seconds, 1), "rerun_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
           "rerun_requests": sent, "rerun_noop": sent == 0 and same}
    if args.profile:  # the re-run answers from the cache: the build's own CPU work, no network
        row["rerun_profile_top"] = top_functions(raw)
    return row


def profiled(cmd: list[str], raw: Path) -> list[str]:
    """The build under py-spy (sampling, subprocesses too); collapsed stacks go to ``raw``."""
    return ["py-spy", "record", "--format", "raw", "--rate", "50", "--subprocesses", "--nonblocking",
            "-o", str(raw), "--", *cmd]


def top_functions(raw: Path, n: int = 15) -> list[str]:
    """The ``n`` functions with the most samples anywhere on the stack (inclusive), with self share."""
    total, incl, self_ = 0, collections.Counter(), collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.split(" (")[0] + " " + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  for f in stack.split(";") if f and not f.startswith("process ")]
        total += int(count)
        for f in set(frames):
            incl[f] += int(count)
        if frames:
            self_[frames[-1]] += int(count)
    top = [f for f, _ in self_.most_common(n)]
    return [f"{100 * self_[f] / total:4.1f}% self {100 * incl[f] / total:5.1f}% incl  {f}" for f in top]


def check_code(specs: list[str]) -> None:
    """Each ``--code`` is a folder or a commit of this repository: anything else is bad input
    (one line, exit 2), refused before a server starts or a worktree is added."""
    for spec in specs:
        if Path(spec).is_dir():
            continue
        found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"],
                               capture_output=True)
        if found.returncode != 0:
            print(f"error: --code {spec!r}: neither a folder nor a commit of {ROOT}", file=sys.stderr)
            sys.exit(2)


def sample_sizes(spec: str) -> list[int]:
    """``--samples`` as corpus sizes, each a whole number above 0; anything else is bad input
    (one line, exit 2) found before a server starts or a worktree is added, not int()'s
    traceback in the middle of the run."""
    sizes = [x.strip() for x in spec.split(",")]
    if not all(x.isascii() and x.isdigit() and int(x) > 0 for x in sizes):  # "²".isdigit()
        print(f"error: --samples {spec!r}: a comma list of whole numbers above 0 (say 1000,10000)", file=sys.stderr)
        sys.exit(2)
    return [int(x) for x in sizes]


@contextmanager
def checkouts(specs: list[str], tmp: Path):
    """Folders to build with: a folder as given, a git commit as a temporary worktree."""
    with ExitStack() as stack:
        found = []
        for i, spec in enumerate(specs):
            if Path(spec).is_dir():
                found.append((spec, Path(spec).resolve()))
                continue
            tree = tmp / f"code-{i}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), spec], check=True)
            stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)
            found.append((spec, tree))
        yield found


def print_table(rows: list[dict]) -> None:
    keys = ["samples", "code", "wall_s", "cpu_s", "requests", "req_per_s", "peak_rss_gb", "pairs", "digest"]
    keys += [k for k in ("rerun_s", "rerun_noop") if k in rows[0]]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    for r in rows:
        for key, what in (("profile_top", "build"), ("rerun_profile_top", "re-run")):
            if key in r:
                print(f"\npy-spy, {what}, {r['samples']} samples, code {r['code']}:\n  " + "\n  ".join(r[key]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="1000,10000", help="comma list of corpus sizes")
    ap.add_argument("--per-author", type=int, default=20)
    ap.add_argument("--delay", type=float, default=0.05, help="server reply delay, seconds")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--shard-authors", type=int, default=None)
    ap.add_argument("--code", default=str(ROOT),
                    help="comma list of checkout folders or git commits to build with, side by side; default this one")
    ap.add_argument("--negatives", default=None, help="passed to build --negatives (a subset of strategies)")
    ap.add_argument("--rationales", default=None, help="passed to build --rationales (auto, evidence, llm)")
    ap.add_argument("--rss-trace", action="store_true", help="sample the build's RSS every 0.5 s; report where it peaked")
    ap.add_argument("--rerun", action="store_true", help="also time the identical command again (must be a no-op)")
    ap.add_argument("--profile", action="store_true",
                    help="run the build (and the re-run) under py-spy; print the top functions (cpu_s is then py-spy's)")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="build this authors.jsonl (say examples/authors.jsonl) instead of a synthetic corpus")
    ap.add_argument("--keep", type=Path, default=None, help="write the built folders here (kept) instead of a temp dir")
    args = ap.parse_args()
    sizes = sample_sizes(args.samples)
    check_code(args.code.split(","))
    rows = []
    with FakeServer(reply=persona, delay=args.delay) as server, tempfile.TemporaryDirectory() as tmp, \
            checkouts(args.code.split(","), Path(tmp)) as codes:
        cwd = Path(tmp) / "cwd"  # outside every checkout: see the module docstring
        cwd.mkdir()
        for n in sizes:
            authors = Path(tmp) / f"authors-{n}.jsonl"
            n_authors = copy_corpus(args.corpus, authors) if args.corpus else write_corpus(authors, n, args.per_author)
            for i, (spec, code) in enumerate(codes):
                out = (args.keep or Path(tmp)) / f"out-{n}-{i}"
                row = run_build(authors, out, server, args, code, cwd)
                rows.append({"samples": n, "authors": n_authors, "code": spec, "load": load(), **row})
                print(json.dumps(rows[-1]), flush=True)
    print_table(rows)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()

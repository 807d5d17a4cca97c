"""Time a ``persrm-gen build --backend openai`` and its identical re-run (which must send nothing).

    python benchmarks/resume.py                     # examples/authors.jsonl, --concurrency 64, best of 2
    python benchmarks/resume.py --repeat 3 --delay 0.2

The server is tests/fakeserver.py's FakeServer (a real aiohttp server on 127.0.0.1, in a
thread of this process) replying after ``--delay`` seconds with tests/test_build_api.py's
``persona`` (a deterministic stand-in model whose replies pass the build's validators).
Both are imported from tests/, not copied. Requests are counted server-side (every arrival
is logged by the server), so "0 on the re-run" is what the wire saw, not what the client says.
Each repetition builds into a fresh folder; the re-run uses the same folder and command.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import KEY, FakeServer  # noqa: E402
from test_build_api import persona  # noqa: E402

EXAMPLES = ROOT / "examples" / "authors.jsonl"


def build_cmd(authors: Path, out: Path, base: str, concurrency: int) -> list[str]:
    return [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
            "--backend", "openai", "--model", "gpt-4.1-mini", "--base-url", base,
            "--concurrency", str(concurrency), "--quiet"]


def timed_build(cmd: list[str], server: FakeServer) -> tuple[float, int]:
    """(wall seconds of the whole CLI process, requests the server saw during it)."""
    env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200"}
    before = len(server.snapshot())
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return seconds, len(server.snapshot()) - before


def data_digest(out: Path) -> str:
    """A hash of every parquet file, to show the re-run leaves the dataset byte-identical."""
    h = hashlib.sha256()
    for f in sorted(out.rglob("*.parquet")):
        h.update(str(f.relative_to(out)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def one_round(server: FakeServer, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = build_cmd(args.authors, out, server.openai_base, args.concurrency)
        first_s, first_n = timed_build(cmd, server)
        digest = data_digest(out)
        again_s, again_n = timed_build(cmd, server)
        same = data_digest(out) == digest
    return {"first_s": first_s, "first_requests": first_n, "rerun_s": again_s, "rerun_requests": again_n,
            "fraction": again_s / first_s, "dataset_unchanged": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, default=EXAMPLES)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rounds = []
    with FakeServer(delay=args.delay, reply=persona) as server:
        for i in range(args.repeat):
            r = one_round(server, args)
            rounds.append(r)
            print(f"round {i + 1}: build {r['first_s']:.2f} s ({r['first_requests']} requests), "
                  f"re-run {r['rerun_s']:.2f} s ({r['rerun_requests']} requests) = {r['fraction']:.1%} "
                  f"of the build; dataset unchanged: {r['dataset_unchanged']}", flush=True)
        peak = server.max_in_flight
    best_first = min(r["first_s"] for r in rounds)
    best_again = min(r["rerun_s"] for r in rounds)
    print("\n| | build | identical re-run |\n|---|---|---|")
    print(f"| wall time (best of {len(rounds)}) | {best_first:.2f} s | {best_again:.2f} s "
          f"({best_again / best_first:.1%}) |")
    print(f"| requests seen by the server | {rounds[0]['first_requests']} | "
          f"{max(r['rerun_requests'] for r in rounds)} |")
    print(f"\npeak requests in flight at the server: {peak}; load average {os.getloadavg()[0]:.1f}")
    if any(r["rerun_requests"] for r in rounds):
        raise SystemExit("the re-run sent requests: resume is not free")


if __name__ == "__main__":
    main()

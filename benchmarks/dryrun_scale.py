"""Benchmark: ``persrm-gen build --dry-run`` on synthetic corpora of 1k to 10k authors.

A dry run renders every prompt a build would send and prices it, without calling a model,
so its time is the build's own bookkeeping: loading, splits, tasks, other-author picks,
prompt rendering, cost estimate. That work must grow linearly with the corpus; this script
shows whether it does (seconds per 1,000 authors should stay flat).

Each synthetic author has 5 samples of about 120 words (with sentence punctuation) in one
of two genres. The dry run uses ``--backend openai --model gpt-4.1-mini`` (no key needed,
nothing is sent), so rationale prompts are rendered too.

    python benchmarks/dryrun_scale.py                      # 1000,2000,5000,10000 authors
    python benchmarks/dryrun_scale.py --authors 1000,2000
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

WORDS = [
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
    "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were",
    "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if", "so", "no",
    "will", "more", "said", "what", "up", "out", "about", "who", "them", "some", "could", "into", "time",
    "only", "new", "then", "these", "two", "may", "first", "any", "like", "now", "my", "over", "such", "our",
    "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back",
    "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men",
    "work", "long", "get", "here", "between", "both", "life", "being", "under", "never",
]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + rng.choice(".!?.")


def write_corpus(path: Path, n_authors: int, samples: int = 5, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for a in range(n_authors):
            genre = ("essay", "letter")[a % 2]
            texts = [" ".join(sentence(rng) for _ in range(10)) for _ in range(samples)]
            obj = {"author_id": f"author-{a:05d}", "samples": [{"text": t, "genre": genre} for t in texts]}
            fh.write(json.dumps(obj) + "\n")


def time_dry_run(authors: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
           "--backend", "openai", "--model", "gpt-4.1-mini", "--dry-run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", default="1000,2000,5000,10000", help="comma-separated corpus sizes")
    args = ap.parse_args()
    print(f"{'authors':>8} {'seconds':>8} {'s per 1k authors':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.authors.split(",")):
            corpus = Path(tmp) / f"authors-{n}.jsonl"
            write_corpus(corpus, n)
            took = time_dry_run(corpus, Path(tmp) / f"out-{n}")
            print(f"{n:>8} {took:>8.1f} {took / n * 1000:>17.2f}", flush=True)


if __name__ == "__main__":
    main()

"""Benchmark: near-duplicate detection (persrm_gen.dataset.minhash.near_duplicate_pairs) at scale.

Builds N synthetic texts of about 60 words from sentences of the bundled corpora (each
word re-drawn from the corpus vocabulary with probability 0.15, so unrelated texts do not
share whole sentences), injects ~5% near duplicates (1-3 word substitutions, a dropped or
inserted word, case/punctuation/whitespace changes), then times the detection and reports
recall of the injected pairs whose true word-shingle Jaccard is >= the threshold.

    python benchmarks/near_dup.py                    # 100,000 texts
    python benchmarks/near_dup.py --n 20000 --datasketch 2000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from persrm_gen.dataset.minhash import MinHasher, jaccard, lsh_params, near_duplicate_pairs  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"


def load_sentences() -> list[str]:
    sents = []
    for name in ("peps.jsonl", "speeches.jsonl"):
        path = CORPORA / name
        if not path.exists():
            continue
        for line in path.open():
            for s in json.loads(line)["samples"]:
                sents.extend(x for x in re.split(r"(?<=[.!?])\s+", s["text"]) if len(x.split()) >= 4)
    if not sents:  # no corpora: a generated vocabulary still exercises the code
        rng = random.Random(0)
        words = [f"w{i}" for i in range(5000)]
        sents = [" ".join(rng.choices(words, k=rng.randint(8, 25))) + "." for _ in range(3000)]
    return sents


def perturb(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    kind = rng.choice(["sub1", "sub2", "sub3", "drop", "insert", "case", "punct"])
    if kind.startswith("sub"):
        for _ in range(int(kind[-1])):
            words[rng.randrange(len(words))] = rng.choice(vocab)
    elif kind == "drop":
        del words[rng.randrange(len(words))]
    elif kind == "insert":
        words.insert(rng.randrange(len(words)), rng.choice(vocab))
    elif kind == "case":
        return text.upper() if rng.random() < 0.5 else text.lower()
    else:
        return "  " + text.replace(",", "").replace(".", " .") + " !"
    return " ".join(words)


def make_texts(n: int, words: int, dup_rate: float, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    rng = random.Random(seed)
    sents = load_sentences()
    vocab = sorted({w for s in sents for w in s.split()})
    texts: list[str] = []
    injected: list[tuple[int, int]] = []
    for i in range(n):
        if texts and rng.random() < dup_rate:
            src = rng.randrange(len(texts))
            texts.append(perturb(texts[src], rng, vocab))
            injected.append((src, i))
            continue
        out: list[str] = []
        while len(out) < words:
            out.extend(w if rng.random() > 0.15 else rng.choice(vocab) for w in rng.choice(sents).split())
        texts.append(" ".join(out[: words + rng.randint(-10, 10)]))
    return texts, injected


def datasketch_rate(texts: list[str], num_perm: int, shingle: int) -> float:
    """texts/s of datasketch's per-text MinHash.update (signatures only, no LSH)."""
    from datasketch import MinHash

    from persrm_gen.dataset.minhash import tokens

    t0 = time.perf_counter()
    for t in texts:
        toks = tokens(t)
        m = MinHash(num_perm=num_perm)
        m.update_batch([" ".join(toks[i : i + shingle]).encode() for i in range(max(len(toks) - shingle + 1, 1))])
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--dup-rate", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.85)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--shingle", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasketch", type=int, default=0, help="also time datasketch MinHash on this many texts")
    args = ap.parse_args()

    texts, injected = make_texts(args.n, args.words, args.dup_rate, args.seed)
    t0 = time.perf_counter()
    found = near_duplicate_pairs(texts, args.threshold, args.num_perm, args.shingle)
    elapsed = time.perf_counter() - t0

    hasher = MinHasher(args.num_perm, args.shingle)
    h, off = hasher.shingles([texts[i] for pair in injected for i in pair])
    true_j = [jaccard(h[off[k] : off[k + 1]], h[off[k + 1] : off[k + 2]]) for k in range(0, 2 * len(injected), 2)]
    hits = {(i, j) for i, j, _ in found}
    above = [p for p, jac in zip(injected, true_j) if jac >= args.threshold]
    recall = sum(p in hits for p in above) / max(len(above), 1)
    bands, rows = lsh_params(args.threshold, args.num_perm)
    print(f"texts: {len(texts):,}  mean words: {np.mean([len(t.split()) for t in texts]):.1f}")
    print(f"injected near-dups: {len(injected):,}  with true Jaccard >= {args.threshold}: {len(above):,}")
    print(f"LSH: {args.num_perm} permutations, {bands} bands x {rows} rows, {args.shingle}-word shingles")
    print(f"time: {elapsed:.2f} s  ({len(texts) / elapsed:,.0f} texts/s)")
    print(f"pairs found: {len(found):,}  recall of injected pairs above threshold: {recall:.4f}")
    if args.datasketch:
        rate = datasketch_rate(texts[: args.datasketch], args.num_perm, args.shingle)
        print(f"datasketch MinHash (signatures only): {rate:,.0f} texts/s -> {len(texts) / rate:.1f} s for {len(texts):,}")


if __name__ == "__main__":
    main()

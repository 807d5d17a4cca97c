"""Cost per 1,000 pairs of one corpus build, billed by a loopback server at list prices.

    python benchmarks/cost.py                           # 20 authors x 10 samples, both models
    python benchmarks/cost.py --authors 50 --samples 20 --models gpt-4.1-mini

Each row builds the same synthetic corpus with ``persrm-gen build`` (a subprocess, as a user
runs it) against tests/fakeserver.py's FakeServer, which replies with tests/test_build_api.py's
``persona`` (judge traces padded to a realistic length) and bills every reply at the model's
list price (``prices=``), independently of our own price table. The columns:

- ``live``: today's build, the server without a prompt cache (what you pay with none).
- ``live+cache``: the server caches prompt prefixes the way the provider does (OpenAI:
  automatic, from 1,024 tokens; Anthropic: at our ``cache_control`` breakpoints).
- ``live+cache+hint``: with ``--trace-hint`` (what the hinted last attempt costs, and the
  share of hard pairs, mimic and minimal-edit, whose trace reaches ``sft``).
- ``batch`` / ``batch+cache``: hooks for ``--batch`` (:data:`MODES`); a mode whose flag this
  build does not know is reported as "n/a" instead of run.

Per row: the server's bill per 1,000 pairs, the manifest's billed cost against it (the
ledger's error), input tokens per kept trace, the cached share, and the wall time a
200k tokens-per-minute limit implies for the input tokens (live; batch jobs are not paced
by it). The corpus: ``--authors`` synthetic authors, each drawing ~200-word samples from the
sentences of one author of ../shared/corpora (the issue's news corpus is not bundled).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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
# List prices, USD per 1M tokens (the providers' pages, standard tier).
LIST_PRICES = {
    "gpt-4.1-mini": {"input": 0.40, "cached_input": 0.10, "output": 1.60, "batch_multiplier": 0.5},
    "claude-sonnet-4-5": {"input": 3.0, "cached_input": 0.30, "cache_write": 3.75, "output": 15.0,
                          "batch_multiplier": 0.5},
}
# mode -> (extra build flags, server caches prompts). Batch modes need --batch (issue 11, item 1).
MODES = {
    "live": ((), False),
    "live+cache": ((), True),
    "live+cache+hint": (("--trace-hint",), True),
    "batch": (("--batch",), False),
    "batch+cache": (("--batch",), True),
}
TPM = 200_000
FILLER = (" The samples favour long sentences joined by commas and a formal register; the measured sentence "
          "length and the function-word rates of one response sit near the author's mean, while the other "
          "drifts toward shorter, plainer clauses with more contractions.")


def reply(body: dict, text: str) -> str:
    """The persona, with judge traces of about 90 tokens (the issue's build averaged 76 output
    tokens per request)."""
    out = persona(body, text)
    return out.replace("\n</think>", FILLER + "\n</think>", 1) if "<think>" in out else out


def write_corpus(path: Path, authors: int, samples: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    sources = []
    for f in sorted(CORPORA.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            sents = [s for smp in row["samples"] for s in re.split(r"(?<=[.!?])\s+", smp["text"]) if len(s.split()) >= 4]
            if len(sents) >= 20:
                sources.append(sents)
    if not sources:
        raise SystemExit(f"no corpora under {CORPORA}")
    with path.open("w") as fh:
        for a in range(authors):
            sents = sources[a % len(sources)]
            rows = []
            for i in range(samples):
                start, words, text = rng.randrange(len(sents)), 0, []
                while words < 200:
                    s = sents[(start + len(text)) % len(sents)]
                    text.append(s)
                    words += len(s.split())
                rows.append({"id": f"s{i}", "text": " ".join(text), "genre": "speech"})
            fh.write(json.dumps({"author_id": f"author-{a:03d}", "name": f"Author {a}", "samples": rows}) + "\n")


def supports(flag: str) -> bool:
    out = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "build", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", out.stdout) is not None  # not --batch-size


def build(corpus: Path, out: Path, model: str, flags: tuple[str, ...], caching: bool, concurrency: int,
          delay: float = 0.0) -> dict:
    backend = "anthropic" if model.startswith("claude") else "openai"
    with FakeServer(reply=reply, caching=caching, exact_usage=True, prices=LIST_PRICES, delay=delay) as server:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}
        cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(corpus), "--out", str(out),
               "--backend", backend, "--model", model, "--concurrency", str(concurrency), "--quiet", *flags]
        if backend == "openai":
            cmd += ["--base-url", server.openai_base]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr[-2000:]}")
        billed, hits = server.billed(), len(server.snapshot())
    manifest = json.loads((out / "manifest.json").read_text())
    usage = manifest["usage"]
    pairs = sum(manifest["counts"]["pairs"].values())
    kept = usage.get("judge_requests_by_strategy", {}).get("all", {}).get("kept_traces") or 1
    total = usage["total"]
    return {
        "pairs": pairs, "requests": hits, "server_usd": billed, "ledger_usd": total["cost_usd"],
        "per_1k_pairs": 1000 * billed / pairs, "input_per_kept_trace": total["input_tokens"] / kept,
        "cached_share": total["cached_share"], "tpm_hours": total["input_tokens"] / TPM / 60, "wall_s": wall,
        "judge_per_kept_trace": usage.get("judge_requests_by_strategy", {}).get("all", {}).get("requests_per_kept_trace"),
        "hard_in_sft": _hard_share(usage.get("judge_requests_by_strategy", {})),
    }


def _hard_share(judge: dict) -> float:
    """Share of the hard pairs (mimic, minimal-edit) whose trace reached sft."""
    hard = [judge[s] for s in ("mimic", "minimal-edit") if s in judge]
    pairs = sum(h["pairs"] for h in hard)
    return sum(h["kept_traces"] for h in hard) / pairs if pairs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=int, default=20)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--models", default="gpt-4.1-mini,claude-sonnet-4-5")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--delay", type=float, default=0.0, help="server reply delay, seconds (prefixes sent "
                    "while an identical one is in flight miss the cache)")
    args = ap.parse_args()
    batch_ok = supports("--batch")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "authors.jsonl"
        write_corpus(corpus, args.authors, args.samples)
        print(f"corpus: {args.authors} authors x {args.samples} samples of ~200 words; concurrency {args.concurrency}, "
              f"server delay {args.delay} s")
        print("| model | mode | pairs | requests | server $ | ledger $ | ledger error | $ per 1k pairs | vs live "
              "| input tok / kept trace | judge req / kept trace | hard pairs in sft | cached share | h at 200k TPM "
              "| wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for model in args.models.split(","):
            base = None
            for mode in args.modes.split(","):
                flags, caching = MODES[mode]
                if "--batch" in flags and not batch_ok:
                    print(f"| {model} | {mode} | n/a (this build has no --batch) |")
                    continue
                r = build(corpus, Path(tmp) / f"{model}-{mode}", model, flags, caching, args.concurrency, args.delay)
                base = base or r["per_1k_pairs"]
                err = abs(r["ledger_usd"] - r["server_usd"]) / r["server_usd"] if r["server_usd"] else 0.0
                print(f"| {model} | {mode} | {r['pairs']:,} | {r['requests']:,} | {r['server_usd']:.4f} | "
                      f"{r['ledger_usd']:.4f} | {err:.2%} | {r['per_1k_pairs']:.3f} | {r['per_1k_pairs'] / base:.2f} | "
                      f"{r['input_per_kept_trace']:,.0f} | {r['judge_per_kept_trace']} | {r['hard_in_sft']:.0%} | "
                      f"{r['cached_share']:.0%} | "
                      f"{r['tpm_hours']:.2f} | {r['wall_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()

"""CPU benchmark: train the real embedded Gemma 3 270M on a PEP dataset, score unseen authors.

    python benchmarks/train_cpu.py [--steps 30] [--eval-pairs 20] [--work /tmp/persrm-train-cpu]

1. builds a dataset from ../shared/corpora/peps.jsonl with `persrm-gen build`, using
   the negatives and rationales that need no model calls (other-author, evidence),
   unless --data names a dataset already built;
2. `train sft` for a bounded number of steps on the embedded model (float32, CPU);
3. `eval` on test_unseen_authors: the SFT model vs the stylometric and random judges.
Prints one JSON summary (also written to WORK/summary.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEPS = ROOT.parent / "shared" / "corpora" / "peps.jsonl"


def run(*args: str) -> float:
    started = time.monotonic()
    print("$ persrm-gen", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "persrm_gen.cli", *args], check=True, cwd=ROOT)
    return round(time.monotonic() - started, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/persrm-train-cpu"))
    p.add_argument("--data", type=Path, default=None, help="an already built dataset folder")
    p.add_argument("--authors", type=Path, default=PEPS)
    p.add_argument("--targets-per-author", type=int, default=4)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--eval-pairs", type=int, default=20)
    p.add_argument("--max-new-tokens", type=int, default=160)
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    timings = {}
    data = a.data or a.work / "data"
    if a.data is None:
        timings["build_s"] = run("build", "--authors", str(a.authors), "--out", str(data), "--negatives",
                                 "other-author", "--rationales", "evidence", "--max-targets-per-author",
                                 str(a.targets_per_author), "--context-size", "2")  # fmt: skip
    ckpt = a.work / "sft"
    config = a.work / "sft.yaml"
    config.write_text("logging_steps: 1\n")  # a loss for every step of a short run
    timings["sft_s"] = run("train", "sft", "--data", str(data), "--out", str(ckpt), "--overwrite",
                           "--config", str(config), "--max-steps", str(a.steps), "--batch-size", "2", "--lr", "5e-5",
                           "--max-length", str(a.max_length))  # fmt: skip
    timings["eval_s"] = run("eval", "--model", str(ckpt), "--data", str(data), "--split", "test_unseen_authors",
                            "--limit", str(a.eval_pairs), "--max-new-tokens", str(a.max_new_tokens),
                            "--batch-size", "4")  # fmt: skip
    report = json.loads((ckpt / "report.json").read_text())
    train = json.loads((ckpt / "persrm_train.json").read_text())
    summary = {
        "steps": train["global_step"],
        "sft_tokens_per_s": round(train["num_input_tokens_seen"] / train["final_metrics"]["train_runtime"], 1),
        "sft_final_loss": next((h["loss"] for h in reversed(train["log_history"]) if "loss" in h), None),
        "pairs": report["n_pairs"],
        "accuracy": {k: round(v["accuracy"], 3) for k, v in report["judges"].items()},
        "accuracy_forced": {k: round(v["accuracy_forced"], 3) for k, v in report["judges"].items()},
        "order_consistency": {k: round(v["order_consistency"], 3) for k, v in report["judges"].items()},
        "order_consistency_forced": {k: round(v["order_consistency_forced"], 3) for k, v in report["judges"].items()},
        "model_reasoning_words": report["judges"]["model"]["mean_reasoning_words"],
        "model_parse_failure_rate": report["judges"]["model"]["parse_failure_rate"],
        **timings,
    }
    (a.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

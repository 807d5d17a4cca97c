"""Throughput of our SFT and GRPO trainers on the Gemma 3 270M architecture (random weights, bf16).

    python -m persrm_gen.trainers.bench --out bench-out [--sft-steps 20] [--grpo-steps 3]

Runs each trainer twice on the same synthetic data: ``plain`` (TRL defaults: padded
batches, gradient checkpointing, plain ``generate``) and ``fast`` (packing/padding-free,
no checkpointing, paged continuous-batching generation), and writes ``bench.json``.
Random weights rarely sample EOS, so most GRPO completions run to their full 256
tokens; compare ``plain`` and ``fast`` from the same run, on the same card.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from persrm_gen.trainers import common

WORDS = [f"w{i}" for i in range(3000)]


def _trace(rng: random.Random, n_words: int) -> str:
    return "<think>\n" + " ".join(rng.choice(WORDS) for _ in range(n_words)) + "\n</think>\n<answer>A</answer>"


def write_bench_dataset(folder: Path, rows: int, prompt_words: int, completion_words: tuple[int, int]) -> None:
    """sft and rft configs, word-level tokens: a word plus its space is two tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    sft, rft = [], []
    for _ in range(rows):
        prompt = [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(prompt_words))}]
        sft.append({"prompt": prompt, "completion": [{"role": "assistant", "content": _trace(rng, rng.randint(*completion_words))}]})
        rft.append({"prompt": prompt, "label": rng.choice("AB")})
    for name, data in (("sft", sft), ("rft", rft)):
        (folder / "data" / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(data), folder / "data" / name / "train.parquet")


def build_model(folder: Path) -> Path:
    import torch
    from transformers import Gemma3ForCausalLM

    from persrm_gen.trainers.tiny import TAG_TOKENS, train_tokenizer, gemma3_270m_config

    tokenizer = train_tokenizer([" ".join(WORDS), " ".join(TAG_TOKENS)], vocab_size=4000)
    config = gemma3_270m_config(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_sft(data: Path, model: Path, out: Path, steps: int, fast: bool) -> dict:
    from persrm_gen.trainers.sft import SFTOptions, train_sft

    opts = SFTOptions(data=str(data), model=str(model), out=str(out), max_steps=steps, batch_size=16,
                      max_length=1024, packing=fast, gradient_checkpointing=not fast, logging_steps=steps,
                      overwrite=True, trl_args={"dataloader_num_workers": 2} if fast else {})  # fmt: skip
    info = train_sft(opts)
    seconds = info["final_metrics"]["train_runtime"]
    return {"steps": steps, "seconds": seconds, "tokens": info["num_input_tokens_seen"],
            "tokens_per_s": round(info["num_input_tokens_seen"] / seconds, 1)}  # fmt: skip


def run_grpo(data: Path, model: Path, out: Path, steps: int, fast: bool) -> dict:
    from persrm_gen.trainers.rft import RFTOptions, train_rft

    opts = RFTOptions(data=str(data), model=str(model), out=str(out), max_steps=steps, batch_size=32,
                      num_generations=8, max_completion_length=256, paged=fast,
                      gradient_checkpointing=not fast, logging_steps=1, overwrite=True)  # fmt: skip
    info = train_rft(opts)
    step_times = [h["step_time"] for h in info["log_history"] if "step_time" in h]
    warm = step_times[1:] or step_times  # the first step pays for CUDA kernels and caches
    return {"steps": steps, "s_per_step": round(sum(warm) / len(warm), 3), "step_times": step_times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--only", choices=["sft", "grpo"], default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out / "gemma3-270m-random")
    results: dict = {"gpu": _gpu_name()}
    if args.only in (None, "sft"):
        # ~1000-token rows (450-word prompt + 20-45-word trace), as in the baseline.
        write_bench_dataset(args.out / "sft-data", 16 * args.sft_steps, 450, (20, 45))
        for mode in ("plain", "fast"):
            results[f"sft_{mode}"] = _timed(run_sft, args.out / "sft-data", model, args.out / f"sft-{mode}",
                                            args.sft_steps, mode == "fast")  # fmt: skip
            _save(args.out, results)
    if args.only in (None, "grpo"):
        write_bench_dataset(args.out / "grpo-data", 4 * args.grpo_steps, 100, (10, 20))
        for mode in ("plain", "fast"):
            results[f"grpo_{mode}"] = _timed(run_grpo, args.out / "grpo-data", model, args.out / f"grpo-{mode}",
                                             args.grpo_steps, mode == "fast")  # fmt: skip
            _save(args.out, results)
    print(json.dumps(results, indent=2))


def _timed(fn, *args) -> dict:
    started = time.monotonic()
    try:
        result = fn(*args)
    except Exception as exc:  # report and go on: one failed variant must not hide the others
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if common.on_gpu() else "cpu"


def _save(out: Path, results: dict) -> None:
    common.write_json(out / "bench.json", results)


if __name__ == "__main__":
    main()

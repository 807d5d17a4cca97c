"""Throughput of our SFT and GRPO trainers on the Gemma 3 270M architecture (random weights, bf16).

    python -m persrm_gen.trainers.bench --out bench-out [--sft-steps 20] [--grpo-steps 3]
    python -m persrm_gen.trainers.bench --out /tmp/b --tiny      # CPU smoke run of the same code

Runs each trainer in several variants on the same synthetic data and writes
``bench.json`` after each one, so a run cut short keeps what it measured:

- ``sft_plain``: TRL defaults (padded batches, gradient checkpointing): the baseline.
- ``sft_fast``: bin packing without padding, no checkpointing.
- ``sft_compiled``: ``sft_fast`` plus ``torch.compile`` (GPU only).
- ``grpo_plain``: plain ``generate``, gradient checkpointing: the baseline.
- ``grpo_paged``: transformers' paged continuous batching, no checkpointing.
- ``grpo_paged_graphs``: ``grpo_paged`` with CUDA graphs forced on (GPU only).

Random weights rarely sample EOS, so most GRPO completions run to their full length;
compare variants from the same run, on the same card.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persrm_gen.trainers import common

WORDS = [f"w{i}" for i in range(3000)]


@dataclass(frozen=True)
class Shapes:
    """Row and batch shapes; ``FULL`` matches the issue's H100 baseline."""

    sft_batch: int = 16
    sft_prompt_words: int = 450  # + a 20-45-word trace: ~1000 tokens a row
    sft_trace_words: tuple[int, int] = (20, 45)
    max_length: int = 1024
    grpo_batch: int = 32  # completions per step
    num_generations: int = 8
    grpo_prompt_words: int = 100
    completion_tokens: int = 256


FULL = Shapes()
TINY = Shapes(sft_batch=4, sft_prompt_words=40, sft_trace_words=(5, 10), max_length=128, grpo_batch=8,
              num_generations=4, grpo_prompt_words=20, completion_tokens=16)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    fast: bool
    trl_args: dict[str, Any] = field(default_factory=dict)
    gpu_only: bool = False


SFT_VARIANTS = (
    Variant("sft_plain", fast=False),
    Variant("sft_fast", fast=True),
    Variant("sft_compiled", fast=True, trl_args={"torch_compile": True}, gpu_only=True),
)
GRPO_VARIANTS = (
    Variant("grpo_plain", fast=False),
    Variant("grpo_paged", fast=True),
    Variant("grpo_paged_graphs", fast=True, gpu_only=True,
            trl_args={"transformers_continuous_batching_config": {"use_cuda_graph": True}}),
)  # fmt: skip


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


def build_model(folder: Path, tiny: bool) -> Path:
    """The Gemma 3 270M shape in bf16 (or a 2-layer one for --tiny), random weights, word tokenizer."""
    from persrm_gen.trainers.tiny import TAG_TOKENS, build_random_model

    # --tiny keeps the 270M config's attention windows and positions; the full run keeps its
    # 262k-token embedding (the real cost), however few words the tokenizer knows.
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 head_dim=32, query_pre_attn_scalar=32) if tiny else {"vocab_size": 262144}  # fmt: skip
    return build_random_model(folder, [" ".join(WORDS), " ".join(TAG_TOKENS)], tokenizer_size=4000, full_size=True,
                              dtype="float32" if tiny else "bfloat16", **small)  # fmt: skip


def run_sft(data: Path, model: Path, out: Path, steps: int, variant: Variant, shapes: Shapes) -> dict:
    from persrm_gen.trainers.sft import SFTOptions, train_sft

    extra = {"dataloader_num_workers": 2} if variant.fast and common.on_gpu() else {}
    opts = SFTOptions(data=str(data), model=str(model), out=str(out), max_steps=steps, batch_size=shapes.sft_batch,
                      max_length=shapes.max_length, packing=variant.fast, gradient_checkpointing=not variant.fast,
                      logging_steps=steps, overwrite=True, trl_args=extra | variant.trl_args)  # fmt: skip
    info = train_sft(opts)
    seconds = info["final_metrics"]["train_runtime"]
    return {"steps": steps, "seconds": seconds, "tokens": info["num_input_tokens_seen"],
            "tokens_per_s": round(info["num_input_tokens_seen"] / seconds, 1)}  # fmt: skip


def run_grpo(data: Path, model: Path, out: Path, steps: int, variant: Variant, shapes: Shapes) -> dict:
    from persrm_gen.trainers.rft import RFTOptions, train_rft

    opts = RFTOptions(data=str(data), model=str(model), out=str(out), max_steps=steps, batch_size=shapes.grpo_batch,
                      num_generations=shapes.num_generations, max_completion_length=shapes.completion_tokens,
                      paged=variant.fast, gradient_checkpointing=not variant.fast, logging_steps=1, overwrite=True,
                      trl_args=dict(variant.trl_args))  # fmt: skip
    info = train_rft(opts)
    step_times = [h["step_time"] for h in info["log_history"] if "step_time" in h]
    warm = step_times[1:] or step_times  # the first step pays for CUDA kernels and caches
    lengths = [h["completions/mean_length"] for h in info["log_history"] if "completions/mean_length" in h]
    return {"steps": steps, "s_per_step": round(sum(warm) / len(warm), 3), "step_times": step_times,
            "mean_completion_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--only", choices=["sft", "grpo"], default=None)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and short rows: a CPU smoke run")
    args = parser.parse_args(argv)
    shapes = TINY if args.tiny else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out / "model", args.tiny)
    results: dict = {"gpu": _gpu_name(), "shapes": shapes.__dict__}
    plan = []
    if args.only in (None, "sft"):
        write_bench_dataset(args.out / "sft-data", shapes.sft_batch * args.sft_steps, shapes.sft_prompt_words,
                            shapes.sft_trace_words)  # fmt: skip
        plan += [(v, run_sft, args.out / "sft-data", args.sft_steps) for v in SFT_VARIANTS]
    if args.only in (None, "grpo"):
        prompts = shapes.grpo_batch // shapes.num_generations * args.grpo_steps
        write_bench_dataset(args.out / "grpo-data", prompts, shapes.grpo_prompt_words, (10, 20))
        plan += [(v, run_grpo, args.out / "grpo-data", args.grpo_steps) for v in GRPO_VARIANTS]
    # Baselines and the cheap fast variants first; the compiled ones (slow to warm up) last.
    plan.sort(key=lambda p: p[0].gpu_only)
    for variant, fn, data, steps in plan:
        if variant.gpu_only and not common.on_gpu():
            results[variant.name] = {"skipped": "GPU only"}
            continue
        results[variant.name] = _timed(fn, data, model, args.out / variant.name, steps, variant, shapes)
        _save(args.out, results)
    _save(args.out, results)
    print(json.dumps(results, indent=2))
    return results


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

"""Reinforcement fine-tuning (GRPO) on the ``rft`` config with verifiable rewards.

    persrm-gen train rft --data out/ --model ckpt/sft --out ckpt/rft
    accelerate launch --config_file persrm_gen/trainers/configs/deepspeed_zero2.yaml -m persrm_gen.trainers.rft ...

For each prompt the policy samples ``num_generations`` judgments; each is scored by
the format reward, the accuracy reward (verdict == label) and an optional length
penalty; GRPO pushes up the better-than-group-average ones. Generation runs on vLLM
(``--use-vllm``), on transformers' paged continuous batching (``--paged``, the GPU
default without vLLM) or on plain ``generate``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import Field
from pydantic.dataclasses import dataclass

from persrm_gen.errors import UsageError
from persrm_gen.options_file import STRICT, load_options
from persrm_gen.trainers import common
from persrm_gen.trainers.common import Count, Rate, Weight, Whole


@dataclass(config=STRICT)
class RFTOptions:
    data: str = "out"
    out: str = "ckpt/rft"
    model: str | None = None  # usually the SFT checkpoint
    max_steps: Annotated[int, Field(ge=-1)] = -1
    epochs: Rate = 1.0
    batch_size: Count | None = None  # per device; None: num_generations (one prompt per device step)
    grad_accum: Count = 1
    learning_rate: Rate = 1e-6
    num_generations: Annotated[int, Field(ge=2)] = 8  # GRPO compares completions within a group
    max_completion_length: Count = 512
    max_length: Count = 2048  # prompt + completion; longer prompts get shorter writing samples
    max_prompt_length: Count | None = None  # a tighter prompt budget than max_length - max_completion_length
    temperature: Rate = 1.0
    beta: Weight = 0.0  # KL weight; 0 skips the reference model
    length_penalty: Weight = 0.0  # coefficient; 0 disables it
    length_target: Whole = 200  # reasoning words before the penalty starts
    use_vllm: bool = False
    paged: bool | None = None  # None: on for GPU without vLLM
    gradient_checkpointing: bool | None = None
    lora: bool = False
    lora_r: Count = 16
    lora_alpha: Count = 32
    seed: Whole = 0
    logging_steps: Count = 10
    overwrite: bool = False
    trl_args: dict[str, Any] = field(default_factory=dict)  # any other GRPOConfig field


def _generation_args(opts: RFTOptions) -> dict[str, Any]:
    if opts.use_vllm:
        if importlib.util.find_spec("vllm") is None:
            raise UsageError("--use-vllm needs vLLM: pip install vllm (or drop --use-vllm)")
        return {"use_vllm": True, "vllm_mode": "colocate"}
    paged = common.on_gpu() if opts.paged is None else opts.paged
    return {"use_transformers_continuous_batching": paged}


def prompt_budget(opts: RFTOptions) -> int:
    """Tokens a prompt may take: what --max-length leaves beside the completion (or --max-prompt-length)."""
    if opts.max_length <= opts.max_completion_length:
        raise UsageError(f"--max-length ({opts.max_length}) must be larger than --max-completion-length "
                         f"({opts.max_completion_length}): the prompt needs room too")  # fmt: skip
    budget = opts.max_length - opts.max_completion_length
    return min(budget, opts.max_prompt_length) if opts.max_prompt_length else budget


def train_rft(opts: RFTOptions) -> dict:
    """GRPO-train, save a plain model folder with a card into ``opts.out``; return the run summary."""
    from trl import GRPOConfig, GRPOTrainer

    out = Path(opts.out)
    batch = opts.batch_size or opts.num_generations
    # GRPO groups completions across processes: the global batch must hold whole groups.
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if batch * processes % opts.num_generations:
        raise UsageError(f"--batch-size ({batch}) x {processes} process(es) must be a multiple of "
                         f"--num-generations ({opts.num_generations})")  # fmt: skip
    budget = prompt_budget(opts)
    common.check_output_dir(out, opts.overwrite)
    config = common.trl_config(GRPOConfig, {
        "output_dir": str(out),
        "max_steps": opts.max_steps,
        "num_train_epochs": opts.epochs,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": opts.grad_accum,
        "learning_rate": opts.learning_rate,
        "num_generations": opts.num_generations,
        "max_completion_length": opts.max_completion_length,
        "temperature": opts.temperature,
        "beta": opts.beta,
        "seed": opts.seed,
        "logging_steps": opts.logging_steps,
        "save_strategy": "no",
        "report_to": "none",
        **_generation_args(opts),
        **common.hardware_args(opts.gradient_checkpointing),
    }, opts.trl_args)  # fmt: skip
    model_dir, base_name = common.resolve_model_dir(opts.model)
    rows = common.load_rows(opts.data, "rft", "train", ("prompt", "label"))
    model, tokenizer = common.load_model_and_tokenizer(model_dir)
    # GRPO does not truncate prompts: each must leave room for the completion.
    train, fit = common.fitted_train_rows(opts.data, rows, tokenizer, "training prompt",
                                          max_length=opts.max_length, budget=budget)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    from persrm_gen.trainers.rewards import ZeroSpreadWarning, reward_functions  # noqa: PLC0415 - imports transformers

    zero_spread = ZeroSpreadWarning()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(opts.length_penalty, opts.length_target),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=common.lora_config(opts.lora_r, opts.lora_alpha) if opts.lora else None,
        callbacks=[zero_spread],
    )
    trainer.train()
    common.save_full_model(trainer, tokenizer, out)
    info = common.record_training(
        out, stage="rft", options=opts, base_model=base_name, config="rft", rows=len(train), trainer=trainer,
        fitting=fit,
    )
    info["zero_spread_steps"] = zero_spread.zero_spread_steps
    return info


def command(
    data: Path = typer.Option(..., "--data", help="Built dataset folder (persrm-gen build --out)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write."),
    model: Optional[str] = typer.Option(None, "--model", help="Model folder, usually ckpt/sft; default: embedded."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON file of options; the CLI overrides it."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Completions per device step."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", "--lr"),
    num_generations: Optional[int] = typer.Option(None, "--num-generations", help="Completions per prompt."),
    max_completion_length: Optional[int] = typer.Option(None, "--max-completion-length"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Prompt + completion tokens (default 2048); "
                                             "longer prompts get shorter writing samples."),
    max_prompt_length: Optional[int] = typer.Option(None, "--max-prompt-length", help="Tighter prompt budget."),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    beta: Optional[float] = typer.Option(None, "--beta", help="KL coefficient (0: no reference model)."),
    length_penalty: Optional[float] = typer.Option(None, "--length-penalty", help="Penalty for long reasoning."),
    length_target: Optional[int] = typer.Option(None, "--length-target", help="Words before the penalty."),
    use_vllm: Optional[bool] = typer.Option(None, "--use-vllm", help="Generate with TRL's vLLM colocate mode."),
    paged: Optional[bool] = typer.Option(None, "--paged/--no-paged", help="Paged continuous-batching generation."),
    lora: Optional[bool] = typer.Option(None, "--lora/--no-lora", help="Train LoRA adapters (merged on save)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite", help="Train into a non-empty --out."),
) -> None:
    """GRPO on the dataset's `rft` config with format, accuracy and length rewards."""
    overrides = dict(locals())
    config_file = overrides.pop("config")
    opts = load_options(RFTOptions, config_file, {k: str(v) if isinstance(v, Path) else v
                                                          for k, v in overrides.items()})
    info = train_rft(opts)
    note = f" ({len(info['zero_spread_steps'])} logged steps had no reward spread)" if info["zero_spread_steps"] else ""
    typer.echo(f"RFT done: {info['global_step']} steps on {common.rows_note(info)}, model and card in {opts.out}{note}")


def main() -> None:
    from persrm_gen.exitcodes import run_cli  # noqa: PLC0415

    run_cli(lambda: typer.run(command))


if __name__ == "__main__":
    main()

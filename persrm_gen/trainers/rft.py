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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from persrm_gen.errors import UsageError
from persrm_gen.options_file import load_options
from persrm_gen.trainers import common


@dataclass
class RFTOptions:
    data: str = "out"
    out: str = "ckpt/rft"
    model: str | None = None  # usually the SFT checkpoint
    max_steps: int = -1
    epochs: float = 1.0
    batch_size: int | None = None  # per device; None: num_generations (one prompt per device step)
    grad_accum: int = 1
    learning_rate: float = 1e-6
    num_generations: int = 8
    max_completion_length: int = 512
    max_prompt_length: int | None = None  # drop longer prompts (GRPO does not truncate them)
    temperature: float = 1.0
    beta: float = 0.0  # KL weight; 0 skips the reference model
    length_penalty: float = 0.0  # coefficient; 0 disables it
    length_target: int = 200  # reasoning words before the penalty starts
    use_vllm: bool = False
    paged: bool | None = None  # None: on for GPU without vLLM
    gradient_checkpointing: bool | None = None
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    logging_steps: int = 10
    overwrite: bool = False
    trl_args: dict[str, Any] = field(default_factory=dict)  # any other GRPOConfig field


def _generation_args(opts: RFTOptions) -> dict[str, Any]:
    if opts.use_vllm:
        if importlib.util.find_spec("vllm") is None:
            raise UsageError("--use-vllm needs vLLM: pip install vllm (or drop --use-vllm)")
        return {"use_vllm": True, "vllm_mode": "colocate"}
    paged = common.on_gpu() if opts.paged is None else opts.paged
    return {"use_transformers_continuous_batching": paged}


def _prompt_filter(tokenizer, limit: int):
    def short_enough(row) -> bool:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return len(ids) <= limit

    return short_enough


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
    common.check_output_dir(out, opts.overwrite)
    model_dir, base_name = common.resolve_model_dir(opts.model)
    train = common.load_split(opts.data, "rft", "train")
    common.require_columns(train, str(common.split_path(opts.data, "rft", "train")), ("prompt", "label"))
    train = train.select_columns(["prompt", "label"])
    model, tokenizer = common.load_model_and_tokenizer(model_dir)
    if opts.max_prompt_length:
        before = len(train)
        train = train.filter(_prompt_filter(tokenizer, opts.max_prompt_length))
        common.log.warning("dropped %d of %d prompts longer than %d tokens", before - len(train), before,
                           opts.max_prompt_length)

    config = GRPOConfig(
        output_dir=str(out),
        max_steps=opts.max_steps,
        num_train_epochs=opts.epochs,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.learning_rate,
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        beta=opts.beta,
        seed=opts.seed,
        logging_steps=opts.logging_steps,
        save_strategy="no",
        report_to="none",
        **_generation_args(opts),
        **common.hardware_args(opts.gradient_checkpointing),
        **opts.trl_args,
    )
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
        out, stage="rft", options=opts, base_model=base_name, config="rft", rows=len(train), trainer=trainer
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
    max_prompt_length: Optional[int] = typer.Option(None, "--max-prompt-length", help="Drop longer prompts."),
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
    typer.echo(f"RFT done: {info['global_step']} steps, model and card in {opts.out}{note}")


def main() -> None:
    from persrm_gen.exitcodes import run_cli  # noqa: PLC0415

    run_cli(lambda: typer.run(command))


if __name__ == "__main__":
    main()

"""Supervised fine-tuning on the ``sft`` config: teach the model the judge's reasoning format.

    persrm-gen train sft --data out/ --model BASE --out ckpt/sft
    accelerate launch --config_file persrm_gen/trainers/configs/ddp.yaml -m persrm_gen.trainers.sft --data out/ ...

TRL's SFTTrainer does the work: the rows are conversational prompt-completion, so the
loss covers the completion (reasoning + answer tag) only.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import Field
from pydantic.dataclasses import dataclass

from persrm_gen.options_file import STRICT, load_options
from persrm_gen.trainers import common
from persrm_gen.trainers.common import Count, Rate, Whole


@dataclass(config=STRICT)
class SFTOptions:
    data: str = "out"
    out: str = "ckpt/sft"
    model: str | None = None  # None: the embedded Gemma 3 270M
    max_steps: Annotated[int, Field(ge=-1)] = -1  # -1: train for `epochs`
    epochs: Rate = 1.0
    batch_size: Count = 4
    grad_accum: Count = 1
    learning_rate: Rate = 2e-5
    max_length: Count = 2048  # prompt + completion; longer rows get shorter writing samples
    packing: bool = False  # bin-pack rows into max_length blocks (padding-free)
    padding_free: bool = False
    gradient_checkpointing: bool | None = None  # None: on for GPU, off for CPU
    lora: bool = False
    lora_r: Count = 16
    lora_alpha: Count = 32
    seed: Whole = 0
    logging_steps: Count = 10
    overwrite: bool = False
    trl_args: dict[str, Any] = field(default_factory=dict)  # any other SFTConfig field


def train_sft(opts: SFTOptions) -> dict:
    """Fine-tune, save a plain model folder with a card into ``opts.out``; return the run summary."""
    from trl import SFTConfig, SFTTrainer

    out = Path(opts.out)
    common.check_output_dir(out, opts.overwrite)
    config = common.trl_config(SFTConfig, {
        "output_dir": str(out),
        "max_steps": opts.max_steps,
        "num_train_epochs": opts.epochs,
        "per_device_train_batch_size": opts.batch_size,
        "gradient_accumulation_steps": opts.grad_accum,
        "learning_rate": opts.learning_rate,
        "max_length": opts.max_length,
        "packing": opts.packing,
        "padding_free": opts.padding_free,
        "completion_only_loss": True,
        "seed": opts.seed,
        "logging_steps": opts.logging_steps,
        "save_strategy": "no",
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",
        **common.hardware_args(opts.gradient_checkpointing),
    }, opts.trl_args)  # fmt: skip
    model_dir, base_name = common.resolve_model_dir(opts.model)
    rows = common.load_rows(opts.data, "sft", "train", ("prompt", "completion"))
    model, tokenizer = common.load_model_and_tokenizer(model_dir)
    train, fit = common.fitted_train_rows(opts.data, rows, tokenizer, "training row",
                                          max_length=opts.max_length, completion="completion")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    peft_config = common.lora_config(opts.lora_r, opts.lora_alpha) if opts.lora else None
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=train, processing_class=tokenizer, peft_config=peft_config
    )
    trainer.train()
    common.save_full_model(trainer, tokenizer, out)
    return common.record_training(
        out, stage="sft", options=opts, base_model=base_name, config="sft", rows=len(train), trainer=trainer,
        fitting=fit,
    )


def command(
    data: Path = typer.Option(..., "--data", help="Built dataset folder (persrm-gen build --out)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model folder; default: embedded Gemma 3 270M."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON file of options; the CLI overrides it."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Per-device batch size."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", "--lr"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Prompt + completion tokens (default 2048); "
                                             "longer rows get shorter writing samples."),
    packing: Optional[bool] = typer.Option(None, "--packing/--no-packing", help="Padding-free bin packing."),
    lora: Optional[bool] = typer.Option(None, "--lora/--no-lora", help="Train LoRA adapters (merged on save)."),
    lora_r: Optional[int] = typer.Option(None, "--lora-r"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite", help="Train into a non-empty --out."),
) -> None:
    """Supervised fine-tuning on the dataset's `sft` config."""
    overrides = dict(locals())
    config_file = overrides.pop("config")
    opts = load_options(SFTOptions, config_file, {k: str(v) if isinstance(v, Path) else v
                                                          for k, v in overrides.items()})
    info = train_sft(opts)
    typer.echo(f"SFT done: {info['global_step']} steps on {common.rows_note(info)}, model and card in {opts.out}")


def main() -> None:
    from persrm_gen.exitcodes import run_cli  # noqa: PLC0415

    run_cli(lambda: typer.run(command))


if __name__ == "__main__":
    main()

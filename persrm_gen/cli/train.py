"""CLI commands for training and evaluation: ``train sft``, ``train rft``, ``eval``.

The option handling for each trainer lives beside it (``sft.command``, ``rft.command``)
so that ``python -m persrm_gen.trainers.sft`` and ``accelerate launch -m ...`` take the
same options as ``persrm-gen train sft``. Heavy imports (torch, TRL) happen only when a
command runs, so ``persrm-gen --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from persrm_gen.trainers import rft, sft


def eval_command(
    data: Path = typer.Option(..., "--data", help="Built dataset folder (reads its `pairs` config)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model folder to judge; omit to run baselines only."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML/JSON file of options; the CLI overrides it."),
    split: Optional[list[str]] = typer.Option(None, "--split", help="Split to evaluate (repeatable); default: all tests."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder; default: the model folder."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N pairs per split."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Comma list (default random,stylometric); '' for none."),
    judge_backend: Optional[str] = typer.Option(None, "--judge-backend", help="openai|anthropic: API zero-shot judge."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Model name for --judge-backend."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="OpenAI-compatible server URL."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Generation batch for --model (default 8)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Default 512."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Prompt + generated tokens for --model; "
                                             "longer prompts get shorter writing samples. Default: as trained."),
    behaviours: Optional[bool] = typer.Option(None, "--behaviours", help="Tag traces for reasoning behaviours and criteria."),
    compare_to: Optional[Path] = typer.Option(None, "--compare-to", help="Earlier report.json to diff behaviours."),
    seed: Optional[int] = typer.Option(None, "--seed"),
) -> None:
    """Pairwise accuracy of a reward model (both A/B orders) against baselines; report, plot, card."""
    from persrm_gen.options_file import load_options
    from persrm_gen.trainers.evaluate import EvalOptions, evaluate

    overrides = {
        "data": str(data), "model": model, "splits": list(split) if split else None,
        "out": str(out) if out else None, "limit": limit,
        "baselines": None if baselines is None else [b.strip() for b in baselines.split(",") if b.strip()],
        "judge_backend": judge_backend, "judge_model": judge_model, "judge_base_url": judge_base_url,
        "batch_size": batch_size, "max_new_tokens": max_new_tokens, "max_length": max_length, "behaviours": behaviours,
        "compare_to": str(compare_to) if compare_to else None, "seed": seed,
    }  # fmt: skip
    opts = load_options(EvalOptions, config, overrides)
    report = evaluate(opts)
    where = opts.out or report["model"]
    fit = report.get("fitting") or {}
    if fit.get("trimmed") or fit.get("dropped"):
        typer.echo(f"--max-length {fit['max_length']}: {fit['trimmed']} of {fit['rows']} pairs judged with shortened "
                   f"writing samples, {fit['dropped']} left out (too long even without them)")  # fmt: skip
    for name, m in report["judges"].items():
        pick = m["length"]["longer_pick_rate"]
        typer.echo(f"{name:>24}: accuracy {m['accuracy']:.3f} (forced {m['accuracy_forced']:.3f})  "
                   f"order-consistency {m['order_consistency']:.3f}  parse-failures {m['parse_failure_rate']:.3f}  "
                   f"longer-pick {'-' if pick is None else f'{pick:.3f}'}")  # fmt: skip
    _echo_length_table(report)
    typer.echo(f"report.json and accuracy.png in {where}")


def _echo_length_table(report: dict) -> None:
    """Accuracy by length ratio and chosen side, beside what "pick the longer" scores."""
    from persrm_gen.cards.model_card import length_rows

    header, rows = length_rows(report)
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    typer.echo("accuracy by length ratio (words, longer/shorter) and by the chosen response's length:")
    for row in [header, *rows]:
        typer.echo("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


def register(app: typer.Typer) -> None:
    """Attach ``train sft``, ``train rft`` and ``eval`` to the main app."""
    train = typer.Typer(help="Train a personalized reasoning reward model (TRL).", no_args_is_help=True)
    train.command("sft")(sft.command)
    train.command("rft")(rft.command)
    app.add_typer(train, name="train")
    app.command("eval")(eval_command)

"""What the SFT and RFT trainers share: how options are recorded, the dataset contract, model loading.

Nothing here trains; it turns a dataset folder and a model folder into the objects TRL
wants, and decides what the hardware allows (bf16 and gradient checkpointing on a GPU,
float32 on the CPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from persrm_gen.dataset.reader import available_splits, check_split_file, split_files, split_path
from persrm_gen.errors import InputError, InputIssue, UsageError
from persrm_gen.fileio import write_text_atomic
from persrm_gen.redact import display_path, redact_home, redact_options

log = logging.getLogger("persrm_gen.trainers")

# Gemma's turn format. Supplied when a model has no chat template (the embedded
# Gemma 3 270M base model has none); Gemma has no system role, so the system
# message is folded into the first user turn, as Gemma's own template does.
TURN_START, TURN_END = "<start_of_turn>", "<end_of_turn>"
FALLBACK_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] | trim + '\n\n' %}"
    "{% else %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


# ----------------------------------------------------------------- options


# Option types, on top of options_file.STRICT (no type is ever guessed): the ranges.
Count = Annotated[int, Field(ge=1)]
Whole = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0)]
Weight = Annotated[float, Field(ge=0)]


def trl_config(config_cls: type, ours: dict[str, Any], trl_args: dict[str, Any]):
    """TRL's config from our settings plus ``trl_args``; a bad ``trl_args`` key or value is an input error."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in trl_args:
        if key in ours:
            raise InputError(InputIssue("trl_args", None, f"{key} is set by persrm-gen; use its own option instead"))
        if key not in known:
            raise InputError(InputIssue("trl_args", None, f"{key} is not a {config_cls.__name__} field"))
    if not trl_args:
        return config_cls(**ours)
    try:
        return config_cls(**ours, **trl_args)
    except (TypeError, ValueError) as exc:  # TRL checks the values it was given
        raise InputError(InputIssue("trl_args", None, " ".join(str(exc).split()))) from None


def options_dict(options) -> dict[str, Any]:
    """The options as recorded in reports and cards: paths as text, the home folder as ``~``,
    URLs without credentials, key-like fields masked."""
    return redact_options(dataclasses.asdict(options))


# ----------------------------------------------------------------- dataset contract


def check_data_dir(data_dir: str | Path) -> None:
    """``--data`` must be a built dataset folder (one with ``data/``), checked before anything loads."""
    folder = Path(data_dir)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        hint = "pass a folder written by persrm-gen build"
        raise InputError(InputIssue("--data", None, f"{display_path(folder)} {what}; {hint}"))
    if not (folder / "data").is_dir():
        raise InputError(InputIssue(display_path(folder), None, "not a built persrm-gen dataset (no data/ folder)"))


def load_split(data_dir: str | Path, config: str, split: str):
    """One split of one config of a built dataset folder, as a ``datasets.Dataset``."""
    from datasets import load_dataset

    check_data_dir(data_dir)
    files = split_files(data_dir, config, split)
    if not files:
        have = available_splits(data_dir, config)
        hint = f"; this folder has {config} splits: {', '.join(have)}" if have else f"; no {config} config here"
        raise InputError(InputIssue(str(split_path(data_dir, config, split)), None,
                                    f"missing: not a built persrm-gen dataset{hint}"))
    for path in files:
        check_split_file(path)
    return load_dataset("parquet", data_files={split: [str(p) for p in files]}, split=split)


def require_columns(dataset, path: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise InputError(InputIssue(path, None, f"missing column(s) {', '.join(missing)}"))


def load_rows(data_dir: str | Path, config: str, split: str, columns: tuple[str, ...]) -> list[dict]:
    """The ``columns`` of one split as plain rows."""
    rows = load_split(data_dir, config, split)
    require_columns(rows, str(split_path(data_dir, config, split)), columns)
    return rows.select_columns(list(columns)).to_list()


def pairs_rows(data_dir: str | Path, split: str) -> list[dict]:
    """The ``pairs`` rows that trimmed prompts are re-rendered from; none when the folder has no such split."""
    try:
        rows = load_split(data_dir, "pairs", split)
    except InputError:
        return []
    needed = ("query", "context", "response_a", "response_b")
    return rows.select_columns(list(needed)).to_list() if all(c in rows.column_names for c in needed) else []


def report_fitting(report, what: str) -> None:
    """Log how rows were fitted to --max-length (a warning when any was trimmed or dropped); stop if none is left."""
    level = logging.WARNING if report.trimmed or report.dropped else logging.INFO
    log.log(level, "fitted %ss to %s", what, report.summary())
    report.require_rows(what)


def fitted_train_rows(data_dir: str | Path, rows: list[dict], tokenizer, what: str,
                      **fit_options) -> tuple[Any, Any]:
    """The train ``rows`` fitted to --max-length (writing samples trimmed first,
    re-rendered from ``pairs``), reported, as a ``datasets.Dataset``; and the fitting report."""
    from datasets import Dataset  # noqa: PLC0415 - heavy

    from persrm_gen.trainers import fitting  # noqa: PLC0415

    rows, fit = fitting.fit_rows(rows, lambda: pairs_rows(data_dir, "train"), tokenizer, **fit_options)
    report_fitting(fit, what)
    return Dataset.from_list(rows), fit


# ----------------------------------------------------------------- models


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_model_dir(model: str | None) -> tuple[Path, str]:
    """``--model``: a local model folder, or the embedded Gemma 3 270M when omitted."""
    from persrm_gen.llm.transports.local_model import EMBEDDED_ALIASES, resolve_model

    if model is not None and model.strip().lower() not in EMBEDDED_ALIASES:
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            what = "does not exist" if not folder.exists() else "is not a model folder (no config.json)"
            hint = "pass a folder saved by transformers (such as ckpt/sft), or omit --model for the embedded model"
            raise InputError(InputIssue("--model", None, f"{display_path(folder)} {what}; {hint}"))
    return resolve_model(model, progress=lambda msg: log.info(msg))


def load_model_and_tokenizer(model_dir: Path, *, for_training: bool = True):
    """The causal LM (bf16 on a GPU, float32 on the CPU) and its tokenizer, with a chat template.

    A folder transformers cannot load (a broken config, no weights, no tokenizer) is an
    input error naming ``--model``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if on_gpu() else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    except (OSError, ValueError) as exc:  # transformers' way of saying "not a model it can load"
        reason = " ".join(str(exc).split())[:300]
        raise InputError(InputIssue("--model", None, f"{display_path(model_dir)} cannot be loaded: {reason}")) from None
    ensure_chat_template(model, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not for_training:
        model.eval()
    return model, tokenizer


def ensure_chat_template(model, tokenizer) -> bool:
    """Give a template-less model Gemma's turn format. Returns True when it supplied one.

    The end-of-turn marker becomes the tokenizer's EOS so that generation (GRPO's
    sampling, eval) stops where the trained completion ends. Markers missing from the
    vocabulary are added as special tokens and the embeddings resized.
    """
    if getattr(tokenizer, "chat_template", None):
        return False
    vocab = tokenizer.get_vocab()
    missing = [t for t in (TURN_START, TURN_END) if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
        model.resize_token_embeddings(len(tokenizer))
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    tokenizer.eos_token = TURN_END
    end_id = tokenizer.convert_tokens_to_ids(TURN_END)
    model.config.eos_token_id = end_id
    if model.generation_config is not None:
        ids = model.generation_config.eos_token_id
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        model.generation_config.eos_token_id = [end_id, *[i for i in ids if i != end_id]]
    return True


def lora_config(r: int, alpha: int, dropout: float = 0.05):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM")


def save_full_model(trainer, tokenizer, out: Path) -> None:
    """Save a plain model folder, so the next stage loads it as is.

    LoRA adapters are merged into the weights; otherwise ``trainer.save_model`` does
    the saving because it gathers DeepSpeed ZeRO-3 and FSDP shards.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))


def hardware_args(gradient_checkpointing: bool | None) -> dict[str, Any]:
    """TrainingArguments that depend on the device: bf16 + checkpointing on GPU, CPU fallback."""
    gpu = on_gpu()
    return {
        "use_cpu": not gpu,
        "bf16": gpu,
        "gradient_checkpointing": gpu if gradient_checkpointing is None else gradient_checkpointing,
    }


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse a file or (without --overwrite) a non-empty folder; the folder is created only once training starts."""
    if out.exists() and not out.is_dir():
        raise InputError(InputIssue("--out", None, f"{display_path(out)} is a file, not a folder"))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty; pass --overwrite to train into it anyway")


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def dataset_manifest_summary(data_dir: str | Path) -> dict[str, Any]:
    """The few manifest fields a model card should cite (never secrets: the manifest holds none)."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return {k: manifest[k] for k in ("backend", "model", "seed", "counts", "negatives") if k in manifest}


def record_training(out: Path, *, stage: str, options, base_model: str, config: str, rows: int, trainer,
                    fitting=None) -> dict:  # fmt: skip
    """Write persrm_train.json and the model card; return the summary."""
    import accelerate
    import peft
    import torch
    import transformers
    import trl

    from persrm_gen.cards.model_card import TRAIN_INFO, write_card

    history = trainer.state.log_history
    final = next((h for h in reversed(history) if "train_runtime" in h), {})
    info = {
        "stage": stage,
        "base_model": redact_home(base_model),
        "data": display_path(options.data),
        "config": config,
        "train_rows": rows,
        "fitting": fitting.as_dict() if fitting is not None else None,
        "dataset_manifest": dataset_manifest_summary(options.data),
        "options": options_dict(options),
        "num_processes": trainer.accelerator.num_processes,
        "global_step": trainer.state.global_step,
        "num_input_tokens_seen": trainer.state.num_input_tokens_seen,
        "final_metrics": final,
        "log_history": history,
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "accelerate": accelerate.__version__,
            "peft": peft.__version__,
        },
    }
    if trainer.accelerator.is_main_process:
        write_json(out / TRAIN_INFO, info)
        write_card(out)
    return info


def rows_note(info: dict) -> str:
    """'16 rows' or '15 rows (3 with shortened writing samples, 1 dropped: --max-length)' for the done line."""
    fit = info.get("fitting") or {}
    note = f"{info['train_rows']} rows"
    if fit.get("trimmed") or fit.get("dropped"):
        note += f" ({fit['trimmed']} with shortened writing samples, {fit['dropped']} dropped: --max-length)"
    return note

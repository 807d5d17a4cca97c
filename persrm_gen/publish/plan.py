"""What a push would upload, decided locally and without network.

The same plan drives ``--dry-run`` output and the real commit, so what the user sees
is exactly what goes up. Only an allowlist goes up, the way rsync or the Hub client
upload only what you name: for a dataset folder its card, manifest and parquet files;
for a checkpoint its weights (safetensors), config, tokenizer and card files. Anything
else in the folder (a ``.env``, ``id_rsa``, the request cache, notes, a stray CSV) is
left out and listed as such. Refusals (not a dataset/checkpoint, failed validation,
pickled weights, something that looks like a secret in any uploaded file, a
checkpoint without a model card) are raised here, before any token is read or any
request is made.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from persrm_gen.errors import UsageError
from persrm_gen.publish.secret_scan import describe, scan_files

DATASET_FILES = ("README.md", "manifest.json")  # plus data/**/*.parquet
# Top-level files of a checkpoint: weights, configs, tokenizer, the card and our reports.
CHECKPOINT_FILES = (
    "config.json", "adapter_config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
    "chat_template.jinja", "chat_template.json",
    "README.md", "persrm_train.json", "report.json",
)
CHECKPOINT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
# Pickles run code when loaded: never published as weights. Trainer bookkeeping in that
# format (optimizer and scheduler state, TrainingArguments) is simply left out.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TRAINER_STATE = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")


class PushRefused(UsageError):
    """The folder must not be pushed as it is; the message is one line for the user."""


@dataclass
class UploadFile:
    path_in_repo: str
    local: Path
    size: int


@dataclass
class PushPlan:
    folder: Path
    repo_type: str  # "dataset" | "model"
    files: list[UploadFile] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # in the folder, not uploaded

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def detect_repo_type(folder: Path) -> str:
    if (folder / "manifest.json").is_file() and (folder / "data").is_dir():
        return "dataset"
    if any((folder / name).is_file() for name in ("config.json", "adapter_config.json")):
        return "model"
    raise PushRefused(
        f"{folder}: not a persrm-gen dataset (manifest.json + data/) nor a checkpoint (config.json)"
    )


def _allowed(rel: str, repo_type: str) -> bool:
    parts = rel.split("/")
    if any(p.startswith(".") for p in parts):
        return False
    if repo_type == "dataset":
        return rel in DATASET_FILES or (parts[0] == "data" and len(parts) > 1 and rel.endswith(".parquet"))
    return len(parts) == 1 and (rel in CHECKPOINT_FILES or any(fnmatch.fnmatch(rel, p) for p in CHECKPOINT_PATTERNS))


def _may_hold_uploads(rel_dir: str, repo_type: str) -> bool:
    """Whether a sub-folder can hold allowed files at all (else it is left out whole)."""
    parts = rel_dir.split("/")
    return repo_type == "dataset" and parts[0] == "data" and not any(p.startswith(".") for p in parts)


def list_files(folder: Path, repo_type: str) -> tuple[list[UploadFile], list[str]]:
    """(files to upload, what is left out: files, and folders as ``name/``), both sorted.

    Links are never followed or uploaded; a folder that cannot hold an upload (``.git/``,
    ``checkpoint-500/``) is not walked."""
    keep, left_out = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        walk = []
        for name in dirnames:
            rel = (base / name).relative_to(folder).as_posix()
            if (base / name).is_symlink() or not _may_hold_uploads(rel, repo_type):
                left_out.append(rel + "/")
            else:
                walk.append(name)
        dirnames[:] = walk
        for name in filenames:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if not path.is_symlink() and path.is_file() and _allowed(rel, repo_type):
                keep.append(UploadFile(rel, path, path.stat().st_size))
            else:
                left_out.append(rel)
    return sorted(keep, key=lambda f: f.path_in_repo), sorted(left_out)


def _check_no_pickled_weights(left_out: list[str]) -> None:
    for rel in left_out:  # top-level files only: sub-folders are never uploaded anyway
        if "/" in rel or not rel.endswith(PICKLE_SUFFIXES) or any(fnmatch.fnmatch(rel, p) for p in TRAINER_STATE):
            continue
        raise PushRefused(f"{rel}: pickled weights (loading a pickle can run code); "
                          "save the model as safetensors (save_pretrained(..., safe_serialization=True))")


def _check_dataset(folder: Path, validator) -> None:
    if not (folder / "README.md").is_file():
        raise PushRefused(f"{folder}: no README.md dataset card; rebuild or run the card writer first")
    try:
        json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PushRefused(f"{folder / 'manifest.json'}: not valid JSON ({exc})") from None
    if validator is None:
        from persrm_gen.dataset.check import validate_folder as validator  # lazy: heavy imports
    try:
        report = validator(folder)
    except Exception as exc:  # a folder the validators cannot even read is not pushable either
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise PushRefused(f"refusing to push {folder}: validation could not run ({type(exc).__name__}: {detail})") from None
    if not report.ok:
        problems = list(report.problems)
        first = str(problems[0]) if problems else "validation failed"
        more = f" (and {len(problems) - 1} more; run `persrm-gen validate {folder}`)" if len(problems) > 1 else ""
        raise PushRefused(f"refusing to push {folder}: {first}{more}")


def _check_secrets(folder: Path, files: list[UploadFile], token_env: str) -> None:
    hits = scan_files(folder, [f.path_in_repo for f in files], extra_env=(token_env,))
    if hits:
        raise PushRefused(f"refusing to push: {describe(hits)}; remove it and rebuild")


def plan_push(folder: str | Path, *, validator=None, token_env: str = "HF_TOKEN") -> PushPlan:
    """Check ``folder`` and list what would be uploaded. Raises :class:`PushRefused`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushRefused(f"{folder}: no such folder")
    repo_type = detect_repo_type(folder)
    files, left_out = list_files(folder, repo_type)
    if repo_type == "dataset":
        _check_dataset(folder, validator)
    else:
        _check_no_pickled_weights(left_out)
        if not (folder / "README.md").is_file():
            raise PushRefused(f"{folder}: checkpoint has no README.md model card; the trainers write one")
    _check_secrets(folder, files, token_env)
    return PushPlan(folder, repo_type, files, left_out)

"""What a push would upload, decided locally and without network.

The same plan drives ``--dry-run`` output and the real commit, so what the user sees
is exactly what goes up. Refusals (not a dataset/checkpoint, failed validation,
something that looks like a secret, a checkpoint without a model card) are raised
here, before any token is read or any request is made.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

from persrm_gen.errors import UsageError
from persrm_gen.publish.secret_scan import scan_files

# Never uploaded: the request cache and its SQLite side files, lock files, temp files
# from atomic writes, the output folder's marker and publish journal, VCS and tool caches.
IGNORE_PATTERNS = [
    "cache.sqlite", "*.sqlite", "*.sqlite3", "*.db", "*.sqlite-wal", "*.sqlite-shm", "*.sqlite-journal",
    "*-wal", "*-shm", "*.lock", ".lock", "*.tmp", "*.partial", ".DS_Store", ".persrm-gen", ".publish",
    ".git/*", ".cache/*", "__pycache__/*", ".ipynb_checkpoints/*",
]
# Checkpoint folders also skip intermediate Trainer checkpoints (optimizer states, GBs).
MODEL_IGNORE_PATTERNS = ["checkpoint-*/*", "runs/*", "wandb/*"]
# Text files scanned for secrets; the card and manifest always, whatever their size.
SCAN_SUFFIXES = (".json", ".md", ".txt", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".py", ".j2", ".env", ".jsonl")
SCAN_MAX_BYTES = 5_000_000


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
    ignored: list[str] = field(default_factory=list)

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


def _ignored(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def list_files(folder: Path, repo_type: str) -> tuple[list[UploadFile], list[str]]:
    patterns = IGNORE_PATTERNS + (MODEL_IGNORE_PATTERNS if repo_type == "model" else [])
    keep, skipped = [], []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(folder).as_posix()
        if _ignored(rel, patterns) or any(part.startswith(".") for part in rel.split("/")[:-1]):
            skipped.append(rel)
        else:
            keep.append(UploadFile(rel, path, path.stat().st_size))
    return keep, skipped


def _check_dataset(folder: Path, validator) -> None:
    if not (folder / "README.md").is_file():
        raise PushRefused(f"{folder}: no README.md dataset card; rebuild or run the card writer first")
    try:
        json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PushRefused(f"{folder / 'manifest.json'}: not valid JSON ({exc})") from None
    if validator is None:
        from persrm_gen.validate_folder import validate_folder as validator  # lazy: heavy imports
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
    must = {"manifest.json", "README.md"}
    rel = [f.path_in_repo for f in files
           if f.path_in_repo in must or (f.path_in_repo.endswith(SCAN_SUFFIXES) and f.size <= SCAN_MAX_BYTES)]
    hits = scan_files(folder, rel, extra_env=(token_env,))
    if hits:
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        raise PushRefused(f"refusing to push: {hits[0]}{more}; remove it and rebuild")


def plan_push(folder: str | Path, *, validator=None, token_env: str = "HF_TOKEN") -> PushPlan:
    """Check ``folder`` and list what would be uploaded. Raises :class:`PushRefused`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushRefused(f"{folder}: no such folder")
    repo_type = detect_repo_type(folder)
    files, ignored = list_files(folder, repo_type)
    if repo_type == "dataset":
        _check_dataset(folder, validator)
    elif not (folder / "README.md").is_file():
        raise PushRefused(f"{folder}: checkpoint has no README.md model card; the trainers write one")
    _check_secrets(folder, files, token_env)
    return PushPlan(folder, repo_type, files, ignored)

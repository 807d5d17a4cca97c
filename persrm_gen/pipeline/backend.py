"""The backend a build talks to: what it is (model name, chat or prompt, server), the
transport and client that send its requests, and the durable cache they pay through.

One module for both the real build and ``--dry-run``: the dry run describes the same
backend (:func:`describe_backend`) without loading a model or sending anything, so its
cache keys and rendered prompts are the build's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from persrm_gen.errors import UsageError
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.progress import console


def check_key(opts: BuildOptions) -> None:
    """A missing API key fails before anything else (the local backend needs none)."""
    if opts.backend != "local":
        from persrm_gen.llm.backends import api_key

        api_key(opts.backend)


def make_transport(opts: BuildOptions):
    """(transport, model name). API backends check their key here, before any work."""
    from persrm_gen.llm.backends import make_transport as make_backend

    if opts.backend == "local":
        from transformers.utils import logging as hf_logging

        from persrm_gen.llm.transports.local_model import resolve_model

        hf_logging.disable_progress_bar()  # ours are the progress bars; theirs garble the display
        os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF converter's bar ignores the switch above

        with console.status("preparing the local model (the first run converts the embedded model, about a minute)"):
            folder, name = resolve_model(opts.model, lambda msg: console.log(msg))
        transport = make_backend("local", str(folder), local_options={"device": opts.device, "batch_size": opts.batch_size, "num_threads": opts.threads})
        return transport, name
    transport = make_backend(opts.backend, opts.model, base_url=opts.base_url, timeout=opts.timeout)
    return transport, opts.model


@dataclass
class DryTransport:
    """A transport that only describes the backend; sending is a bug in a dry run."""

    provider: str
    supports_chat: bool
    supports_prompt: bool = True
    endpoint: str | None = None  # the server, as the real transport puts it in the cache key

    async def send(self, request: LLMRequest) -> LLMResponse:
        raise UsageError("dry run: no request may be sent")

    async def aclose(self) -> None:
        return None


def describe_backend(opts: BuildOptions) -> tuple[DryTransport, str]:
    """(transport description, model name) of the backend :func:`make_transport` would build,
    without a key, a model load or a connection: what ``--dry-run`` renders and keys with."""
    from persrm_gen.llm.backends import endpoint_for

    if opts.backend != "local":
        if not opts.model:
            raise UsageError(f"--backend {opts.backend} needs --model")
        return DryTransport(opts.backend, supports_chat=True, endpoint=endpoint_for(opts.backend, opts.base_url)), opts.model
    from persrm_gen.llm.transports.local_model import (
        EMBEDDED_ALIASES,
        EMBEDDED_MODEL_ID,
    )

    if opts.model is None or opts.model.strip().lower() in EMBEDDED_ALIASES:
        return DryTransport("local", supports_chat=False), EMBEDDED_MODEL_ID
    folder = Path(opts.model).expanduser().resolve()
    tok_cfg = folder / "tokenizer_config.json"
    chat = tok_cfg.is_file() and bool(json.loads(tok_cfg.read_text()).get("chat_template"))
    return DryTransport("local", supports_chat=chat), str(folder)


def make_batch_runner(opts: BuildOptions, cache: RequestCache):
    """With ``--batch``: the runner that sends each stage's requests through the provider's batch API.
    Without it, a warning when an interrupted ``--batch`` build left batches pending: a live
    build would pay again for what they will return."""
    if not opts.batch:
        from persrm_gen.llm.batches.store import BatchStore

        pending = [b for b in BatchStore(cache).all_batches() if not b.done]
        if pending:
            console.print(f"[yellow]warning[/yellow]: {cache.path} records {sum(b.requests for b in pending)} requests "
                          f"in {len(pending)} provider batches not collected yet (an interrupted --batch build): add "
                          f"--batch to collect them instead of paying again, or cancel them: persrm-gen batches "
                          f"{opts.out} --cancel", highlight=False)
        return None
    from persrm_gen.llm.batches import make_batch_api
    from persrm_gen.llm.batches.runner import BatchRunner

    api = make_batch_api(opts.backend, opts.base_url, timeout=opts.timeout)
    return BatchRunner(api, poll=opts.batch_poll, log=lambda msg: console.log(msg, highlight=False))


def make_client(opts: BuildOptions, transport, cache: RequestCache) -> LLMClient:
    local = opts.backend == "local"
    return LLMClient(
        transport, cache, concurrency=opts.concurrency if not local else max(opts.concurrency, 4 * opts.batch_size),
        rpm=opts.rpm, tpm=opts.tpm, max_cost=opts.max_cost, max_requests=opts.max_requests,
        # a CPU batch can take minutes: the local backend has no per-request timeout
        timeout=None if local else opts.timeout,
        pricing=Pricing(opts.pricing), batch=make_batch_runner(opts, cache),
    )


def estimate_client(opts: BuildOptions, transport: DryTransport, cache: RequestCache) -> LLMClient:
    """A client that only prices and counts cached requests (``--dry-run``)."""
    return LLMClient(transport, cache, pricing=Pricing(opts.pricing))


def open_build_cache(opts: BuildOptions) -> RequestCache:
    """OUT/cache.sqlite; refused when it is missing beside a manifest (a build without its
    cache pays for every request again) unless ``--new-cache`` says that is what we want."""
    path, manifest = opts.out / "cache.sqlite", opts.out / "manifest.json"
    if not path.exists() and manifest.is_file() and not opts.new_cache:
        raise UsageError(f"{path} is missing but {manifest} is there: building without that cache pays for "
                         "every request again. Put the cache back, or pass --new-cache to start an empty one")
    return RequestCache(path)


def open_dry_cache(opts: BuildOptions) -> RequestCache:
    """The build's cache, read-only (a dry run writes nothing), or an empty one in memory."""
    path = opts.out / "cache.sqlite"
    return RequestCache(path, read_only=True) if path.is_file() else RequestCache(":memory:")

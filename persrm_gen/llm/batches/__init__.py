"""``--batch``: the providers' batch APIs (about half price, results within 24 hours).

Transport-level, like :mod:`persrm_gen.llm.transports`: one module per provider
(:mod:`.openai_batches`, :mod:`.anthropic_batches`) speaks its batch API through the
official SDK, :mod:`.store` keeps every batch and line in cache.sqlite, and :mod:`.runner`
is the one loop that splits, submits, polls and resubmits. The client (above) sends the
cache misses of a call here when a runner is given; nothing here imports the client.
"""

from __future__ import annotations

from collections.abc import Mapping

from persrm_gen.errors import UsageError
from persrm_gen.llm.batches.base import BatchAPI


def make_batch_api(backend: str, base_url: str | None = None, timeout: float | None = 120.0,
                   env: Mapping[str, str] | None = None, **limits: int) -> BatchAPI:
    """The batch API of ``backend``, with its key from the environment (never stored).

    ``limits``: ``max_requests`` / ``max_bytes`` per batch (default: the provider's own)."""
    from persrm_gen.llm.backends import api_key

    if backend == "openai":
        from persrm_gen.llm.batches.openai_batches import OpenAIBatches

        return OpenAIBatches(api_key=api_key(backend, env), base_url=base_url, timeout=timeout, **limits)
    if backend == "anthropic":
        from persrm_gen.llm.batches.anthropic_batches import AnthropicBatches

        return AnthropicBatches(api_key=api_key(backend, env), base_url=base_url, timeout=timeout, **limits)
    raise UsageError(f"--batch needs --backend openai or anthropic (the {backend} backend has no batch API)")

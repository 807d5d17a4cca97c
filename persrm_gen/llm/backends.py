"""``--backend`` -> Transport. Keys are checked here, before any work starts.

- ``openai``: OpenAI or any OpenAI-compatible server (``--base-url``: vLLM, llama.cpp,
  Ollama, TGI). ``http="fast"`` (default) speaks the wire format over aiohttp directly;
  ``http="sdk"`` uses the official AsyncOpenAI client (the reference implementation).
- ``anthropic``: AsyncAnthropic.
- ``local``: the embedded model, imported lazily (torch is heavy; API runs never load it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from persrm_gen.errors import UsageError
from persrm_gen.llm.limits import check_timeout
from persrm_gen.llm.types import Transport, server_scope

BACKENDS = ("local", "openai", "anthropic")
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
HTTP_MODES = ("fast", "sdk")


def api_key(backend: str, env: Mapping[str, str] | None = None) -> str:
    """The backend's key from the environment, or a UsageError that says how to set it."""
    var = KEY_ENV[backend]
    key = (os.environ if env is None else env).get(var, "").strip()
    if not key:
        hint = " (self-hosted OpenAI-compatible servers that ignore keys: export OPENAI_API_KEY=EMPTY)" \
            if backend == "openai" else ""
        raise UsageError(f"--backend {backend} needs an API key: set the {var} environment variable{hint}")
    return key


def endpoint_for(backend: str, base_url: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The ``endpoint`` that :func:`make_transport`'s transport (default HTTP mode) reports,
    without building it: what a dry run needs to find the build's cache keys."""
    if backend == "anthropic":  # the Anthropic SDK falls back on this variable; the fast OpenAI path on nothing
        base_url = base_url or (os.environ if env is None else env).get("ANTHROPIC_BASE_URL")
    return server_scope(base_url, backend) if backend in KEY_ENV else None


def make_transport(
    backend: str,
    model: str | None,
    base_url: str | None = None,
    timeout: float | None = 60.0,
    *,
    http: str = "fast",
    max_connections: int = 1024,
    env: Mapping[str, str] | None = None,
    local_options: Mapping[str, object] | None = None,
) -> Transport:
    if backend not in BACKENDS:
        raise UsageError(f"unknown --backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if http not in HTTP_MODES:
        raise UsageError(f"unknown HTTP mode {http!r}; choose one of {', '.join(HTTP_MODES)}")
    if backend == "local":
        if base_url:
            raise UsageError("--base-url needs --backend openai (OpenAI-compatible server)")
        return _local(model, local_options or {})
    if not model:
        raise UsageError(f"--backend {backend} needs --model")
    check_timeout(timeout)
    key = api_key(backend, env)
    common = dict(api_key=key, base_url=base_url, timeout=timeout, max_connections=max_connections)
    if backend == "anthropic":
        from persrm_gen.llm.transports.anthropic_sdk import AnthropicTransport

        return AnthropicTransport(**common)
    if http == "fast":
        from persrm_gen.llm.transports.fast_openai import FastOpenAITransport

        return FastOpenAITransport(**common)
    from persrm_gen.llm.transports.openai_sdk import OpenAITransport

    return OpenAITransport(**common)


def _local(model: str | None, options: Mapping[str, object]) -> Transport:
    from persrm_gen.llm.transports.local import LocalTransport
    from persrm_gen.llm.transports.local_model import resolve_model

    model_dir, _name = resolve_model(model)
    return LocalTransport(model_dir, **options)

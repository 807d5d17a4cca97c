"""The narrow interface every provider implements: send one request, get one response.

Retries, rate limits, the durable cache, budgets and accounting live once, above this
interface, in :mod:`persrm_gen.llm.client` (the httpx Client/Transport split).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from persrm_gen.redact import redact_url

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    # Characters at the start of ``content`` that many requests repeat (the author's samples):
    # a prompt-cache breakpoint goes after them (Anthropic ``cache_control``). 0: none. A hint
    # on how to send, not what is sent: not part of the wire text, the rows or the cache key.
    cache_prefix: int = field(default=0, compare=False)

    def as_dict(self) -> dict[str, str]:
        """The form every chat API, chat template and dataset row takes: ``{"role", "content"}``."""
        return {"role": self.role, "content": self.content}


def as_dicts(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Chat messages as the list of ``{"role", "content"}`` dicts the wire and the rows carry."""
    return [m.as_dict() for m in messages]


@dataclass(frozen=True)
class LLMRequest:
    """One generation request.

    Exactly one of ``messages`` (chat models) or ``prompt`` (base models: raw text to
    continue) is set. ``stage`` and ``template_hashes`` are part of the cache key so that
    editing a template invalidates exactly the requests it rendered. ``attempt``
    distinguishes deliberate re-samples (a new attempt index is a new request).

    ``cache_group`` names the requests that share a prompt prefix (one author's), sent as
    OpenAI's ``prompt_cache_key`` so they land where that prefix is cached. It routes the
    request and cannot change the reply, so it is NOT part of the cache key: keys made before
    it existed stay valid, and regrouping work never buys a cached response again.
    """

    model: str
    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    stop: tuple[str, ...] = ()
    stage: str = "generate"
    template_hashes: tuple[str, ...] = ()
    attempt: int = 0
    cache_group: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("LLMRequest needs exactly one of messages or prompt")

    def cache_key(self, provider: str) -> str:
        """Stable hash of everything that determines the response (see :func:`request_key`)."""
        memo = self.__dict__.get("_key_memo")
        if memo is not None and memo[0] == provider:
            return memo[1]
        return request_key(self, provider)[0]


def cache_group_for(author_id: str) -> str:
    """An author's ``cache_group``: a hash, so the provider sees no author id in the routing key."""
    return "a-" + hashlib.sha256(author_id.encode("utf-8")).hexdigest()[:16]


_NOT_KEYED = frozenset({"cache_group"})  # routing hints: see LLMRequest
_REQUEST_FIELDS = tuple(f.name for f in fields(LLMRequest) if f.name not in _NOT_KEYED)


def request_key(request: LLMRequest, provider: str) -> tuple[str, str]:
    """(key, canonical JSON) of a request: SHA-256 of the JSON of its fields plus ``provider``.

    ``provider`` is the client's ``key_scope``: the provider, plus the server when it is not
    the provider's own. The JSON equals that of ``dataclasses.asdict`` (the key's first
    definition, which every existing cache holds; tests pin both), built by hand: ``asdict``
    deep-copies recursively and costs ~5x more on the client's hot path.
    """
    d = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    if request.messages is not None:
        d["messages"] = as_dicts(request.messages)
    d["provider"] = provider
    blob = json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    key = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    # kept on the (immutable) request, so the ledger's look-up (LLMClient.rejected_replies)
    # after the requests ran does not serialize and hash them all again; not a field: not in
    # ==, repr, asdict or the key itself, and dataclasses.replace starts without it
    object.__setattr__(request, "_key_memo", (provider, key))
    return key, blob


@dataclass(frozen=True)
class LLMResponse:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str = "stop"
    # What the provider bills beyond plain input/output (llm.pricing.Price.billed):
    # ``cached_input_tokens`` of ``input_tokens`` were read from the provider's prompt cache
    # (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``);
    # ``cache_write_tokens`` were written to it (Anthropic ``cache_creation_input_tokens``,
    # also counted in ``input_tokens``); ``batch``: answered through a batch API (discounted).
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    batch: bool = False
    # Provider hints used by the client's limiter (e.g. Retry-After); never cached.
    meta: dict = field(default_factory=dict, compare=False)


@runtime_checkable
class Transport(Protocol):
    """One provider. Implementations: local (embedded model), openai, anthropic."""

    provider: str  # "local" | "openai" | "anthropic"; part of the cache key
    # Optional ``endpoint``: the server, when it is not the provider's own (server_scope);
    # part of the cache key too. Absent or None: the provider's own endpoint, or local.
    supports_chat: bool  # instruction model: chat messages in, reasoning out
    supports_prompt: bool  # base model: raw-text few-shot continuation

    async def send(self, request: LLMRequest) -> LLMResponse:
        """Send exactly one request. Raise on failure; never retry here."""
        ...

    async def aclose(self) -> None: ...


# The providers' own API hosts: requests to them are keyed by the provider alone.
PROVIDER_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


def server_scope(url: str | None, provider: str) -> str | None:
    """The server as the cache key names it: None for the provider's own host (so keys made
    before servers were part of the key stay valid), else the URL without credentials,
    query or trailing slash (``http://user:key@Host:8000/v1/`` -> ``http://host:8000/v1``)."""
    try:
        if not url or urlsplit(url).hostname == PROVIDER_HOSTS.get(provider):
            return None
        return (redact_url(url) or "").rstrip("/")
    except ValueError:  # a port out of range: nothing can be sent there; still no credentials
        return re.sub(r"//[^/@]*@", "//", url).rstrip("/")

"""Fast path for OpenAI-compatible servers: the chat/completions wire format over aiohttp.

The official SDK transport (:mod:`openai_sdk`) is the reference implementation; this
one speaks the same JSON directly over one pooled aiohttp session, which costs a fraction
of the SDK's per-request CPU and so keeps a thousand requests in flight at full speed
(vLLM, llama.cpp's server, Ollama, TGI, api.openai.com). Both share the request builders
and response parser below, so they send and read exactly the same thing.

A reply is read only up to :func:`reply_limit` bytes. Whatever aiohttp refuses to send
(a URL it cannot use, credentials in the URL next to the key's header) is a
:class:`FatalProviderError` for that request, counted like any failure, never a silent drop.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from persrm_gen.errors import FatalProviderError
from persrm_gen.llm.faults import TransientError, error_for_status, pause_hint
from persrm_gen.llm.reply_limit import reply_limit, too_large
from persrm_gen.llm.types import LLMRequest, LLMResponse, as_dicts, server_scope
from persrm_gen.secrets import redact_secrets

try:  # orjson is ~5x faster at this; the standard library is the fallback.
    import orjson

    _dumps, _loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover
    def _dumps(obj: object) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode()

    _loads = json.loads

OPENAI_URL = "https://api.openai.com/v1"
# OpenAI's reasoning models take max_completion_tokens and reject temperature/top_p.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def is_official(base_url: str | None) -> bool:
    return server_scope(base_url, "openai") is None


def request_body(request: LLMRequest, *, official: bool) -> tuple[str, dict]:
    """(path, JSON body): chat messages -> /chat/completions, raw prompt -> /completions."""
    body: dict = {"model": request.model, "seed": request.seed}
    reasoning = official and request.model.startswith(_REASONING_PREFIXES)
    if not reasoning:
        body["temperature"] = request.temperature
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.prompt is not None:
        body["prompt"] = request.prompt
        body["max_tokens"] = request.max_tokens
        return "/completions", body
    body["messages"] = as_dicts(request.messages or ())
    body["max_completion_tokens" if official else "max_tokens"] = request.max_tokens
    if request.cache_group:
        # Routes requests sharing a prefix to the same cache (OpenAI prompt caching); servers
        # without one ignore the field.
        body["prompt_cache_key"] = request.cache_group
    return "/chat/completions", body


def parse_response(data: object, *, chat: bool, headers=None) -> LLMResponse:
    """Read one (chat) completion body; anything short of a usable answer is ``malformed``."""
    try:
        choice = data["choices"][0]  # type: ignore[index]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = data.get("usage") or {}  # type: ignore[union-attr]
        finish = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise TransientError("malformed", f"unusable response body ({type(e).__name__}: {e})") from None
    if not isinstance(text, str):
        raise TransientError("malformed", "response has no text")
    return LLMResponse(
        text=text,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=str(finish),
        cached_input_tokens=cached_tokens(usage),
        meta=pause_hint(headers),
    )


def cached_tokens(usage: object) -> int:
    """``usage.prompt_tokens_details.cached_tokens``: the share of ``prompt_tokens`` read from
    OpenAI's prompt cache (absent on servers without one: 0)."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    try:
        return int((details or {}).get("cached_tokens") or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def error_message(raw: bytes) -> str:
    """The provider's own words from an error body ({"error": {"message": ...}} or text)."""
    try:
        err = _loads(raw).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)
    except (ValueError, AttributeError, TypeError):
        pass
    return raw[:500].decode("utf-8", "replace").strip() or "(empty body)"


class FastOpenAITransport:
    provider = "openai"
    supports_chat = True
    supports_prompt = True

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float | None = 60.0,
                 max_connections: int = 1024):
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.official = is_official(base_url)
        self.endpoint = server_scope(self.base_url, self.provider)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        # The key lives only in this header dict; aiohttp never puts headers in its errors.
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use: a session binds to the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                timeout=self._timeout,
                headers=self._headers,
            )
        return self._session

    async def send(self, request: LLMRequest) -> LLMResponse:
        path, body = request_body(request, official=self.official)
        payload = _dumps(body)
        status, headers, raw = await self._post(path, payload, reply_limit(request, len(payload)))
        if status >= 400:
            raise error_for_status(status, error_message(raw), headers)
        try:
            data = _loads(raw)
        except ValueError:
            raise TransientError("malformed", f"invalid JSON body ({len(raw)} bytes)") from None
        return parse_response(data, chat=request.messages is not None, headers=headers)

    async def _post(self, path: str, payload: bytes, limit: int):
        try:
            async with self._get_session().post(self.base_url + path, data=payload) as resp:
                if (resp.content_length or 0) > limit:
                    raise too_large(limit)
                return resp.status, resp.headers, await _read_at_most(resp, limit)
        except asyncio.TimeoutError:
            raise TransientError("timeout", "request timed out") from None
        except aiohttp.ClientPayloadError as e:
            raise TransientError("malformed", f"truncated body: {e}") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError) as e:
            raise TransientError("connection", f"{type(e).__name__}: {e}") from None
        except (aiohttp.ClientError, ValueError) as e:  # refused before sending: retrying cannot help
            raise FatalProviderError(
                f"cannot send requests to {self.endpoint or OPENAI_URL}: {redact_secrets(str(e)) or type(e).__name__}"
            ) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or a ``malformed`` fault as soon as it passes ``limit`` (then the connection is dropped)."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)

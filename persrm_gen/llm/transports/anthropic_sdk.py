"""Anthropic through the official SDK (AsyncAnthropic ``messages.create``).

System messages are split out into the ``system`` parameter, as the Messages API wants.
Prompt caching: a ``cache_control`` breakpoint after the system prompt and after a message's
``cache_prefix`` (the author's samples), so requests that repeat them read the cache.
Only chat requests: Anthropic serves no base models. The SDK's retries are off; errors map
to :class:`TransientError` (429, 5xx, 529 overloaded, timeouts, resets, malformed bodies)
or :class:`ProviderRejected`. Replies are read up to the bound of :mod:`reply_limit`.
"""

from __future__ import annotations

import inspect

import anthropic

from persrm_gen.errors import FatalProviderError
from persrm_gen.llm.faults import TransientError, pause_hint
from persrm_gen.llm.transports.sdk_call import create, sdk_client
from persrm_gen.llm.types import LLMRequest, LLMResponse, Message, server_scope


# Newer SDKs dropped the sampling arguments from messages.create (the newest models fix
# them); send temperature only where this SDK still takes it.
_TAKES_TEMPERATURE = "temperature" in inspect.signature(
    anthropic.resources.messages.AsyncMessages.create
).parameters


_EPHEMERAL = {"type": "ephemeral"}  # Anthropic's 5-minute prompt cache


def _with_breakpoint(m: Message) -> dict:
    """A message; with a ``cache_prefix``, split into two text blocks, the first (the repeated
    samples) ending in a cache breakpoint. Prefixes too short to cache are ignored by the API."""
    if not 0 < m.cache_prefix < len(m.content):
        return m.as_dict()
    head, tail = m.content[: m.cache_prefix], m.content[m.cache_prefix :]
    return {"role": m.role, "content": [{"type": "text", "text": head, "cache_control": _EPHEMERAL},
                                        {"type": "text", "text": tail}]}


def _with_end_breakpoint(messages: list[dict]) -> list[dict]:
    """A breakpoint at the end of the prompt too: a re-sample (same prompt, new attempt) then
    reads all of it. Re-samples are about half of all judge requests (issue 11), so the
    first attempt's extra write (0.25x of its tail) is repaid by the first re-sample (0.9x)."""
    if not messages:
        return messages
    last = dict(messages[-1])
    content = last["content"]
    blocks = [dict(b) for b in content] if isinstance(content, list) else [{"type": "text", "text": content}]
    if not blocks[-1].get("text"):
        return messages
    blocks[-1]["cache_control"] = _EPHEMERAL
    last["content"] = blocks
    return [*messages[:-1], last]


def message_params(request: LLMRequest) -> dict:
    if request.messages is None:
        raise FatalProviderError("the anthropic backend takes chat messages only (no raw-prompt base models)")
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    params: dict = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": _with_end_breakpoint([_with_breakpoint(m) for m in request.messages if m.role != "system"]),
    }
    if _TAKES_TEMPERATURE:
        # Recent Claude models refuse temperature and top_p together; temperature carries the intent.
        params["temperature"] = min(request.temperature, 1.0)
    if system:
        # A cache breakpoint after the system prompt: every request of a stage repeats it.
        params["system"] = [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    return params


def parse_message(msg: object, headers=None) -> LLMResponse:
    try:
        blocks = msg.content  # type: ignore[attr-defined]
        text = "".join(b.text for b in blocks if getattr(b, "type", None) == "text")
        usage = msg.usage  # type: ignore[attr-defined]
    except (AttributeError, TypeError) as e:
        raise TransientError("malformed", f"unusable response body ({e})") from None
    if not blocks:
        raise TransientError("malformed", "response has no content blocks")
    # Anthropic's input_tokens leaves out the tokens read from and written to the cache;
    # LLMResponse.input_tokens is the whole prompt, the other two are subsets of it.
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    return LLMResponse(
        text=text,
        input_tokens=_count(usage, "input_tokens") + read + written,
        output_tokens=_count(usage, "output_tokens"),
        finish_reason=str(getattr(msg, "stop_reason", None) or "stop"),
        cached_input_tokens=read,
        cache_write_tokens=written,
        meta=pause_hint(headers),
    )


def _count(usage: object, name: str) -> int:
    try:
        return int(getattr(usage, name, 0) or 0)
    except (TypeError, ValueError):
        return 0


class AnthropicTransport:
    provider = "anthropic"
    supports_chat = True
    supports_prompt = False

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float | None = 60.0,
                 max_connections: int = 1024, http: str = "aiohttp"):
        self._client = sdk_client(anthropic, anthropic.AsyncAnthropic, api_key=api_key, base_url=base_url,
                                  timeout=timeout, max_connections=max_connections, http=http)
        # Where requests really go (the SDK also reads ANTHROPIC_BASE_URL).
        self.endpoint = server_scope(str(self._client.base_url), self.provider)

    async def send(self, request: LLMRequest) -> LLMResponse:
        msg, headers = await create(anthropic, self._client.messages, request, message_params(request))
        return parse_message(msg, headers=headers)

    async def aclose(self) -> None:
        await self._client.close()

"""Anthropic through the official SDK (AsyncAnthropic ``messages.create``).

System messages are split out into the ``system`` parameter, as the Messages API wants.
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
from persrm_gen.llm.types import LLMRequest, LLMResponse, as_dicts, server_scope


# Newer SDKs dropped the sampling arguments from messages.create (the newest models fix
# them); send temperature only where this SDK still takes it.
_TAKES_TEMPERATURE = "temperature" in inspect.signature(
    anthropic.resources.messages.AsyncMessages.create
).parameters


def message_params(request: LLMRequest) -> dict:
    if request.messages is None:
        raise FatalProviderError("the anthropic backend takes chat messages only (no raw-prompt base models)")
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    params: dict = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": as_dicts(m for m in request.messages if m.role != "system"),
    }
    if _TAKES_TEMPERATURE:
        # Recent Claude models refuse temperature and top_p together; temperature carries the intent.
        params["temperature"] = min(request.temperature, 1.0)
    if system:
        params["system"] = system
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
    return LLMResponse(
        text=text,
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        finish_reason=str(getattr(msg, "stop_reason", None) or "stop"),
        meta=pause_hint(headers),
    )


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

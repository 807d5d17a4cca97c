"""Anthropic through the official SDK (AsyncAnthropic ``messages.create``).

System messages are split out into the ``system`` parameter, as the Messages API wants.
Only chat requests: Anthropic serves no base models. The SDK's retries are off; errors map
to :class:`TransientError` (429, 5xx, 529 overloaded, timeouts, resets, malformed bodies)
or :class:`ProviderRejected`. Replies are read up to the bound of :mod:`reply_limit`.
"""

from __future__ import annotations

import inspect

import anthropic
import httpx2

from persrm_gen.errors import FatalProviderError
from persrm_gen.llm.faults import TransientError, pause_hint
from persrm_gen.llm.reply_limit import limit_replies, reset_limit, sdk_event_hooks
from persrm_gen.llm.transports.sdk_errors import map_sdk_error
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
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        make_http = anthropic.DefaultAioHttpClient if http == "aiohttp" else anthropic.DefaultAsyncHttpxClient
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
            http_client=make_http(limits=limits, timeout=timeout, event_hooks=sdk_event_hooks()),
        )
        # Where requests really go (the SDK also reads ANTHROPIC_BASE_URL).
        self.endpoint = server_scope(str(self._client.base_url), self.provider)

    async def send(self, request: LLMRequest) -> LLMResponse:
        params = message_params(request)
        bound = limit_replies(request)
        try:
            raw = await self._client.messages.with_raw_response.create(**params)
            msg = raw.parse()
            if inspect.isawaitable(msg):  # the async raw response parses lazily
                msg = await msg
        except Exception as e:  # noqa: BLE001 - mapped, or re-raised unchanged
            raise map_sdk_error(e, anthropic) from None
        finally:
            reset_limit(bound)
        return parse_message(msg, headers=raw.headers)

    async def aclose(self) -> None:
        await self._client.close()

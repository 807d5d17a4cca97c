"""OpenAI through the official SDK (AsyncOpenAI): the reference transport.

Chat requests go to ``chat.completions``, raw-prompt requests (base models on vLLM or
llama.cpp) to ``completions``. The SDK's own retries are off: retries, limits and the
cache live once in the client above. SDK exceptions map to :class:`TransientError`
(retry) or :class:`ProviderRejected` (no retry). Replies are read up to the bound of
:mod:`reply_limit`.
"""

from __future__ import annotations

import openai
import pydantic

from persrm_gen.llm.transports.fast_openai import is_official, parse_response, request_body
from persrm_gen.llm.transports.sdk_call import create, sdk_client
from persrm_gen.llm.types import LLMRequest, LLMResponse, server_scope


class OpenAITransport:
    provider = "openai"
    supports_chat = True
    supports_prompt = True

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float | None = 60.0,
                 max_connections: int = 1024, http: str = "aiohttp"):
        self.official = is_official(base_url)
        self._client = sdk_client(openai, openai.AsyncOpenAI, api_key=api_key, base_url=base_url, timeout=timeout,
                                  max_connections=max_connections, http=http)
        # Where requests really go (the SDK also reads OPENAI_BASE_URL).
        self.endpoint = server_scope(str(self._client.base_url), self.provider)

    async def send(self, request: LLMRequest) -> LLMResponse:
        path, body = request_body(request, official=self.official)
        chat = path == "/chat/completions"
        api = self._client.chat.completions if chat else self._client.completions
        parsed, headers = await create(openai, api, request, body)
        return parse_response(_as_dict(parsed), chat=chat, headers=headers)

    async def aclose(self) -> None:
        await self._client.close()


def _as_dict(parsed: object) -> object:
    """SDK models -> plain dict; a body the SDK could not model (truncated JSON) stays as is."""
    if isinstance(parsed, pydantic.BaseModel):
        return parsed.model_dump()
    return parsed

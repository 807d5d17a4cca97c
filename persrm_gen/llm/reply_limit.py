"""How much of a reply the client reads: a bound from ``max_tokens``, on every HTTP path.

A reply to a request for 160 tokens has no business being 10 MB. Read whole, such
replies cost gigabytes of memory at a thousand in flight and bloat the cache; so each
transport stops reading once a reply passes :func:`reply_limit` and raises a ``malformed``
fault (retried like any garbled body, never cached). The bound is generous for any real
reply: JSON escaping, usage blocks, log-probabilities of a few alternatives.

The fast path counts bytes as it reads them; the SDK paths get the same check as an
httpx response hook (:func:`sdk_event_hooks`) that refuses a long Content-Length at once
and wraps the body stream so a chunked reply stops at the bound too. The bound of the
request being sent travels to the hook in a context variable, set by the transport.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator

import httpx2

from persrm_gen.llm.faults import TransientError
from persrm_gen.llm.types import LLMRequest

BASE_BYTES = 64 * 1024
BYTES_PER_TOKEN = 64

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("persrm_reply_limit", default=None)


def reply_limit(request: LLMRequest, request_bytes: int = 0) -> int:
    """Most bytes a reply to ``request`` may take (its body as sent counts: some servers echo it)."""
    return BASE_BYTES + BYTES_PER_TOKEN * max(request.max_tokens, 0) + request_bytes


def too_large(limit: int) -> TransientError:
    return TransientError("malformed", f"reply larger than {limit:,} bytes (the bound for its max_tokens); not read")


def limit_replies(request: LLMRequest) -> contextvars.Token:
    """Set the bound for the replies read in this task (the SDK paths; see the hook below)."""
    return _LIMIT.set(reply_limit(request, len(str(request.prompt or request.messages or "").encode())))


def reset_limit(token: contextvars.Token) -> None:
    _LIMIT.reset(token)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, limit: int):
        self._inner, self._limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise too_large(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _cap_reply(response: httpx2.Response) -> None:
    limit = _LIMIT.get()
    if limit is None:
        return
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    if isinstance(response.stream, httpx2.AsyncByteStream):
        response.stream = _CappedStream(response.stream, limit)


def sdk_event_hooks() -> dict:
    """``event_hooks`` for the SDKs' HTTP clients: replies over the bound are faults, not read."""
    return {"response": [_cap_reply]}

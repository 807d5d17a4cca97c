"""OpenAI's Batch API through the official SDK: a JSONL file of request lines uploaded with
the Files API, ``POST /v1/batches``, polled, then its output and error files downloaded.

Each line's body is exactly what the live transports send (``fast_openai.request_body``)
and each reply is read by the same parser, so a batch build and a live build of the same
seed agree row for row. A batch carries our ``tag`` in its metadata, so a run killed
between creating a batch and recording its id finds it again instead of submitting twice.
"""

from __future__ import annotations

import dataclasses
import json

import openai

from persrm_gen.llm.batches.base import BatchStatus, Cancelled, Outcome, sdk_faults
from persrm_gen.llm.faults import TransientError, error_for_status
from persrm_gen.llm.transports.fast_openai import is_official, parse_response, request_body
from persrm_gen.llm.transports.sdk_call import sdk_client
from persrm_gen.llm.types import LLMRequest, LLMResponse, server_scope
from persrm_gen.secrets import redact_secrets

MAX_REQUESTS = 50_000  # per batch (OpenAI's limit)
MAX_BYTES = 200 * 1024 * 1024  # per input file
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_TAG = "persrm_tag"
_FIND_LIMIT = 1000  # batches listed (newest first) when looking for a tag


class OpenAIBatches:
    provider = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float | None = 120.0,
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES):
        self.official = is_official(base_url)
        self._client = sdk_client(openai, openai.AsyncOpenAI, api_key=api_key, base_url=base_url,
                                  timeout=timeout, max_connections=8, http="httpx")
        self.endpoint = server_scope(str(self._client.base_url), self.provider)
        self.max_requests, self.max_bytes = max_requests, max_bytes

    def encode(self, custom_id: str, request: LLMRequest) -> tuple[str, bytes]:
        path, body = request_body(request, official=self.official)
        url = "/v1" + path
        line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
        return url, json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()

    async def submit(self, group: str, lines: list[bytes], tag: str) -> str:
        data = b"\n".join(lines) + b"\n"
        async with sdk_faults(openai):
            f = await self._client.files.create(file=(f"{tag}.jsonl", data, "application/jsonl"), purpose="batch")
            b = await self._client.batches.create(input_file_id=f.id, endpoint=group,  # type: ignore[arg-type]
                                                  completion_window="24h", metadata={_TAG: tag})
        return b.id

    async def find(self, tag: str) -> str | None:
        seen = 0
        async with sdk_faults(openai):
            async for b in self._client.batches.list(limit=100):
                if (b.metadata or {}).get(_TAG) == tag:
                    return b.id
                seen += 1
                if seen >= _FIND_LIMIT:
                    break
        return None

    async def status(self, batch_id: str) -> BatchStatus:
        async with sdk_faults(openai):
            b = await self._client.batches.retrieve(batch_id)
        return _status(b)

    async def cancel(self, batch_id: str) -> BatchStatus:
        async with sdk_faults(openai):
            b = await self._client.batches.cancel(batch_id)
        return _status(b)

    async def results(self, batch_id: str) -> list[Outcome]:
        async with sdk_faults(openai):
            b = await self._client.batches.retrieve(batch_id)
            files = [f for f in (b.output_file_id, b.error_file_id) if f]
            texts = [(await self._client.files.content(f)).text for f in files]
        return [_outcome(json.loads(line)) for text in texts for line in text.splitlines() if line.strip()]

    async def aclose(self) -> None:
        await self._client.close()


def _status(b) -> BatchStatus:
    counts = b.request_counts
    message = ""
    if b.errors is not None and b.errors.data:
        message = redact_secrets("; ".join(f"{e.code or 'error'}: {e.message or ''}".strip() for e in b.errors.data))
    done = (counts.completed + counts.failed) if counts else 0
    return BatchStatus(state=b.status, ended=b.status in ENDED, message=message, done=done,
                       total=counts.total if counts else 0)


def _outcome(line: dict) -> Outcome:
    cid = str(line.get("custom_id"))
    resp, err = line.get("response"), line.get("error")
    try:
        if resp and resp.get("status_code") == 200:
            body = resp.get("body") or {}
            chat = "message" in ((body.get("choices") or [{}])[0] or {})
            return Outcome(cid, response=as_batch_reply(parse_response(body, chat=chat), body.get("usage") or {}))
        if resp:
            e = (resp.get("body") or {}).get("error") or {}
            return Outcome(cid, error=error_for_status(int(resp.get("status_code") or 500), str(e.get("message") or e)))
        code = str((err or {}).get("code") or "")
        message = str((err or {}).get("message") or code or "no result")
    except TransientError as e:
        return Outcome(cid, error=e)
    except (TypeError, ValueError, AttributeError) as e:
        return Outcome(cid, error=TransientError("malformed", f"unusable batch line ({e})"))
    if code == "batch_expired":
        return Outcome(cid, error=TransientError("timeout", f"expired before it ran: {message}"))
    if code == "batch_cancelled":
        return Outcome(cid, error=Cancelled(f"cancelled: {redact_secrets(message)}"))
    return Outcome(cid, error=TransientError("server_error", message))


def as_batch_reply(response: LLMResponse, usage: dict) -> LLMResponse:
    """The reply, marked as bought through a batch; cached input tokens from the usage when
    the shared parser did not read them (``prompt_tokens_details.cached_tokens``)."""
    cached = response.cached_input_tokens or int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    return dataclasses.replace(response, batch=True, cached_input_tokens=cached, meta={})

"""What every provider's batch API offers the runner, and the shapes they exchange.

A provider module (:mod:`.openai_batches`, :mod:`.anthropic_batches`) turns requests into
its own batch lines, submits a list of lines as one batch, reads a batch's status and
downloads its per-line outcomes. Everything else (splitting, persistence, polling, retries)
is the runner's, written once. Outcomes are our own types: an :class:`LLMResponse` (with
``batch=True``), or a fault of :mod:`persrm_gen.llm.faults` classified like a live reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from persrm_gen.errors import FatalProviderError
from persrm_gen.llm.faults import TransientError
from persrm_gen.llm.transports.sdk_errors import map_sdk_error
from persrm_gen.llm.types import LLMRequest, LLMResponse


CANCEL_STATES = frozenset({"cancelling", "cancelled", "canceling", "canceled"})


class Cancelled(FatalProviderError):
    """A line its batch's cancellation kept from running (``persrm-gen batches --cancel``)."""


@dataclass(frozen=True)
class BatchStatus:
    """One poll of a batch: the provider's own state word, and whether it is final."""

    state: str
    ended: bool
    message: str = ""  # why it failed, from the provider (masked by the API module)
    done: int = 0  # lines processed so far, when the provider says
    total: int = 0


@dataclass(frozen=True)
class Outcome:
    """One line's result: exactly one of ``response`` or ``error``."""

    custom_id: str
    response: LLMResponse | None = None
    error: Exception | None = None


class BatchAPI(Protocol):
    provider: str  # "openai" | "anthropic"
    endpoint: str | None  # the server as the cache key names it (None: the provider's own)
    max_requests: int  # lines per batch the provider accepts
    max_bytes: int  # bytes per batch (the input file, or the request body)

    def encode(self, custom_id: str, request: LLMRequest) -> tuple[str, bytes]:
        """(group, line): lines of one batch share a group (OpenAI: the endpoint path)."""
        ...

    async def submit(self, group: str, lines: list[bytes], tag: str) -> str:
        """Create one batch of ``lines``; its id. ``tag`` is ours, kept where the provider keeps metadata."""
        ...

    async def find(self, tag: str) -> str | None:
        """The id of a batch created with ``tag`` (after a crash between create and record), if the provider can tell."""
        ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str) -> list[Outcome]: ...

    async def cancel(self, batch_id: str) -> BatchStatus: ...

    async def aclose(self) -> None: ...


def split(lines: list[tuple[str, str, bytes]], max_requests: int, max_bytes: int) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """(group, [(custom_id, line)]) chunks of ``(group, custom_id, line)``, each within both limits.

    A line alone over ``max_bytes`` still goes, alone: the provider then refuses that one batch."""
    groups: dict[str, list[tuple[str, bytes]]] = {}
    for group, cid, line in lines:
        groups.setdefault(group, []).append((cid, line))
    for group, items in groups.items():
        chunk: list[tuple[str, bytes]] = []
        size = 0
        for cid, line in items:
            n = len(line) + 1  # the newline of a JSONL file
            if chunk and (len(chunk) >= max_requests or size + n > max_bytes):
                yield group, chunk
                chunk, size = [], 0
            chunk.append((cid, line))
            size += n
        if chunk:
            yield group, chunk


@asynccontextmanager
async def sdk_faults(sdk: ModuleType) -> AsyncIterator[None]:
    """The SDK's exceptions as our faults: transient ones (the runner polls again later),
    refusals (:class:`ProviderRejected`: the run stops with the provider's masked message)."""
    try:
        yield
    except (TransientError, FatalProviderError):
        raise
    except Exception as e:  # noqa: BLE001 - mapped, or re-raised unchanged
        mapped = map_sdk_error(e, sdk)
        if mapped is e:
            raise
        raise mapped from None

"""The faults of one request: what the client retries, what it gives up on, and why.

Its own module, below both the client and the transports (as httpx keeps its exceptions
apart from its client): a transport raises these and the client acts on them, so neither
has to import the other. Reading a provider's "wait this long" headers lives here too:
it is what a 429 or a 503 says about when the fault clears.

- :class:`TransientError` (429, 5xx, timeouts, resets, malformed or oversized bodies,
  invalid output): a later attempt can fix it.
- :class:`ProviderRejected` (a 4xx other than those): retrying cannot help.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from persrm_gen.errors import FatalProviderError
from persrm_gen.secrets import redact_secrets

# TransientError.kind -> the StageUsage counter it increments.
FAULT_KINDS = {
    "rate_limited": "rate_limited",
    "server_error": "server_errors",
    "timeout": "timeouts",
    "connection": "connection_errors",
    "malformed": "malformed",
    "invalid_output": "invalid_output",
}


class TransientError(Exception):
    """A fault a later attempt can fix. ``kind`` is one of :data:`FAULT_KINDS`.

    The message is masked here, at creation: a provider's error text may echo the key, and
    the message travels on to the terminal, logs, the manifest and the cache.
    ``final``: no further attempt of this request (its retries for invalid output are spent).
    """

    def __init__(self, kind: str, message: str = "", *, retry_after: float | None = None,
                 status: int | None = None, final: bool = False):
        super().__init__(f"{kind}: {redact_secrets(message)}" if message else kind)
        self.kind = kind if kind in FAULT_KINDS else "server_error"
        self.retry_after = retry_after
        self.status = status
        self.final = final


class ProviderRejected(FatalProviderError):
    """The provider refused the request (4xx): retrying cannot help. Carries the status.

    Masked at creation like :class:`TransientError`: a 401 body may repeat ``Bearer sk-...``."""

    def __init__(self, message: str, status: int | None = None):
        message = redact_secrets(message)
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status

    @property
    def is_auth(self) -> bool:
        return self.status in (401, 403)


# The per-request failures: everything else stops the run.
REQUEST_FAULTS = (TransientError, FatalProviderError)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def error_for_status(status: int, message: str, headers=None) -> TransientError | ProviderRejected:
    """Map an HTTP error status to the client's taxonomy (shared by every HTTP transport)."""
    retry_after = retry_after_seconds(headers)
    if status == 429:
        return TransientError("rate_limited", message, retry_after=retry_after, status=status)
    if status >= 500 or status in RETRYABLE_STATUS:
        return TransientError("server_error", f"HTTP {status}: {message}", retry_after=retry_after, status=status)
    return ProviderRejected(message, status)


_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: str) -> float | None:
    """Parse '1.5', '6m0s', '250ms' or an HTTP/RFC 3339 date into seconds from now."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            from datetime import datetime

            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return when.timestamp() - time.time()


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """How long the provider asks us to wait, from any header it uses for that.

    Retry-After(-ms) first; otherwise an exhausted request/token window's reset time
    (OpenAI ``x-ratelimit-*``, Anthropic ``anthropic-ratelimit-*``). None when silent.
    """
    if not headers:
        return None
    # aiohttp's and httpx's header maps are case-insensitive already; a plain dict is not.
    h = {k.lower(): v for k, v in headers.items()} if isinstance(headers, dict) else headers
    if "retry-after-ms" in h:
        try:
            return max(0.0, float(h["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in h and (s := _seconds(h["retry-after"])) is not None:
        return max(0.0, s)
    waits = []
    for remaining, reset in (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
        ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ):
        if (h.get(remaining) or "").strip() == "0" and reset in h:
            if (s := _seconds(h[reset])) is not None:
                waits.append(max(0.0, s))
    return max(waits) if waits else None


def pause_hint(headers: Mapping[str, str] | None) -> dict:
    """``LLMResponse.meta`` of a reply: ``{"pause_s": ...}`` when even a success says to wait
    (an exhausted rate window), so the client's limiter holds new sends; else empty."""
    pause = retry_after_seconds(headers)
    return {} if pause is None else {"pause_s": pause}

"""What share of a run's input the providers' prompt caches should serve: for ``--dry-run``.

A request reads the cache when an earlier request sent the same prefix: the system prompt
and the author's samples (the message's ``cache_prefix``), which every pair and re-sample of
a target repeats. Only prefixes of at least :data:`MIN_CACHED_TOKENS` are cached by either
provider; Anthropic also bills the first request that writes one. This is the expectation
for a build whose shared prefixes are warm before they are reused (the judge's first wave
does that); the real figure, read from the responses, is in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from persrm_gen.llm.types import LLMRequest

MIN_CACHED_TOKENS = 1024


def cached_prefix(request: LLMRequest) -> str:
    """The prefix ``request`` shares with others: system prompt(s) and the samples block."""
    if request.messages is None:
        return ""
    parts = []
    for m in request.messages:
        if m.role == "system":
            parts.append(m.content)
            continue
        if m.cache_prefix:
            parts.append(m.content[: m.cache_prefix])
        break
    return "\n".join(parts)


def project(requests: Sequence[LLMRequest], provider: str, count: Callable[[str], int]) -> list[tuple[int, int]]:
    """Per request, in order: (tokens expected from the cache, tokens expected to be written)."""
    seen: set[str] = set()
    out = []
    for r in requests:
        prefix = cached_prefix(r)
        tokens = count(prefix) if prefix else 0
        if tokens < MIN_CACHED_TOKENS or provider not in ("openai", "anthropic"):
            out.append((0, 0))
        elif prefix in seen:
            out.append((tokens, 0))
        else:
            seen.add(prefix)
            out.append((0, tokens if provider == "anthropic" else 0))
    return out

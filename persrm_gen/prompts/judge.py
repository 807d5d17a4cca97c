"""The prompts of every dataset row: the reward model's (``prompts/judge.j2``, one place for build,
train and eval) and the ``preference`` config's (``prompts/preference.j2``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from persrm_gen.llm.types import as_dicts
from persrm_gen.prompts.renderer import PromptRenderer


@lru_cache(maxsize=4)
def _renderer(prompts_dir: str | None) -> PromptRenderer:
    return PromptRenderer(Path(prompts_dir) if prompts_dir else None)


def judge_messages(
    context: Sequence[str],
    query: str,
    response_a: str,
    response_b: str,
    *,
    prompts_dir: str | None = None,
    renderer: PromptRenderer | None = None,
) -> list[dict]:
    """Chat messages ``[{"role", "content"}, ...]`` asking which response the author wrote."""
    msgs = (renderer or _renderer(prompts_dir)).messages(
        "judge", context=list(context), query=query, response_a=response_a, response_b=response_b
    )
    return as_dicts(msgs)


def preference_messages(context: Sequence[str], query: str, *, renderer: PromptRenderer) -> list[dict]:
    """The prompt of the ``preference`` config: write as the author (``prompts/preference.j2``)."""
    msgs = renderer.messages("preference", context=list(context), query=query)
    return as_dicts(msgs)

"""Prompt caching needs what repeats first: in every template the system prompt, then the
author's samples, then the query, and what changes per request (the responses, the text to
rewrite, the evidence) last. A template that breaks this order pays full price for the
prefix every time; this test renders each one with markers and compares positions."""

from __future__ import annotations

from importlib import resources

import pytest

from persrm_gen.prompts.renderer import SUFFIX, PromptRenderer

# Tiers, in the order a prompt must show them.
SAMPLES, QUERY = 0, 1
TIERS = {"context": SAMPLES, "other_samples": SAMPLES, "query": QUERY}
LAST = 2  # everything per request: responses, evidence, the text to edit, the opening, the label
VARIABLES = {
    "context": ["@@context0@@", "@@context1@@"], "other_samples": ["@@other_samples0@@"], "query": "@@query@@",
    "response_a": "@@response_a@@", "response_b": "@@response_b@@", "evidence": ["@@evidence@@"],
    "text": "@@text@@", "opening": "@@opening@@", "label": "@@label@@", "style": "@@style@@",
    "genre": "essay", "axis": "length", "direction": "make it shorter", "n_words": 3,
    "word_budget": 120, "paragraphs": 2,
}
NOT_PROMPTS = {"_samples", "rationale_evidence"}  # an include, and a trace written from measurements
TEMPLATES = sorted(p.name.removesuffix(SUFFIX) for p in resources.files("persrm_gen.prompts").iterdir()
                   if p.name.endswith(SUFFIX) and p.name.removesuffix(SUFFIX) not in NOT_PROMPTS)


def _positions(text: str) -> list[tuple[int, int, str]]:
    """(position, tier, variable) of every marker in ``text``."""
    out = []
    for name, value in VARIABLES.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v.startswith("@@") and (i := text.find(v)) >= 0:
                out.append((i, TIERS.get(name, LAST), name))
    return sorted(out)


def _renders(r: PromptRenderer, name: str) -> list[str]:
    template = r.env.get_template(name + SUFFIX)
    out = []
    if "user" in template.blocks:
        msgs = r.messages(name, **VARIABLES)
        out.append("\n".join(f"<{m.role}>{m.content}" for m in msgs))
    if "prompt" in template.blocks or "user" not in template.blocks:
        out.append(r.text(name, **VARIABLES))
    return out


def test_every_prompt_template_is_checked():
    assert {"rationale", "rationale_hinted", "mimic", "matched", "randomize", "axis", "minimal_edit", "judge",
            "preference", "task"} <= set(TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_what_repeats_comes_first(name):
    r = PromptRenderer()
    for text in _renders(r, name):
        found = _positions(text)
        assert found, f"{name}: no variable rendered"
        tiers = [tier for _, tier, _ in found]
        assert tiers == sorted(tiers), f"{name}: order {[v for _, _, v in found]} puts a later tier first"
        if text.startswith("<system>"):  # chat: the system prompt holds no per-request variable
            system = text.split("\n<user>", 1)[0]
            assert not _positions(system), f"{name}: the system prompt varies per request"


@pytest.mark.parametrize("name", [t for t in TEMPLATES if t not in ("axis", "minimal_edit", "task")])
def test_the_cache_breakpoint_follows_the_samples_and_the_query(name):
    r = PromptRenderer()
    template = r.env.get_template(name + SUFFIX)
    if "user" not in template.blocks:
        pytest.skip("no chat form")
    user = r.messages(name, **VARIABLES)[-1]
    if "@@context0@@" not in user.content:
        assert user.cache_prefix == 0  # randomize shows no samples in chat: nothing to break after
        return
    head = user.content[: user.cache_prefix]
    # the samples and the query: what every pair and re-sample of a target repeats
    assert head.endswith("@@query@@") and "@@context1@@" in head
    assert not any(v in head for v in ("@@response_a@@", "@@response_b@@", "@@evidence@@", "@@opening@@"))

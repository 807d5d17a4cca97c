"""Verifiable rewards for GRPO on the ``rft`` config, and a warning for batches that cannot learn.

TRL calls each reward as ``f(prompts=..., completions=..., **dataset_columns)`` and
wants one float per completion. Conversational completions arrive as
``[{"role": "assistant", "content": ...}]``; plain ones as strings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from transformers import TrainerCallback

from persrm_gen.answer import format_ok, parse_verdict, reasoning_of

log = logging.getLogger("persrm_gen.trainers")

RewardFunc = Callable[..., list[float]]


def completion_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    # A conversational completion: the assistant's message(s).
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def format_reward(completions: Sequence, **_) -> list[float]:
    """1.0 for one non-empty <think> section followed by exactly one final <answer>A|B</answer>."""
    return [1.0 if format_ok(completion_text(c)) else 0.0 for c in completions]


def accuracy_reward(completions: Sequence, label: Sequence[str], **_) -> list[float]:
    """1.0 when the single well-formed answer tag equals the label, else 0.0."""
    return [
        1.0 if parse_verdict(completion_text(c)) == str(y).strip().upper() else 0.0
        for c, y in zip(completions, label, strict=True)
    ]


def make_length_penalty(target_words: int, coef: float) -> RewardFunc:
    """Penalise reasoning longer than ``target_words``: -coef at twice the target, capped there."""

    def length_penalty(completions: Sequence, **_) -> list[float]:
        out = []
        for c in completions:
            words = len(reasoning_of(completion_text(c)).split())
            over = max(0, words - target_words) / max(1, target_words)
            out.append(-coef * min(1.0, over))
        return out

    return length_penalty


def reward_functions(length_coef: float = 0.0, length_target: int = 200) -> list[RewardFunc]:
    funcs: list[RewardFunc] = [format_reward, accuracy_reward]
    if length_coef > 0:
        funcs.append(make_length_penalty(length_target, length_coef))
    return funcs


class ZeroSpreadWarning(TrainerCallback):
    """Warn when every group in a logged batch scored the same: zero advantage, zero loss.

    GRPO learns from differences between the completions of one prompt. When all of
    them get the same reward (all malformed, or all right) the step changes nothing.
    """

    def __init__(self) -> None:
        self.zero_spread_steps: list[int] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        frac = (logs or {}).get("frac_reward_zero_std")
        if frac is not None and frac >= 1.0:
            self.zero_spread_steps.append(state.global_step)
            log.warning(
                "step %d: every prompt's completions got the same reward (no spread), so the loss is zero and "
                "nothing is learnt; raise --num-generations or the temperature, or SFT first so the format "
                "reward can vary",
                state.global_step,
            )

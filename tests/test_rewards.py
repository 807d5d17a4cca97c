"""The GRPO rewards on hand-made completions, and the zero-spread warning."""

from __future__ import annotations

import logging

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from persrm_gen.trainers.rewards import (
    ZeroSpreadWarning,
    accuracy_reward,
    format_reward,
    make_length_penalty,
    reward_functions,
)

RIGHT = "<think>\nShort sentences, no commas: like the samples.\n</think>\n<answer>A</answer>"
WRONG = "<think>\nLong sentences; B matches.\n</think>\n<answer>B</answer>"
TWO_ANSWERS = "<think>\nHmm.\n</think>\n<answer>A</answer><answer>B</answer>"
UNCLOSED_THINK = "<think>\nI think A.\n<answer>A</answer>"
NO_THINK = "<answer>A</answer>"
EMPTY_THINK = "<think>  </think><answer>A</answer>"
TRAILING = RIGHT + "\nI hope that helps."
BAD_LETTER = "<think>\nneither\n</think>\n<answer>C</answer>"
ANSWER_FIRST = "<answer>A</answer>\n<think>\nbecause\n</think>"


def conv(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    "text, expected",
    [
        (RIGHT, 1.0),
        (WRONG, 1.0),  # well-formed, even if wrong
        (TWO_ANSWERS, 0.0),
        (UNCLOSED_THINK, 0.0),
        (NO_THINK, 0.0),
        (EMPTY_THINK, 0.0),
        (TRAILING, 0.0),
        (BAD_LETTER, 0.0),
        (ANSWER_FIRST, 0.0),
    ],
)
def test_format_reward(text, expected):
    assert format_reward([text]) == [expected]
    assert format_reward([conv(text)]) == [expected]  # TRL's conversational completions


def test_accuracy_reward_needs_one_answer_equal_to_the_label():
    completions = [RIGHT, WRONG, TWO_ANSWERS, NO_THINK, BAD_LETTER, "no tags at all"]
    labels = ["A"] * len(completions)
    assert accuracy_reward(completions, label=labels) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    # The same completions against label B: only the B answer is right.
    assert accuracy_reward([conv(c) for c in completions], label=["B"] * 6) == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert accuracy_reward([RIGHT], label=[" a "]) == [1.0]  # labels are normalised


def test_length_penalty_starts_at_the_target_and_is_capped():
    penalty = make_length_penalty(target_words=10, coef=0.5)
    trace = lambda n: "<think>" + " word" * n + "</think><answer>A</answer>"  # noqa: E731
    scores = penalty([trace(5), trace(10), trace(15), trace(20), trace(500)])
    assert scores == [0.0, 0.0, -0.25, -0.5, -0.5]


def test_reward_functions_have_distinct_names_for_trl_logs():
    assert [f.__name__ for f in reward_functions()] == ["format_reward", "accuracy_reward"]
    names = [f.__name__ for f in reward_functions(length_coef=0.1)]
    assert names == ["format_reward", "accuracy_reward", "length_penalty"]


def test_zero_spread_warning_fires_only_when_every_group_is_flat(caplog):
    cb = ZeroSpreadWarning()
    state, control = TrainerState(), TrainerControl()
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")
    with caplog.at_level(logging.WARNING, logger="persrm_gen.trainers"):
        state.global_step = 1
        cb.on_log(args, state, control, logs={"loss": 0.0, "frac_reward_zero_std": 1.0})
        state.global_step = 2
        cb.on_log(args, state, control, logs={"loss": 0.1, "frac_reward_zero_std": 0.5})
        state.global_step = 3
        cb.on_log(args, state, control, logs={"train_runtime": 1.0})
    assert cb.zero_spread_steps == [1]
    assert sum("no spread" in r.getMessage() for r in caplog.records) == 1

"""The judge's output format, shared by the builder, the validators, rewards and eval.

A trace is one reasoning section followed by exactly one final answer tag::

    <think>...reasoning about the author's style...</think>
    <answer>A</answer>
"""

from __future__ import annotations

import re

ANSWER_RE = re.compile(r"<answer>\s*([AB])\s*</answer>", re.IGNORECASE)
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANY_ANSWER_TAG = re.compile(r"</?answer>", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """The final verdict, or None when there is not exactly one well-formed answer tag."""
    found = ANSWER_RE.findall(text)
    if len(found) != 1 or len(_ANY_ANSWER_TAG.findall(text)) != 2:
        return None
    return found[0].upper()


def format_ok(text: str) -> bool:
    """One non-empty reasoning section, then exactly one answer tag, and nothing after it."""
    thinks = THINK_RE.findall(text)
    if len(thinks) != 1 or not thinks[0].strip() or text.count("<think>") != 1:
        return False
    if parse_verdict(text) is None:
        return False
    end_think = text.index("</think>")
    answer = ANSWER_RE.search(text)
    return answer is not None and answer.start() > end_think and not text[answer.end():].strip()


def reasoning_of(text: str) -> str:
    m = THINK_RE.search(text)
    return m.group(1).strip() if m else ""


def make_trace(reasoning: str, verdict: str) -> str:
    return f"<think>\n{reasoning.strip()}\n</think>\n<answer>{verdict}</answer>"

"""Fit rows into ``--max-length`` tokens by trimming the author's writing samples.

Why: TRL cuts an over-long SFT row from the end (losing the answer tag) or drops it when
the prompt alone fills the limit, and GRPO and generation have no room left for the
completion. Long essays or news with three writing samples can make every row too long,
and SFT then dies in torch with ``num_samples=0``. The writing samples are the one part
of a row that can shrink without changing the task: the query, the two responses and
the completion are what is judged and learnt, so they are never cut. Samples are cut
equally (each gets the same share of the room left), at a sentence end, or at a word
end when a sentence end would waste more than half of the share; a row is dropped only
when it does not fit with no writing samples at all.

A row that fits keeps its stored prompt byte for byte. A trimmed prompt is re-rendered
from the dataset's ``pairs`` row through :mod:`persrm_gen.prompts.judge`, the one place
the judge prompt is built; a stored prompt is matched to its pairs row by rendering.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from persrm_gen.errors import UsageError
from persrm_gen.prompts.judge import judge_messages
from persrm_gen.textutil import SENTENCE_END_ANY_SCRIPT, WORD_END

_BATCH = 256  # rows per batched tokenizer call when measuring
_CHARS_PER_TOKEN = 32  # more than any real tokenizer averages: the window always holds the budget
_ROUNDS = 8  # re-trims after the first; each takes the measured overshoot off the room


@dataclass
class FitReport:
    """What fitting did to one set of rows; recorded in persrm_train.json and report.json."""

    max_length: int  # the option as given
    budget: int  # tokens the fitted part may take (max_length less the room kept for generation)
    rows: int = 0
    kept: int = 0  # fit as stored
    trimmed: int = 0  # fit once their writing samples were shortened
    dropped: int = 0  # too long even without writing samples (includes the next count)
    dropped_no_pairs_row: int = 0  # too long, and no pairs row re-renders the stored prompt

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        text = (f"--max-length {self.max_length}: {self.rows} rows, {self.kept} kept as they are, "
                f"{self.trimmed} with shortened writing samples, {self.dropped} dropped")  # fmt: skip
        if self.dropped_no_pairs_row:
            text += (f" ({self.dropped_no_pairs_row} had no pairs row that renders their prompt, so could "
                     "not be trimmed: was the dataset built with another judge template?)")  # fmt: skip
        return text

    def require_rows(self, what: str) -> None:
        """Stop (exit 2) when rows were given and none is left."""
        if self.rows and not self.kept + self.trimmed:
            raise UsageError(
                f"no {what} fits in --max-length {self.max_length} ({self.budget} tokens for the "
                f"{'sequence' if self.budget == self.max_length else 'prompt'}), not even with the writing samples "
                f"removed: all {self.rows} were dropped; pass a larger --max-length"
            )


# ----------------------------------------------------------------- trimming one context


class _Sample:
    """One writing sample and the character offset at which each of its tokens ends.

    Only the first ``window`` characters are tokenized: a sample can never keep more
    than the row's budget, and a huge one (megabytes with no full stop) must not be
    tokenized whole for a few hundred tokens.
    """

    def __init__(self, text: str, ends: list[int], *, whole: bool):
        self.text, self.ends, self.whole = text, ends, whole

    @property
    def tokens(self) -> int:
        return len(self.ends) if self.whole else len(self.ends) + 1  # "more than the window holds"

    def prefix(self, tokens: int) -> str:
        """The sample cut to about ``tokens`` tokens, at a sentence end or else a word end."""
        if tokens >= self.tokens:
            return self.text
        if tokens <= 0:
            return ""
        limit = self.ends[min(tokens, len(self.ends)) - 1]
        sentence = _last_end(SENTENCE_END_ANY_SCRIPT, self.text, limit)
        word = _last_end(WORD_END, self.text, limit)
        cut = sentence if sentence * 2 >= word else word
        return self.text[:cut].rstrip()


def _samples(context: Sequence[str], tokenizer, budget: int) -> list[_Sample]:
    """The samples of one row, tokenized in one batch (the fast tokenizer spreads it over the cores)."""
    window = max(budget, 1) * _CHARS_PER_TOKEN
    texts = [text[:window] for text in context]
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        ends = [[end for _, end in offsets] for offsets in encoded]
    else:  # slow tokenizers give no offsets: spread the tokens evenly; the row check corrects the error
        counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        ends = [[round(len(t) * (k + 1) / n) for k in range(n)] for t, n in zip(texts, counts, strict=True)]
    return [_Sample(full, e, whole=len(full) <= window) for full, e in zip(context, ends, strict=True)]


def _last_end(pattern: re.Pattern, text: str, limit: int) -> int:
    """End of the last match of ``pattern`` within ``text[:limit]`` (0 when none).

    The match must be followed by a space or the end of the text; ``text[:limit + 1]``
    lets a match that ends exactly at ``limit`` see the character after it.
    """
    end = 0
    for m in pattern.finditer(text, 0, min(len(text), limit + 1)):
        if m.end() <= limit:
            end = m.end()
    return end


def share_equally(sizes: Sequence[int], room: int) -> list[int]:
    """Token caps: every sample gets an equal share of ``room``; a short one passes on what it does not use."""
    caps = [0] * len(sizes)
    left = max(0, room)
    order = sorted(range(len(sizes)), key=lambda k: sizes[k])
    for done, k in enumerate(order):
        caps[k] = min(sizes[k], left // (len(sizes) - done))
        left -= caps[k]
    return caps


def fit_context(context: Sequence[str], length: Callable[[list[str]], int], budget: int,
                tokenizer) -> list[str] | None:  # fmt: skip
    """The context shortened until ``length(context) <= budget``, or None if even none is too long.

    ``length`` measures the whole row (in tokens) rendered with the given samples; the
    context is assumed not to fit as it is. Samples cut to nothing are left out.
    """
    samples = _samples(context, tokenizer, budget)
    room = budget - length([""] * len(samples))
    for _ in range(1 + _ROUNDS):
        caps = share_equally([s.tokens for s in samples], room)
        trimmed = [text for text in (s.prefix(c) for s, c in zip(samples, caps, strict=True)) if text]
        if not trimmed:
            break
        over = length(trimmed) - budget
        if over <= 0:
            return trimmed
        room -= over  # tokens merge across the cut and around the samples: take the excess off and retry
    return [] if length([]) <= budget else None


# ----------------------------------------------------------------- measuring


def _ids(encoded) -> list:
    return encoded["input_ids"] if hasattr(encoded, "keys") else encoded


def chat_lengths(tokenizer, conversations: Sequence[list[dict]], *, generation_prompt: bool) -> list[int]:
    """Token counts of conversations through the chat template, as TRL tokenizes them."""
    out: list[int] = []
    for start in range(0, len(conversations), _BATCH):
        batch = list(conversations[start : start + _BATCH])
        encoded = tokenizer.apply_chat_template(batch, tokenize=True, return_dict=True,
                                                add_generation_prompt=generation_prompt)  # fmt: skip
        out += [len(ids) for ids in _ids(encoded)]
    return out


# ----------------------------------------------------------------- sft and rft rows


def _key(prompt: Iterable[dict]) -> tuple:
    return tuple((m["role"], m["content"]) for m in prompt)


def _render(pair: dict, context: Sequence[str]) -> list[dict]:
    return judge_messages(context, pair["query"], pair["response_a"], pair["response_b"])


def fit_rows(rows: Sequence[dict], pairs: Callable[[], Iterable[dict]], tokenizer, *, max_length: int,
             budget: int | None = None, completion: str | None = None) -> tuple[list[dict], FitReport]:  # fmt: skip
    """Rows of the ``sft`` or ``rft`` config fitted to ``budget`` tokens (default ``max_length``).

    ``completion`` names the column whose messages follow the prompt in the measured
    sequence (``"completion"`` for SFT); without it the prompt is measured with the
    generation prompt, as GRPO and eval feed it. ``pairs`` loads the ``pairs`` rows of
    the same split; it is called only when some row is too long.
    """
    budget = max_length if budget is None else budget
    report = FitReport(max_length=max_length, budget=budget, rows=len(rows))

    def conversation(row: dict, prompt: list[dict]) -> list[dict]:
        return list(prompt) + list(row[completion]) if completion else list(prompt)

    def trim(row: dict, pair: dict) -> list[str] | None:
        def length(context: list[str]) -> int:
            conv = conversation(row, _render(pair, context))
            return chat_lengths(tokenizer, [conv], generation_prompt=not completion)[0]

        return fit_context(pair["context"], length, budget, tokenizer)

    lengths = chat_lengths(tokenizer, [conversation(r, r["prompt"]) for r in rows], generation_prompt=not completion)
    index: dict[tuple, dict] | None = None
    fitted: list[dict] = []
    for row, n in zip(rows, lengths, strict=True):
        if n <= budget:
            report.kept += 1
            fitted.append(row)
            continue
        if index is None:
            index = {_key(_render(p, p["context"])): p for p in pairs()}
        pair = index.get(_key(row["prompt"]))
        context = None if pair is None else trim(row, pair)
        if context is None:
            report.dropped += 1
            report.dropped_no_pairs_row += pair is None
            continue
        report.trimmed += 1
        fitted.append({**row, "prompt": _render(pair, context)})
    return fitted, report


# ----------------------------------------------------------------- eval items


def fit_pairs(items: Sequence[Any], tokenizer, *, max_length: int, budget: int) -> tuple[list[Any], FitReport]:
    """Eval items (both orders of each pair) fitted to ``budget`` prompt tokens.

    Both orders of a pair get the same writing samples, so order consistency compares
    like with like; a pair is kept, trimmed or dropped as a whole and counted once.
    Items are dataclasses with ``split``, ``pair_id``, ``context`` and ``messages()``.
    """
    groups: dict[tuple[str, str], list] = {}
    for item in items:
        groups.setdefault((item.split, item.pair_id), []).append(item)
    report = FitReport(max_length=max_length, budget=budget, rows=len(groups))

    def length(group: list, context: Sequence[str]) -> int:
        convs = [dataclasses.replace(i, context=tuple(context)).messages() for i in group]
        return max(chat_lengths(tokenizer, convs, generation_prompt=True))

    def trim(group: list) -> list[str] | None:
        return fit_context(group[0].context, lambda context: length(group, context), budget, tokenizer)

    fitted: list = []
    for group in groups.values():
        if length(group, group[0].context) <= budget:
            report.kept += 1
            fitted += group
            continue
        context = trim(group)
        if context is None:
            report.dropped += 1
            continue
        report.trimmed += 1
        fitted += [dataclasses.replace(i, context=tuple(context)) for i in group]
    return fitted, report

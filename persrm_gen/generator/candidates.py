"""Candidates: the chosen (positive) and rejected (negative) responses of every task.

Each strategy is a Job: either a request for the LLM client (rendered from a template)
or a deterministic text (real text, rule-based edits). Jobs run in two phases: the
positives first (only when they are generated), then the negatives, because minimal
edits and axis rewrites start from the chosen text, and every negative is brought to the
chosen text's form (length, ending, paragraphing: :mod:`persrm_gen.generator.form`), so
the budgets of negatives follow the chosen text that came back, not the author's target.

Which side of the chosen text's length a negative is cut to is decided once the replies
are in (:func:`length_sides`): the nearest sentence end favours whichever side the model
tends to stop on, and "pick the longer (or the shorter) response" must not pay.

``--positive mixed`` makes the positive a style-matched generation for a seeded share of
the targets (``--mixed-share``, default ``MIXED_SHARE``): a generated positive then faces
generated negatives only, so "the human text wins" (or loses) is no shortcut a reward model
can learn. Its mimic is a weaker one, shown one of the author's samples where the positive
saw them all; its other-author negative is a generation conditioned on another author's
samples of the genre (``Corpus.other_author_samples``), not that author's real text. A real
positive of a mixed build faces the other author's real text and edits of itself, no whole
machine-written text (:meth:`CandidateFactory.negatives_for`): no pair of a mixed build
sets the author's text against a whole machine-written one.

A generated positive that is unusable (copying its context: the row validator's ``leakage``
rule; far shorter than its target or degenerate: :func:`positive_problem`; unparseable),
checked by the pipeline, which re-samples it up to ``--max-attempts``, and still unusable
after them is replaced, under ``--positive mixed``, by the author's real text
(:meth:`CandidateFactory.fallback_positive`: the task becomes a real positive, with a real
positive's negatives); under ``--positive style-matched`` the task is dropped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from persrm_gen.generator.edits import AXIS_DIRECTIONS, axis_applies, axis_rewrite, minimal_edit
from persrm_gen.generator.form import (
    LAYOUT_AXIS,
    LONGER,
    SHORTER,
    Form,
    FormMismatch,
    cap_length,
    ends_clean,
    fit,
    fits,
    lay_out,
    n_words,
    sides,
    token_budget,
)
from persrm_gen.generator.parsing import CONTINUATION_STOPS, UnparseableOutput, clean_continuation, clean_rewrite
from persrm_gen.llm.types import LLMRequest, cache_group_for
from persrm_gen.records import AXES, MIXED_SHARE, Candidate, Task
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.textutil import rng_for, trim_to_sentence

RANDOM_STYLES = (
    "a breathless tabloid news story full of exclamations",
    "a terse, bullet-pointed corporate memo",
    "a casual text message to a friend, lowercase, with slang",
    "an ornate nineteenth-century novel with long sentences",
    "a children's picture book with very short, simple sentences",
    "a sarcastic online product review",
    "a dry legal contract clause",
    "an excited sports commentary",
)
WEAK_MIMIC_SAMPLES = 1  # the author samples shown to the mimic that faces a generated positive
# Negatives that are whole texts of their own, cut to a balanced side of the chosen text's
# length; edits and axis rewrites of the chosen text keep the nearest cut (their length is
# the chosen text's, give or take their edit).
LENGTH_SIDES = ("mimic", "randomize", "other-author")
# Generated negatives drawn --negative-draws times, the draw whose surface (the blind audit's
# response-only features: word and sentence length, type-token ratio, commas) is nearest the
# positive's kept: a base model's text is told from the author's by those, not by its style.
# other-author is drawn only when it is generated (facing a generated positive).
DRAWN = ("mimic", "randomize", "other-author")
# Negatives that are whole texts written by the model (not edits of the chosen text): under
# --positive mixed only a generated positive faces them (CandidateFactory.negatives_for).
MACHINE_WRITTEN = ("mimic", "randomize")
DRAW_ATTEMPT = 1000  # draw d is attempt d * DRAW_ATTEMPT: apart from the re-samples' 1, 2, ...


@dataclass(frozen=True)
class CandidateOptions:
    model: str
    positive: str = "mixed"  # "real" | "style-matched" | "mixed" (BuildOptions.positive)
    mixed_share: float = MIXED_SHARE  # with "mixed": the share of generated positives
    negatives: tuple[str, ...] = ("mimic", "randomize", "minimal-edit", "other-author", "axes")
    axes: tuple[str, ...] = AXES
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 320
    seed: int = 0
    negative_draws: int = 1  # draws of each DRAWN negative; the nearest the positive's surface is kept


@dataclass
class Job:
    task: Task
    strategy: str
    source: str  # "author" | "generated" | "edited" | "other-author" (another author's real text)
    request: LLMRequest | None = None
    text: str | None = None  # known without a model call
    parse: Callable[[str], str] = field(default=lambda s: s)
    form: Form | None = None  # the chosen text's form, which a negative is brought to
    chosen: str = ""  # a negative's chosen text (its surface is what the draws are held to)


class CandidateFactory:
    """Turns tasks into jobs for one backend mode: ``chat`` (instruction) or ``prompt`` (base)."""

    def __init__(self, renderer: PromptRenderer, opt: CandidateOptions, *, chat: bool, corpus):
        self.r = renderer
        self.opt = opt
        self.chat = chat
        self.corpus = corpus  # persrm_gen.pipeline.corpus.Corpus: other authors' texts without leakage

    # -- requests -------------------------------------------------------------------
    def _request(self, task: Task, template: str, stage: str, parse_opening: bool, form: Form,
                 **variables) -> tuple[LLMRequest, Callable[[str], str]]:
        """The request, with a word budget in the prompt and in ``max_tokens`` (from ``form``)."""
        seed = rng_for(self.opt.seed, "gen", task.id, stage).randrange(2**31)
        common = dict(
            model=self.opt.model, max_tokens=token_budget(form.words, self.opt.max_new_tokens),
            temperature=self.opt.temperature, top_p=self.opt.top_p,
            seed=seed, stage=stage, template_hashes=(self.r.template_hash(template),),
            cache_group=cache_group_for(task.author_id),
        )
        variables |= dict(word_budget=form.words, paragraphs=len(form.blocks) if form.separator == "\n\n" else 1)
        if self.chat:
            msgs = self.r.messages(template, **variables)
            opening = task.opening if parse_opening else ""
            return LLMRequest(messages=msgs, **common), lambda s: clean_rewrite(s, opening=opening)
        prompt = self.r.text(template, **variables)
        return LLMRequest(prompt=prompt, stop=CONTINUATION_STOPS, **common), _require_text(clean_continuation)

    def _gen_vars(self, task: Task) -> dict:
        return dict(context=list(task.context), query=task.query, opening=task.opening, genre=task.genre)

    # -- phase 1: positives -------------------------------------------------------
    def positive_strategy(self, task: Task) -> str:
        """``real`` or ``style-matched`` for this task (``mixed``: seeded, a share generated)."""
        if self.opt.positive == "mixed":
            # one draw per task: a task generated at one share is generated at any larger share
            generated = rng_for(self.opt.seed, "mixed-positive", task.id).random() < self.opt.mixed_share
            return "style-matched" if generated else "real"
        return self.opt.positive

    def positive_jobs(self, tasks: Sequence[Task]) -> list[Job]:
        jobs = []
        for t in tasks:
            if self.positive_strategy(t) == "real":
                jobs.append(self._real_positive(t))
            else:
                form = Form.of(t.target)
                req, parse = self._request(t, "matched", "positive", True, form, **self._gen_vars(t))
                jobs.append(Job(t, "style-matched", "generated", request=req, parse=_positive_parse(parse, form)))
        return jobs

    def fallback_positive(self, task: Task) -> Job | None:
        """The positive of a task whose generated one stayed unusable (copying its context,
        too short, degenerate, unparseable):
        under ``mixed`` the author's real text, as if the seeded draw had said ``real`` (a
        mixed build is real and generated positives alike); None under ``style-matched``,
        which promises generated positives only (the task is dropped)."""
        return self._real_positive(task) if self.opt.positive == "mixed" else None

    @staticmethod
    def _real_positive(task: Task) -> Job:
        return Job(task, "real", "author", text=clean_positive(task.target))

    # -- phase 2: negatives -------------------------------------------------------
    def negatives_for(self, chosen: Candidate) -> tuple[str, ...]:
        """The negative strategies that ``chosen`` faces. Under ``mixed`` a real positive faces
        no MACHINE_WRITTEN negative: the author's text against a whole generated text is the
        "human text wins" cue (the blind judge read 9 of 9 such randomize pairs by word length
        alone), so it faces human text and edits of itself, as a generated positive faces
        machine text only. ``real`` is PersRM-R1's setting and keeps every strategy."""
        if self.opt.positive == "mixed" and chosen.strategy == "real":
            return tuple(s for s in self.opt.negatives if s not in MACHINE_WRITTEN)
        return self.opt.negatives

    def negative_jobs(self, task: Task, chosen: Candidate) -> list[Job]:
        """The negatives of ``task``, each to be brought to ``chosen``'s form."""
        form = Form.of(chosen.text)
        jobs: list[Job] = []
        for strategy in self.negatives_for(chosen):
            if strategy == "mimic":
                jobs.append(self._mimic(task, chosen, form))
            elif strategy == "randomize":
                jobs.append(self._randomize(task, form))
            elif strategy == "minimal-edit":
                jobs.append(self._minimal_edit(task, chosen.text, form))
            elif strategy == "other-author":
                if (job := self._other_author(task, chosen, form)) is not None:
                    jobs.append(job)
            elif strategy == "axes":
                jobs.append(self._axis(task, chosen.text, form))
        return [replace(j, form=form, chosen=chosen.text) for j in jobs if j.request is not None or j.text is not None]

    def draws(self, job: Job) -> list[LLMRequest]:
        """The requests of ``job``'s draws, its own first (one, unless DRAWN with --negative-draws)."""
        if job.request is None:
            return []
        n = self.opt.negative_draws if job.strategy in DRAWN else 1
        return [job.request] + [
            replace(job.request, attempt=d * DRAW_ATTEMPT, seed=rng_for(job.request.seed, "draw", d).randrange(2**31))
            for d in range(1, n)
        ]

    def _mimic(self, task: Task, chosen: Candidate, form: Form) -> Job:
        variables = self._gen_vars(task)
        if chosen.strategy != "real":
            # A generated positive is its task's best mimic (base models: the very same prompt).
            # The mimic it faces sees WEAK_MIMIC_SAMPLES of the author's samples: machine text
            # on both sides, the positive with the better evidence of the style.
            variables["context"] = variables["context"][:WEAK_MIMIC_SAMPLES]
        req, parse = self._request(task, "mimic", "mimic", True, form, **variables)
        return Job(task, "mimic", "generated", request=req, parse=parse)

    def _other_author(self, task: Task, chosen: Candidate, form: Form) -> Job | None:
        """Another author of the genre: their real text facing a real positive; facing a
        generated one, a generation conditioned on their samples (the ``mimic`` prompt with
        another author's texts), since real text against a machine-written chosen is the
        "the human text loses" cue. None when the genre has no other author to draw on."""
        if chosen.strategy == "real":
            text = self.corpus.other_author_text(task, fits=lambda t: fits(t, form))
            return Job(task, "other-author", "other-author", text=text) if text is not None else None
        samples = self.corpus.other_author_samples(task)
        if not samples:
            return None
        variables = self._gen_vars(task) | {"context": samples}
        req, parse = self._request(task, "mimic", "other-author", True, form, **variables)
        return Job(task, "other-author", "generated", request=req, parse=parse)

    def _randomize(self, task: Task, form: Form) -> Job:
        rng = rng_for(self.opt.seed, "randomize", task.id)
        variables = self._gen_vars(task) | {
            "style": rng.choice(RANDOM_STYLES),
            # two short texts are enough to steer a base model off the author's style
            "other_samples": self.corpus.random_style_samples(task, min(2, len(task.context)), max_words=100),
        }
        req, parse = self._request(task, "randomize", "randomize", True, form, **variables)
        return Job(task, "randomize", "generated", request=req, parse=parse)

    def _minimal_edit(self, task: Task, chosen: str, form: Form) -> Job:
        rng = rng_for(self.opt.seed, "minimal-edit", task.id)
        if not self.chat:
            return Job(task, "minimal-edit", "edited", text=minimal_edit(chosen, rng))
        req, parse = self._request(task, "minimal_edit", "minimal-edit", False, form, text=chosen,
                                   n_words=rng.choice((3, 4)))
        return Job(task, "minimal-edit", "generated", request=req, parse=parse)

    def _axis(self, task: Task, chosen: str, form: Form) -> Job:
        """One axis rewrite: the seeded axis, or, when it does not apply to the chosen text
        (``edits.axis_applies``) or a rule-based rewrite along it changes nothing, the next
        of the others in a seeded order (none left: no axis negative)."""
        rng = rng_for(self.opt.seed, "axis", task.id)
        first = rng.choice(self.opt.axes)
        rest = [a for a in self.opt.axes if a != first]
        order = [a for a in [first] + rng_for(self.opt.seed, "axis-order", task.id).sample(rest, len(rest))
                 if axis_applies(chosen, a)]
        if not order:
            return Job(task, "axes", "edited")
        if not self.chat:
            for axis in order:
                # the first axis draws on as before the fallback existed: its rewrites are unchanged
                own = rng if axis == first else rng_for(self.opt.seed, "axis", task.id, axis)
                if (text := axis_rewrite(chosen, axis, own)) is not None:
                    return Job(task, f"axis-{axis}", "edited", text=text)
            return Job(task, "axes", "edited")
        axis = order[0]
        req, parse = self._request(task, "axis", f"axis-{axis}", False, form, text=chosen, axis=axis,
                                   direction=AXIS_DIRECTIONS[axis])
        return Job(task, f"axis-{axis}", "generated", request=req, parse=parse)


def clean_positive(text: str) -> str:
    """The chosen text ending a sentence where it can: a positive cut mid-sentence would face
    negatives that end cleanly (or the other way round). Kept as it is when its last sentence
    end would drop more than a third of it (a list, a title: the negatives follow it then)."""
    text = text.strip()
    if ends_clean(text):
        return text
    cut = trim_to_sentence(text)
    return cut if ends_clean(cut) and n_words(cut) >= 2 * n_words(text) / 3 else text


POSITIVE_MIN_SHARE = 0.5  # a generated positive holds at least this share of its target's words
DEGENERATE_RUN = 24  # characters of a whitespace-free run, mostly not letters, that no prose holds
_DEGENERATE = re.compile(r"\S{%d,}" % DEGENERATE_RUN)


def positive_problem(text: str, target: str) -> str | None:
    """Why a generated positive is not fit to be the chosen text, or None.

    ``too_short``: under POSITIVE_MIN_SHARE of the author's target (the embedded base model
    stopped after a sentence on half of the PEP targets): its pairs hold a sentence or two
    of style evidence, their style margins are noise, and the real text is there to use.
    ``degenerate``: a run of digits and punctuation (a version number looping on), which
    the model wrote in place of prose. The candidates stage re-samples either, then falls
    back as for a leak (``pipeline.candidates``)."""
    if n_words(text) < POSITIVE_MIN_SHARE * n_words(target):
        return "too_short"
    for run in _DEGENERATE.findall(text):
        if sum(c.isalpha() for c in run) < len(run) / 2:
            return "degenerate"
    return None


def _positive_parse(parse: Callable[[str], str], form: Form) -> Callable[[str], str]:
    """A generated positive: ending cleanly, laid out like the author's target and no longer
    than it allows (the negatives are then brought to its form)."""
    def wrapped(raw: str) -> str:
        text = cap_length(clean_positive(parse(raw)), form.words)
        return text if form.listed else lay_out(text, form)

    return wrapped


def _require_text(parse: Callable[[str], str]) -> Callable[[str], str]:
    def wrapped(raw: str) -> str:
        out = parse(raw)
        if len(out.split()) < 5:
            raise UnparseableOutput("generation too short")
        return out

    return wrapped


def resampled(request: LLMRequest, attempt: int) -> LLMRequest:
    """The same request as a new sample: a new attempt index and seed, so a new cache key."""
    return replace(request, attempt=attempt, seed=rng_for(request.seed, "resample", attempt).randrange(2**31))


@dataclass(frozen=True)
class Unusable:
    """Why a job gave no candidate: ``unusable`` (unparseable), ``length_mismatch``, or, for
    a generated positive (``pipeline.candidates``), ``leakage`` (copying its context) or a
    :func:`positive_problem` (``too_short``, ``degenerate``)."""

    reason: str


def length_sides(jobs: Sequence[Job], raws: Sequence[str | None], seed: int,
                 parse: Callable[[Job, str | None], str | Unusable] | None = None) -> list[str | None]:
    """The side of the chosen text's length (LONGER, SHORTER, None: nearest) each job's
    negative is cut to, once its reply ``raws[i]`` is in.

    Per author and strategy (so a shard of authors decides alone, whatever the shard size):
    a negative that can reach one side only takes it; the others are dealt, in a seeded
    order, to whichever side has fewer so far (a seeded coin on a tie). So "the longer
    response wins" scores about one half per strategy, whichever side the model stops on.
    ``parse``: :func:`parse_reply` or a memo of it (:class:`ReplyParses`)."""
    parse = parse or parse_reply
    out: list[str | None] = [None] * len(jobs)
    groups: dict[tuple[str, str], list[tuple[str, int, frozenset]]] = defaultdict(list)
    for i, (job, raw) in enumerate(zip(jobs, raws)):
        if job.strategy in LENGTH_SIDES and job.form is not None and isinstance(text := parse(job, raw), str):
            groups[(job.task.author_id, job.strategy)].append((job.task.id, i, sides(text, job.form)))
    for (author, strategy), members in sorted(groups.items()):
        count = {LONGER: 0, SHORTER: 0}
        free = []
        for _, i, reach in sorted(members):
            if len(reach) == 2:
                free.append(i)
            elif reach:
                (out[i],) = reach
                count[out[i]] += 1
        rng = rng_for(seed, "length-side", author, strategy)
        rng.shuffle(free)
        for i in free:
            tie = count[LONGER] == count[SHORTER]
            out[i] = (LONGER if rng.random() < 0.5 else SHORTER) if tie else min(count, key=count.get)
            count[out[i]] += 1
    return out


def nearest_draw(job: Job, raws: Sequence[str | None], distance: Callable[[str, str], float],
                 parse: Callable[[Job, str | None], str | Unusable] | None = None) -> int:
    """The index of the draw (``raws``) whose usable candidate is nearest ``job.chosen`` by
    ``distance`` (the blind audit's surface distance); the first on a tie, 0 when none is usable.
    ``parse``: :func:`parse_reply` or a memo of it (:class:`ReplyParses`)."""
    parse = parse or parse_reply
    best, best_d = 0, None
    for i, raw in enumerate(raws):
        cand = cut(job, parse(job, raw)) if raw is not None else Unusable("unusable")
        if isinstance(cand, Candidate):
            d = distance(job.chosen, cand.text)
            if best_d is None or d < best_d:
                best, best_d = i, d
    return best


def parse_reply(job: Job, raw: str | None) -> str | Unusable:
    """The side-free half of :func:`to_candidate`: the job's text before it is brought to
    the chosen text's form (its reply parsed, or its known text), or why there is none."""
    text = job.text
    if job.request is not None:
        try:
            text = job.parse(raw or "")
        except UnparseableOutput:
            return Unusable("unusable")
    return text if text else Unusable("unusable")


def cut(job: Job, parsed: str | Unusable, side: str | None = None) -> Candidate | Unusable:
    """The other half: :func:`parse_reply`'s text brought to the chosen text's form and cut
    to ``side`` of its length (:func:`length_sides`; None: the nearest sentence end)."""
    if isinstance(parsed, Unusable):
        return parsed
    text = parsed
    if job.form is not None:
        try:
            text = fit(text, job.form, layout=job.strategy != LAYOUT_AXIS, side=side)
        except FormMismatch:
            return Unusable(FormMismatch.reason)
        except UnparseableOutput:
            return Unusable("unusable")
        if not text:
            return Unusable("unusable")
    return Candidate(task_id=job.task.id, text=text, source=job.source, strategy=job.strategy)


def to_candidate(job: Job, raw: str | None, side: str | None = None) -> Candidate | Unusable:
    """The job's candidate (a negative in the chosen text's form, cut to ``side`` of its
    length: :func:`length_sides`), or why there is none."""
    return cut(job, parse_reply(job, raw), side)


class ReplyParses:
    """:func:`parse_reply` memoised per (job, reply): the candidates stage asks about one reply
    several times (is it usable, which draw is nearest, which length side, the final cut),
    and a reply is parsed once. Lives as long as the stage's jobs (keyed by their id)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, str | None], str | Unusable] = {}

    def __call__(self, job: Job, raw: str | None) -> str | Unusable:
        key = (id(job), raw)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = parse_reply(job, raw)
        return found

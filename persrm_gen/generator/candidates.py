"""Candidates: the chosen (positive) and rejected (negative) responses of every task.

Each strategy is a Job: either a request for the LLM client (rendered from a template)
or a deterministic text (real text, rule-based edits). Jobs run in two phases: the
positives first (only when they are generated), then the negatives, because minimal
edits and axis rewrites start from the chosen text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from persrm_gen.generator.edits import AXIS_DIRECTIONS, axis_rewrite, minimal_edit
from persrm_gen.generator.parsing import CONTINUATION_STOPS, UnparseableOutput, clean_continuation, clean_rewrite
from persrm_gen.llm.types import LLMRequest, cache_group_for
from persrm_gen.records import AXES, Candidate, Task
from persrm_gen.prompts.renderer import PromptRenderer
from persrm_gen.textutil import rng_for

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


@dataclass(frozen=True)
class CandidateOptions:
    model: str
    positive: str = "real"  # "real" | "style-matched"
    negatives: tuple[str, ...] = ("mimic", "randomize", "minimal-edit", "other-author", "axes")
    axes: tuple[str, ...] = AXES
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 160
    seed: int = 0


@dataclass
class Job:
    task: Task
    strategy: str
    source: str  # "author" | "generated" | "edited" | "other-author"
    request: LLMRequest | None = None
    text: str | None = None  # known without a model call
    parse: Callable[[str], str] = field(default=lambda s: s)


class CandidateFactory:
    """Turns tasks into jobs for one backend mode: ``chat`` (instruction) or ``prompt`` (base)."""

    def __init__(self, renderer: PromptRenderer, opt: CandidateOptions, *, chat: bool, corpus):
        self.r = renderer
        self.opt = opt
        self.chat = chat
        self.corpus = corpus  # persrm_gen.pipeline.corpus.Corpus: other authors' texts without leakage

    # -- requests -------------------------------------------------------------------
    def _request(self, task: Task, template: str, stage: str, parse_opening: bool, **variables) -> tuple[LLMRequest, Callable[[str], str]]:
        budget = max(48, min(self.opt.max_new_tokens, int(len(task.target.split()) * 1.4 * 1.3)))
        seed = rng_for(self.opt.seed, "gen", task.id, stage).randrange(2**31)
        common = dict(
            model=self.opt.model, max_tokens=budget, temperature=self.opt.temperature, top_p=self.opt.top_p,
            seed=seed, stage=stage, template_hashes=(self.r.template_hash(template),),
            cache_group=cache_group_for(task.author_id),
        )
        if self.chat:
            msgs = self.r.messages(template, **variables)
            opening = task.opening if parse_opening else ""
            return LLMRequest(messages=msgs, **common), lambda s: clean_rewrite(s, opening=opening)
        prompt = self.r.text(template, **variables)
        return LLMRequest(prompt=prompt, stop=CONTINUATION_STOPS, **common), _require_text(clean_continuation)

    def _gen_vars(self, task: Task) -> dict:
        return dict(context=list(task.context), query=task.query, opening=task.opening, genre=task.genre)

    # -- phase 1: positives -------------------------------------------------------
    def positive_jobs(self, tasks: Sequence[Task]) -> list[Job]:
        jobs = []
        for t in tasks:
            if self.opt.positive == "real":
                jobs.append(Job(t, "real", "author", text=t.target))
            else:
                req, parse = self._request(t, "matched", "positive", True, **self._gen_vars(t))
                jobs.append(Job(t, "style-matched", "generated", request=req, parse=parse))
        return jobs

    # -- phase 2: negatives -------------------------------------------------------
    def negative_jobs(self, task: Task, chosen: str) -> list[Job]:
        jobs: list[Job] = []
        for strategy in self.opt.negatives:
            if strategy == "mimic" and self.opt.positive == "real":
                req, parse = self._request(task, "mimic", "mimic", True, **self._gen_vars(task))
                jobs.append(Job(task, "mimic", "generated", request=req, parse=parse))
            elif strategy == "randomize":
                jobs.append(self._randomize(task))
            elif strategy == "minimal-edit":
                jobs.append(self._minimal_edit(task, chosen))
            elif strategy == "other-author":
                text = self.corpus.other_author_text(task)
                if text is not None:
                    jobs.append(Job(task, "other-author", "other-author", text=text))
            elif strategy == "axes":
                jobs.append(self._axis(task, chosen))
        return [j for j in jobs if j.request is not None or j.text is not None]

    def _randomize(self, task: Task) -> Job:
        rng = rng_for(self.opt.seed, "randomize", task.id)
        variables = self._gen_vars(task) | {
            "style": rng.choice(RANDOM_STYLES),
            # two short texts are enough to steer a base model off the author's style
            "other_samples": self.corpus.random_style_samples(task, min(2, len(task.context)), max_words=100),
        }
        req, parse = self._request(task, "randomize", "randomize", True, **variables)
        return Job(task, "randomize", "generated", request=req, parse=parse)

    def _minimal_edit(self, task: Task, chosen: str) -> Job:
        rng = rng_for(self.opt.seed, "minimal-edit", task.id)
        if not self.chat:
            return Job(task, "minimal-edit", "edited", text=minimal_edit(chosen, rng))
        req, parse = self._request(task, "minimal_edit", "minimal-edit", False, text=chosen, n_words=rng.choice((3, 4)))
        return Job(task, "minimal-edit", "generated", request=req, parse=parse)

    def _axis(self, task: Task, chosen: str) -> Job:
        rng = rng_for(self.opt.seed, "axis", task.id)
        axis = rng.choice(self.opt.axes)
        if not self.chat:
            return Job(task, f"axis-{axis}", "edited", text=axis_rewrite(chosen, axis, rng))
        req, parse = self._request(task, "axis", f"axis-{axis}", False, text=chosen, axis=axis, direction=AXIS_DIRECTIONS[axis])
        return Job(task, f"axis-{axis}", "generated", request=req, parse=parse)


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


def to_candidate(job: Job, raw: str | None) -> Candidate | None:
    """The job's candidate, or None when its output could not be used."""
    text = job.text
    if job.request is not None:
        try:
            text = job.parse(raw or "")
        except UnparseableOutput:
            return None
    if not text:
        return None
    return Candidate(task_id=job.task.id, text=text, source=job.source, strategy=job.strategy)

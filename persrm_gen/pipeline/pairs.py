"""The pairs and labels stages: one pair per negative (the task's positive against it, with
its style margin), then A/B placement over the pairs that survive the screen.

:func:`make_pair` is the one place a :class:`Pair` is assembled; ``--dry-run`` and the
start-up template check build their stand-in pairs with it too.
"""

from __future__ import annotations

from persrm_gen.answer import make_trace
from persrm_gen.dataset.validators import REAL_SOURCES
from persrm_gen.generator.judgments import assign_labels
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.records import Candidate, Pair, Task
from persrm_gen.style import AuthorProfile, style_margin
from persrm_gen.textutil import stable_id


def make_pair(task: Task, chosen: Candidate, rejected: Candidate, *, margin: float, backend: str = "",
              model: str = "") -> Pair:
    """The pair, chosen as response A with a provisional trace: placement comes later."""
    return Pair(
        id=stable_id(rejected.task_id, rejected.strategy), author_id=task.author_id, genre=task.genre,
        query=task.query, context=list(task.context), chosen=chosen.text, rejected=rejected.text,
        chosen_source=chosen.source, rejected_source=rejected.source, response_a=chosen.text,
        response_b=rejected.text, label="A", rationale=make_trace("provisional", "A"), style_margin=margin,
        split=task.split, strategy=rejected.strategy, chosen_strategy=chosen.strategy,
        real_side=real_side(chosen.source, rejected.source), sample_id=task.sample_id, backend=backend, model=model,
    )


def real_side(chosen_source: str, rejected_source: str) -> str:
    """Which response is real text (one of REAL_SIDES); an edit of real text is not real."""
    chosen, rejected = chosen_source in REAL_SOURCES, rejected_source in REAL_SOURCES
    return {(True, True): "both", (True, False): "chosen", (False, True): "rejected"}.get((chosen, rejected), "neither")


def make_pairs(tasks: list[Task], chosen: dict[str, Candidate], negatives: list[Candidate], opts: BuildOptions,
               model: str) -> list[Pair]:
    """A pair per negative, with its measured style margin."""
    by_id = {t.id: t for t in tasks}
    pairs: list[Pair] = []
    for neg in negatives:
        task, pos = by_id[neg.task_id], chosen[neg.task_id]
        profile = AuthorProfile.from_context(task.context)  # cached per context
        margin = round(float(style_margin(pos.text, neg.text, profile)), 6)
        pairs.append(make_pair(task, pos, neg, margin=margin, backend=opts.backend, model=model))
    return pairs


def place_labels(pairs: list[Pair], seed: int) -> None:
    """A/B placement, shuffled with the seed and balanced per author over the kept pairs."""
    labels = assign_labels([(p.author_id, p.id) for p in pairs], seed)
    for p in pairs:
        p.label = labels[p.id]
        p.response_a, p.response_b = (p.chosen, p.rejected) if p.label == "A" else (p.rejected, p.chosen)

"""The validate stage, split so that every check runs once per row.

The content checks (format of the texts, identical pairs, copies, leakage, margins, exact
and near duplicates among one author's pairs: :func:`persrm_gen.dataset.validators.validate_pairs`)
run in :func:`screen`, before any trace is paid for; A/B placement and traces change none of what
they look at. After the traces are written only what they did change is left to check
(:func:`check_traces`): the trace's format and that its verdict, the label and the A/B
order agree. A row rejected there gets the reason ``validate_pairs`` would give it, since
those two are its first checks; rows kept by the screen are not duplicates of each other,
so no duplicate check could reject one of them again.
"""

from __future__ import annotations

from collections import Counter

from persrm_gen.answer import format_ok
from persrm_gen.dataset.writer import pair_row
from persrm_gen.dataset.validators import ValidatorConfig, label_problem, validate_pairs
from persrm_gen.progress import stage
from persrm_gen.records import Pair


def screen(pairs: list[Pair], progress, config: ValidatorConfig | None = None) -> tuple[list[Pair], Counter]:
    """(pairs kept, rejections per reason), from every content check on the provisional rows
    (the blind-shortcut check too: it reads chosen/rejected only, never the A/B placement).

    Each author's pairs are screened on their own, so what is kept does not depend on which
    authors share a shard; duplicates between authors are found once all shards are done
    (``dataset.crosscheck``)."""
    by_author: dict[str, list[Pair]] = {}
    for p in pairs:
        by_author.setdefault(p.author_id, []).append(p)
    kept_ids: set[str] = set()
    counts: Counter = Counter()
    with stage(progress, "screen candidates", len(by_author)) as tick:
        for group in by_author.values():
            report = validate_pairs([pair_row(p) for p in group], config or ValidatorConfig())
            kept_ids.update(r["id"] for r in report.kept)
            counts.update(report.counts())
            tick()
    return [p for p in pairs if p.id in kept_ids], counts


def check_traces(pairs: list[Pair], progress) -> tuple[list[dict], Counter]:
    """(rows kept, rejections per reason) once labels and traces are final."""
    kept: list[dict] = []
    rejected: Counter = Counter()
    with stage(progress, "validate", 1) as tick:
        for p in pairs:
            row = pair_row(p)
            if not format_ok(str(row.get("rationale") or "")):
                rejected["bad_format"] += 1
            elif label_problem(row) is not None:
                rejected["label_inconsistent"] += 1
            else:
                kept.append(row)
        tick()
    return kept, rejected

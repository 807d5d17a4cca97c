"""Other authors' real text, chosen so that no test text reaches training.

Train-pool samples (see splits.py) are the only texts shared across split groups;
samples of test authors and of a held-out genre are only used inside their own split.
"""

from __future__ import annotations

from persrm_gen.records import Task
from persrm_gen.splits import SplitPlan
from persrm_gen.tasks import TaskOptions, _cap_words, split_opening
from persrm_gen.textutil import rng_for

_TRAIN_GROUP = ("train", "test_seen_authors")


class Corpus:
    def __init__(self, authors, plan: SplitPlan, task_opt: TaskOptions, seed: int):
        self.seed = seed
        self.opt = task_opt
        train_ids = {sid for pool in plan.train_pool.values() for sid in pool}
        # (author_id, genre, text, group) for every sample usable as other-author text
        self._rows: list[tuple[str, str, str, str]] = []
        for a in authors:
            for s in a.samples:
                group = "train" if s.id in train_ids else plan.split_of[s.id]
                if group == "test_seen_authors":
                    continue  # a held-out target of a seen author: never reused
                self._rows.append((a.author_id, s.genre, s.text, group))

    def _candidates(self, task: Task, same_genre: bool) -> list[tuple[str, str, str, str]]:
        group = "train" if task.split in _TRAIN_GROUP else task.split
        rows = [r for r in self._rows if r[0] != task.author_id and r[3] in (group, "train")]
        if task.split in _TRAIN_GROUP:
            rows = [r for r in rows if r[3] == "train"]
        if same_genre:
            rows = [r for r in rows if r[1] == task.genre]
        # prefer texts of the task's own split group (unseen authors vs unseen authors)
        own = [r for r in rows if r[3] == group]
        return own or rows

    def other_author_text(self, task: Task) -> str | None:
        """A continuation written by another author of the same genre, cut like the target."""
        pool = [r[2] for r in self._candidates(task, same_genre=True)]
        rng = rng_for(self.seed, "other-author", task.id)
        for text in rng.sample(pool, len(pool)):
            if task.query_is_prompt:
                return _cap_words(text, self.opt.target_max_words)
            cut = split_opening(text, self.opt)
            if cut is not None:
                return cut[1]
        return None

    def random_style_samples(self, task: Task, k: int, max_words: int | None = None) -> list[str]:
        """Texts by other writers, preferably of another genre, to steer a base model away."""
        rows = self._candidates(task, same_genre=False)
        pool = [r[2] for r in rows if r[1] != task.genre] or [r[2] for r in rows]
        rng = rng_for(self.seed, "random-style", task.id)
        chosen = rng.sample(pool, min(k, len(pool))) if pool else []
        cap = max_words or self.opt.context_max_words
        return [_cap_words(t, cap) or t for t in chosen]

"""Checks across shards: the ones a shard cannot make alone, run once over every shard.

A build screens each author's pairs on their own (``pipeline.validate.screen``), so what is
left to check needs rows of several authors: a generated candidate repeating (exactly or
nearly) one of another author's pairs, and authors, genres or target texts shared between
splits. Rows are added one parquet file at a time and only compact state is kept per row
(ids, hashes, and per generated text its LSH band keys, ``dataset.minhash``), so a build of
millions of pairs checks them in memory that a laptop has. Near-duplicate candidates are
confirmed with the exact Jaccard of their shingles, read back from the files.

Rows are judged in one canonical order, (split in contract order, author_id, id): train
first, so a test pair repeating a train pair is the one rejected, and the same rows are
rejected whatever the shards were or in which order the files were added.
"""

from __future__ import annotations

import hashlib
from sys import intern
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from persrm_gen.dataset.minhash import MinHasher, band_keys, candidate_pairs_from_keys, jaccard, lsh_params
from persrm_gen.dataset.schema import SPLITS
from persrm_gen.dataset.validators import (
    SeenTexts,
    ValidatorConfig,
    edit_families,
    is_generated,
    positive_task,
    text_hash,
)

_COLUMNS = ["id", "author_id", "genre", "split", "label", "chosen", "rejected", "chosen_source",
            "rejected_source", "context", "sample_id", "strategy"]


def _raw_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class _Texts:
    """Generated texts: owner row, where the text is (file, row, column), its edit family
    (``validators.edit_families``), LSH band keys."""

    owner: list[int] = field(default_factory=list)
    family: list[tuple | None] = field(default_factory=list)
    where: list[tuple[int, int, str]] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    valid: list[np.ndarray] = field(default_factory=list)


class CrossShardCheck:
    def __init__(self, config: ValidatorConfig | None = None):
        self.config = config or ValidatorConfig()
        c = self.config
        self.hasher = MinHasher(c.num_perm, c.shingle_size, c.seed)
        self.bands, self.rows = lsh_params(c.near_dup_threshold, c.num_perm)
        self.files: list[Path] = []
        self.order_key: list[tuple[int, str, str]] = []  # (split rank, author_id, id)
        self.ids: list[str] = []
        self.author: list[str] = []
        self.genre: list[str] = []
        self.split: list[str] = []
        self.label: list[str] = []
        self.pair_key: list[tuple[str, str]] = []
        self.gen_hashes: list[tuple[str, ...]] = []
        self.positive_task: list[tuple[str, str] | None] = []  # validators.positive_task
        self.target: list[bytes | None] = []  # a test_seen row's real target text, hashed
        self.train_texts: set[bytes] = set()  # train targets and contexts, hashed
        self.texts = _Texts()

    def __len__(self) -> int:
        return len(self.ids)

    def add_file(self, path: Path) -> None:
        """Take in the rows of one ``pairs`` parquet file."""
        import pyarrow.parquet as pq  # only when a folder is read

        file_no = len(self.files)
        self.files.append(Path(path))
        rows = pq.read_table(path, columns=_COLUMNS).to_pylist()
        texts: list[str] = []
        for r_no, row in enumerate(rows):
            i = len(self.ids)
            split = row["split"]
            rank = SPLITS.index(split) if split in SPLITS else len(SPLITS)
            # a few distinct authors, genres, splits, labels repeated over every row: one string each
            author, split = intern(row["author_id"]), intern(split)
            self.order_key.append((rank, author, row["id"]))
            self.ids.append(row["id"])
            self.author.append(author)
            self.genre.append(intern(row["genre"]))
            self.split.append(split)
            self.label.append(intern(row["label"]))
            key = (text_hash(row["chosen"] or ""), text_hash(row["rejected"] or ""))
            self.pair_key.append(key)
            # as generated_texts(row), reusing the hashes just made: the same string objects
            self.gen_hashes.append(tuple(h for h, col in zip(key, ("chosen", "rejected"))
                                         if is_generated(row[f"{col}_source"])))
            self.positive_task.append(positive_task(row))
            real_target = split == "test_seen_authors" and row["chosen_source"] == "author"
            self.target.append(_raw_hash(row["chosen"]) if real_target else None)
            if split == "train":
                self.train_texts.add(_raw_hash(row["chosen"]))
                self.train_texts.update(_raw_hash(c) for c in row["context"] or ())
            self.texts.family += edit_families(row, self.config)
            for col in ("chosen", "rejected"):
                if is_generated(row[f"{col}_source"]):
                    self.texts.owner.append(i)
                    self.texts.where.append((file_no, r_no, col))
                    texts.append(row[col] or "")
        if texts:
            sig, _h, offsets = self.hasher.signatures(texts)
            self.texts.keys.append(band_keys(sig, self.bands, self.rows))
            self.texts.valid.append(offsets[1:] > offsets[:-1])

    # ------------------------------------------------------------ verdicts

    def rejected(self) -> dict[str, tuple[str, str]]:
        """pair id -> (reason, detail) for every row the checks reject (reasons as validators)."""
        order = sorted(range(len(self.ids)), key=self.order_key.__getitem__)
        out: dict[int, tuple[str, str]] = {}
        self._split_leaks(order, out)
        self._exact(order, out)
        self._near(order, out)
        return {self.ids[i]: out[i] for i in sorted(out, key=self.order_key.__getitem__)}

    def _split_leaks(self, order: list[int], out: dict) -> None:
        train = [i for i in order if self.split[i] == "train"]
        train_authors = {self.author[i] for i in train}
        train_genres = {self.genre[i] for i in train}
        for i in order:
            split = self.split[i]
            if split == "test_unseen_authors" and self.author[i] in train_authors:
                out[i] = ("leakage", f"author {self.author[i]} is also in train")
            elif split == "test_unseen_genre" and self.genre[i] in train_genres:
                out[i] = ("leakage", f"genre {self.genre[i]!r} is also in train")
            elif self.target[i] is not None and self.target[i] in self.train_texts:
                out[i] = ("leakage", "its test_seen_authors target text also appears in train")

    def _exact(self, order: list[int], out: dict) -> None:
        """As ``validators.exact_duplicates``, in the canonical order."""
        seen = SeenTexts()
        labels: dict[tuple[str, str], set] = defaultdict(set)
        for i in order:
            if i in out:
                continue
            key, label, task, hashes = self.pair_key[i], self.label[i], self.positive_task[i], self.gen_hashes[i]
            hits = seen.hits(hashes, task)
            mirror = self.config.allow_both_orders and all(self.pair_key[j] == key for j in hits)
            if hits and not (mirror and label not in labels[key]):
                out[i] = ("exact_duplicate", f"a generated candidate repeats one of pair {self.ids[hits[0]]}")
                continue
            seen.claim(i, hashes, task)
            labels[key].add(label)

    def _near(self, order: list[int], out: dict) -> None:
        """As ``validators.near_duplicates``, in the canonical order, among rows still kept."""
        if not self.texts.keys:
            return
        keys, valid = np.concatenate(self.texts.keys), np.concatenate(self.texts.valid)
        owner = np.asarray(self.texts.owner)
        valid &= np.array([o not in out for o in self.texts.owner], dtype=bool)
        pos = np.empty(len(self.ids), dtype=np.int64)
        pos[order] = np.arange(len(order))
        proposed = []
        for a, b in candidate_pairs_from_keys(keys, valid).tolist():
            ra, rb = int(owner[a]), int(owner[b])
            if pos[ra] > pos[rb]:
                ra, rb = rb, ra
            mirror = self.config.allow_both_orders and self.pair_key[ra] == self.pair_key[rb] and self.label[ra] != self.label[rb]
            if ra != rb and not mirror and not self._same_family(a, b):
                proposed.append((a, b, ra, rb))
        if not proposed:
            return
        shingles = self._shingles({t for a, b, _, _ in proposed for t in (a, b)})
        neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for a, b, ra, rb in proposed:
            jac = jaccard(shingles[a], shingles[b])
            if jac >= self.config.near_dup_threshold:
                neighbours[rb].append((ra, jac))
        for i in sorted(neighbours, key=pos.__getitem__):
            earlier = [(j, jac) for j, jac in neighbours[i] if j not in out]
            if earlier:
                j, jac = max(earlier, key=lambda x: (x[1], -pos[x[0]]))
                out[i] = ("near_duplicate", f"a generated candidate has Jaccard {jac:.2f} with one of pair {self.ids[j]}")

    def _same_family(self, a: int, b: int) -> bool:
        """Texts ``a`` and ``b`` are one task's chosen or rewrites of it (validators.edit_families)."""
        fa = self.texts.family[a]
        return fa is not None and fa == self.texts.family[b]

    def _shingles(self, wanted: set[int]) -> dict[int, np.ndarray]:
        """Shingle hashes of the generated texts ``wanted``, read back one file at a time."""
        import pyarrow.parquet as pq  # only when a folder is read

        by_file: dict[int, list[int]] = defaultdict(list)
        for t in wanted:
            by_file[self.texts.where[t][0]].append(t)
        out: dict[int, np.ndarray] = {}
        for file_no, ts in sorted(by_file.items()):
            table = pq.read_table(self.files[file_no], columns=["chosen", "rejected"])
            cols = {c: table.column(c) for c in ("chosen", "rejected")}
            texts = [cols[self.texts.where[t][2]][self.texts.where[t][1]].as_py() or "" for t in ts]
            h, offsets = self.hasher.shingles(texts)
            for k, t in enumerate(ts):
                out[t] = h[offsets[k] : offsets[k + 1]]
        return out

"""Checks across shards: the ones a shard cannot make alone, run once over every shard.

A build screens each author's pairs on their own (``pipeline.validate.screen``), so what is
left to check needs rows of several authors: a generated candidate repeating (exactly or
nearly) one of another author's pairs, and authors, genres or target texts shared between
splits. Rows are added one parquet file at a time and only compact state is kept per row,
as numpy columns, never a Python object per row: the id as bytes, integer codes for the
author, genre and label, split rank, the 16-byte hashes of chosen and rejected, of the
positive's task and of the edit family (``validators.edit_families``), and per generated
text its row and column (file and row there follow) and the low 32 bits of its LSH band
keys (``dataset.minhash``), per file: ~0.24 KB per pair (~0.35 KB at the verdicts' peak) where
lists of ids, tuples and hex strings took ~0.65 KB (~0.95 KB), so a build of millions of
pairs checks them in memory that a laptop has.

Near-duplicate candidates are the full keys' exactly: two texts whose fingerprints agree in
a band, and that may be near duplicates at all (two rows, neither one edit family nor the
two orders of a pair), are read back, as a candidate is anyway for the exact Jaccard of its
shingles, and their full keys decide. Fingerprints agreeing by chance cost the reading of
about ``bands * texts**2 / 2**33`` such pairs (~2 on a 10,000-sample build, ~190 at
100,000 samples, ~20,000 at 1,000,000: a second read of most files' texts there). The
exact-duplicate check is sequential (a rejected row claims nothing), but only rows sharing a
generated hash or a whole pair with another row can take part in it: hashes and pairs are
numbered by one sort, only those rows go through the loop, and its memory is arrays over
the numbers. Tasks and families are compared by a 16-byte hash of their fields, as texts
are (``validators.text_hash``).

Rows are judged in one canonical order, (split in contract order, author_id, id): train
first, so a test pair repeating a train pair is the one rejected, and the same rows are
rejected whatever the shards were or in which order the files were added.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from persrm_gen.dataset.minhash import (
    MinHasher,
    band_buckets,
    band_keys,
    candidate_pairs_of_bands,
    jaccard,
    lsh_params,
)
from persrm_gen.dataset.schema import SPLITS
from persrm_gen.dataset.validators import (
    ValidatorConfig,
    edit_families,
    is_generated,
    positive_task,
    text_digest,
)

_COLUMNS = ["id", "author_id", "genre", "split", "label", "chosen", "rejected", "chosen_source",
            "rejected_source", "context", "sample_id", "strategy"]
_TRAIN = SPLITS.index("train")
_SIDES = ("chosen", "rejected")
_NO_HASH = bytes(16)
_BLOCK = 4096


def _raw_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _fields_hash(fields) -> bytes:
    """A task's or an edit family's fields as 16 bytes: equal fields, equal bytes."""
    return hashlib.blake2b(json.dumps(list(fields)).encode(), digest_size=16).digest()


def _digests(values: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), 16)


class _Columns:
    """Numpy chunks appended per file, concatenated once when the verdicts are made."""

    def __init__(self, *names: str):
        self.chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}

    def add(self, **arrays: np.ndarray) -> None:
        for name, a in arrays.items():
            self.chunks[name].append(a)

    def join(self) -> dict[str, np.ndarray]:
        """Each column as one array (kept as the column's only chunk: the others are released
        column by column, so joining holds one column twice, never the whole table)."""
        out = {}
        for name, chunks in self.chunks.items():
            if chunks:
                out[name] = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
                chunks[:] = [out[name]]
        return out


class _Codes(dict):
    """value -> a small integer, in first-seen order (authors, genres, labels)."""

    def code(self, value) -> int:
        return self.setdefault(value, len(self))


class CrossShardCheck:
    _print_mask = np.uint64(2**32 - 1)  # a band key's bits kept per text (fewer: tests force collisions)

    def __init__(self, config: ValidatorConfig | None = None):
        self.config = config or ValidatorConfig()
        c = self.config
        self.hasher = MinHasher(c.num_perm, c.shingle_size, c.seed)
        self.bands, self.rows = lsh_params(c.near_dup_threshold, c.num_perm)
        self.files: list[Path] = []
        self.authors, self.genres, self.labels = _Codes(), _Codes(), _Codes()
        self.n = 0
        # per row: id (utf-8, numpy bytes), split rank, author/genre/label codes, chosen and
        # rejected hashes (uint8 [n, 32]), generated sides (bit 0 chosen, bit 1 rejected),
        # positive_task hash and whether there is one
        self.row_cols = _Columns("id", "rank", "author", "genre", "label", "pair", "gen", "task", "has_task")
        self.target_cols = _Columns("row", "hash")  # a test_seen row's real target text, hashed
        self.train_cols = _Columns("hash")  # train targets and contexts, hashed (unique per file)
        # per generated text: owner row, side, edit family hash (and whether it has one),
        # whether it has any shingle; its file and row there follow from the owner (rows are
        # added file by file), with each file's first row
        self.text_cols = _Columns("owner", "side", "family", "has_family", "valid")
        self.first_rows: list[int] = []
        # and its LSH band keys' fingerprints (their low 32 bits, uint32 [texts, bands]) per
        # file, never joined: the candidates are found one band at a time (``_near``)
        self.keys: list[np.ndarray] = []
        self.r: dict[str, np.ndarray] = {}  # row_cols and text_cols joined, once the verdicts are asked for
        self.t: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.n

    def add_file(self, path: Path) -> None:
        """Take in the rows of one ``pairs`` parquet file."""
        import pyarrow.parquet as pq  # only when a folder is read

        self.files.append(Path(path))
        self.first_rows.append(self.n)
        rows = pq.read_table(path, columns=_COLUMNS).to_pylist()
        if rows:
            self._store(*self._fields(rows))
            self.n += len(rows)

    def _fields(self, rows: list[dict]) -> tuple[dict, dict, list, set]:
        """One file's rows as lists per column: (per row, per generated text, test_seen
        targets as (row, hash), train texts' hashes)."""
        row: dict[str, list] = defaultdict(list)
        text: dict[str, list] = defaultdict(list)
        targets: list[tuple[int, bytes]] = []
        train: set[bytes] = set()
        for r_no, r in enumerate(rows):
            i = self.n + r_no
            split = r["split"]
            rank = SPLITS.index(split) if split in SPLITS else len(SPLITS)
            row["id"].append(r["id"].encode())
            row["rank"].append(rank)
            row["author"].append(self.authors.code(r["author_id"]))
            row["genre"].append(self.genres.code(r["genre"]))
            row["label"].append(self.labels.code(r["label"]))
            row["pair"] += [text_digest(r["chosen"] or ""), text_digest(r["rejected"] or "")]
            gen = [is_generated(r[f"{side}_source"]) for side in _SIDES]
            row["gen"].append(gen[0] | gen[1] << 1)
            task = positive_task(r)
            row["task"].append(_NO_HASH if task is None else _fields_hash(task))
            row["has_task"].append(task is not None)
            if split == "test_seen_authors" and r["chosen_source"] == "author":
                targets.append((i, _raw_hash(r["chosen"])))
            if rank == _TRAIN:
                train.add(_raw_hash(r["chosen"]))
                train.update(_raw_hash(c) for c in r["context"] or ())
            families = iter(edit_families(r, self.config))  # one per generated text, chosen first
            for side, col in enumerate(_SIDES):
                if gen[side]:
                    family = next(families)
                    text["owner"].append(i)
                    text["side"].append(side)
                    text["family"].append(_NO_HASH if family is None else _fields_hash(family))
                    text["has_family"].append(family is not None)
                    text["texts"].append(r[col] or "")
        return row, text, targets, train

    def _store(self, row: dict, text: dict, targets: list, train: set) -> None:
        """Add one file's lists (``_fields``) as numpy chunks; its generated texts as band keys."""
        self.row_cols.add(id=np.array(row["id"], dtype=bytes), rank=np.array(row["rank"], dtype=np.int8),
                          author=np.array(row["author"], dtype=np.int32), genre=np.array(row["genre"], dtype=np.int32),
                          label=np.array(row["label"], dtype=np.int32), pair=_digests(row["pair"]).reshape(-1, 32),
                          gen=np.array(row["gen"], dtype=np.uint8), task=_digests(row["task"]),
                          has_task=np.array(row["has_task"], dtype=bool))
        if targets:
            self.target_cols.add(row=np.array([t[0] for t in targets], dtype=np.int64),
                                 hash=_digests([t[1] for t in targets]).view("S16").ravel())
        if train:
            self.train_cols.add(hash=_digests(sorted(train)).view("S16").ravel())
        if text["texts"]:
            sig, _h, offsets = self.hasher.signatures(text["texts"])
            self.text_cols.add(owner=np.array(text["owner"], dtype=np.int32),
                               side=np.array(text["side"], dtype=np.int8),
                               family=_digests(text["family"]).view("S16").ravel(),
                               has_family=np.array(text["has_family"], dtype=bool), valid=offsets[1:] > offsets[:-1])
            self.keys.append((band_keys(sig, self.bands, self.rows) & self._print_mask).astype(np.uint32))

    # ------------------------------------------------------------ verdicts

    def rejected(self) -> dict[str, tuple[str, str]]:
        """pair id -> (reason, detail) for every row the checks reject (reasons as validators)."""
        if not self.n:
            return {}
        self.r = self.row_cols.join()
        self.t = self.text_cols.join()
        names = sorted(self.authors, key=str)  # authors are strings; str() only orders odd ones
        rank_of = np.empty(len(names), dtype=np.int64)
        rank_of[[self.authors[a] for a in names]] = np.arange(len(names))
        # (split rank, author_id, id); lexsort is stable, as sorted() was
        order = np.lexsort((self.r["id"], rank_of[self.r["author"]], self.r["rank"]))
        pos = np.empty(self.n, dtype=np.int64)
        pos[order] = np.arange(self.n)
        out: dict[int, tuple[str, str]] = {}
        self._split_leaks(out)
        self._exact(order, out)
        self._near(pos, out)
        # rows of one (split, author, id) stay in the order they were judged, as sorted() kept them
        ids, authors, ranks = self.r["id"][order], self.r["author"][order], self.r["rank"][order]
        new_key = np.ones(self.n, dtype=bool)
        new_key[1:] = (ids[1:] != ids[:-1]) | (authors[1:] != authors[:-1]) | (ranks[1:] != ranks[:-1])
        key_rank = np.empty(self.n, dtype=np.int64)
        key_rank[order] = np.cumsum(new_key)
        return {self._id(i): out[i] for i in sorted(out, key=key_rank.__getitem__)}

    def _id(self, i: int) -> str:
        return bytes(self.r["id"][i]).decode()

    def _split_leaks(self, out: dict) -> None:
        r = self.r
        train = r["rank"] == _TRAIN
        authors, genres = sorted(self.authors, key=self.authors.get), sorted(self.genres, key=self.genres.get)
        unseen = (r["rank"] == SPLITS.index("test_unseen_authors")) & np.isin(r["author"], r["author"][train])
        for i in np.flatnonzero(unseen).tolist():
            out[i] = ("leakage", f"author {authors[r['author'][i]]} is also in train")
        new_genre = (r["rank"] == SPLITS.index("test_unseen_genre")) & np.isin(r["genre"], r["genre"][train])
        for i in np.flatnonzero(new_genre).tolist():
            out[i] = ("leakage", f"genre {genres[r['genre'][i]]!r} is also in train")
        targets, train_texts = self.target_cols.join(), self.train_cols.join()
        if targets and train_texts:
            for i in targets["row"][np.isin(targets["hash"], train_texts["hash"])].tolist():
                out[i] = ("leakage", "its test_seen_authors target text also appears in train")

    def _exact(self, order: np.ndarray, out: dict) -> None:
        """As ``validators.exact_duplicates`` (and its ``SeenTexts``), in the canonical order.
        A row whose generated hashes no other row holds, and whose pair no other row repeats,
        can neither be hit nor change a verdict: only the others are walked. Hashes, tasks
        and pairs are numbered (equal values, equal numbers) and the walk's memory is arrays
        over those numbers, not a dict entry and a set per row."""
        r = self.r
        gen_c, gen_r = (r["gen"] & 1).astype(bool), (r["gen"] & 2).astype(bool)
        n_c = int(gen_c.sum())
        texts = np.empty((n_c + int(gen_r.sum()), 16), dtype=np.uint8)  # every generated text's hash
        np.compress(gen_c, r["pair"][:, :16], axis=0, out=texts[:n_c])
        np.compress(gen_r, r["pair"][:, 16:], axis=0, out=texts[n_c:])
        texts, text_repeated = _numbered(texts)
        hashes = np.full((self.n, 2), -1, dtype=np.int32)  # a row's chosen and rejected, if generated
        hashes[gen_c, 0], hashes[gen_r, 1] = texts[:n_c], texts[n_c:]
        involved = np.zeros(self.n, dtype=bool)
        involved[gen_c] |= text_repeated[texts[:n_c]]
        involved[gen_r] |= text_repeated[texts[n_c:]]
        del texts
        pair, pair_repeated = _numbered(r["pair"])
        involved |= pair_repeated[pair]
        walk = order[involved[order]]
        tasks = np.full(self.n, -1, dtype=np.int32)
        has_task = walk[r["has_task"][walk]]
        tasks[has_task] = _numbered(r["task"][has_task])[0]
        first = np.full(len(text_repeated), -1, dtype=np.int32)  # hash -> the first kept row holding it
        task_of = np.full(len(text_repeated), -1, dtype=np.int32)  # a claimed positive's hash -> its task
        labels = np.zeros((len(pair_repeated), max(len(self.labels), 1)), dtype=bool)  # labels kept per pair
        both_orders = self.config.allow_both_orders
        for lo in range(0, len(walk), 1024):  # Python ints for a block of rows at a time
            rows = walk[lo : lo + 1024]
            for i, (c, rj), task, key, label in zip(rows.tolist(), hashes[rows].tolist(), tasks[rows].tolist(),
                                                    pair[rows].tolist(), r["label"][rows].tolist()):
                if i in out:
                    continue
                held = [h for h in (c, rj) if h >= 0]
                hits = [int(first[h]) for k, h in enumerate(held)
                        if first[h] >= 0 and not (k == 0 and task >= 0 and task_of[h] == task)]
                mirror = both_orders and all(pair[j] == key for j in hits)
                if hits and not (mirror and not labels[key, label]):
                    out[i] = ("exact_duplicate", f"a generated candidate repeats one of pair {self._id(hits[0])}")
                    continue
                for h in held:
                    if first[h] < 0:
                        first[h] = i
                if task >= 0 and task_of[held[0]] < 0:
                    task_of[held[0]] = task
                labels[key, label] = True

    def _near(self, pos: np.ndarray, out: dict) -> None:
        """As ``validators.near_duplicates``, in the canonical order, among rows still kept.

        Texts sharing a band's fingerprint (the key's low bits) are that band's buckets, or
        supersets of them where two keys' low bits agree by chance: a pair from a bucket of
        up to 32 texts is kept if the two full keys agree in that band, a bigger bucket is
        split by its members' full keys (which pairs it proposes depends on its size). The
        full keys are those of the texts read back for their shingles, so the candidates
        are the full keys' exactly (``minhash.candidate_pairs_from_keys``)."""
        if not self.keys:
            return
        kept = np.ones(self.n, dtype=bool)
        kept[list(out)] = False
        wanted, pairs, shingles = self._candidates(self.t["valid"] & kept[self.t["owner"]])
        a, b = pairs[:, 0], pairs[:, 1]
        ra, rb = self.t["owner"][wanted[a]], self.t["owner"][wanted[b]]
        swap = pos[ra] > pos[rb]
        ra, rb = np.where(swap, rb, ra), np.where(swap, ra, rb)
        neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for ta, tb, i, j in zip(a.tolist(), b.tolist(), ra.tolist(), rb.tolist()):
            jac = jaccard(shingles[ta], shingles[tb])
            if jac >= self.config.near_dup_threshold:
                neighbours[j].append((i, jac))
        for i in sorted(neighbours, key=pos.__getitem__):
            earlier = [(j, jac) for j, jac in neighbours[i] if j not in out]
            if earlier:
                j, jac = max(earlier, key=lambda x: (x[1], -pos[x[0]]))
                out[i] = ("near_duplicate", f"a generated candidate has Jaccard {jac:.2f} with one of pair {self._id(j)}")

    def _candidates(self, use: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """The pairs of the texts ``use`` that band keys propose, less those ``_proposable``
        rules out: (the texts read back, sorted; each pair as two places in it, [m, 2] in
        order; those texts' shingles)."""
        idx = np.flatnonzero(use)
        at = np.cumsum([0] + [len(k) for k in self.keys])
        maybe, big = [], []  # (text, text, band) to confirm; (band, members) of the big buckets
        for band in range(self.bands):
            prints = np.concatenate([k[use[lo:hi], band] for k, lo, hi in zip(self.keys, at[:-1], at[1:])])
            pairs, members = band_buckets(prints, idx)
            pairs = pairs[self._proposable(pairs)]
            maybe.append(np.column_stack([pairs, np.full(len(pairs), band)]))
            big += [(band, m) for m in members]
        maybe = np.concatenate(maybe)
        wanted = np.unique(np.concatenate([maybe[:, :2].ravel(), *(m for _, m in big)]))
        keys, shingles = self._sketches(wanted)
        at = np.searchsorted(wanted, maybe[:, :2])
        sure = [maybe[keys[at[:, 0], maybe[:, 2]] == keys[at[:, 1], maybe[:, 2]], :2]]
        for band, members in big:  # the true buckets inside, as the full keys make them
            pairs = candidate_pairs_of_bands([keys[np.searchsorted(wanted, members), band]], members, len(use))
            sure.append(pairs[self._proposable(pairs)])
        codes = np.unique(np.sort(np.concatenate(sure), axis=1) @ np.array([len(use), 1]))
        return wanted, np.searchsorted(wanted, np.stack([codes // len(use), codes % len(use)], 1)), shingles

    def _proposable(self, pairs: np.ndarray) -> np.ndarray:
        """Which pairs of texts may be near duplicates: of two rows, not the two orders of one
        pair, not one edit family (``validators.edit_families``)."""
        t, r = self.t, self.r
        a, b = pairs[:, 0], pairs[:, 1]
        ra, rb = t["owner"][a], t["owner"][b]
        whole = r["pair"].view("S32").ravel()
        mirror = self.config.allow_both_orders & (whole[ra] == whole[rb]) & (r["label"][ra] != r["label"][rb])
        same_family = t["has_family"][a] & t["has_family"][b] & (t["family"][a] == t["family"][b])
        return (ra != rb) & ~mirror & ~same_family

    def _sketches(self, wanted: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Full band keys (uint64 [len(wanted), bands]) and shingle hashes of the generated
        texts ``wanted`` (sorted), read back one file at a time."""
        import pyarrow.parquet as pq  # only when a folder is read

        t = self.t
        keys = np.zeros((len(wanted), self.bands), dtype=np.uint64)
        shingles: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)] * len(wanted)
        first = np.array(self.first_rows)
        rows = t["owner"][wanted]
        files = np.searchsorted(first, rows, side="right") - 1
        for file_no in np.unique(files).tolist():
            ts = np.flatnonzero(files == file_no)
            table = pq.read_table(self.files[file_no], columns=list(_SIDES))
            cols = [table.column(c) for c in _SIDES]
            texts = [cols[side][at].as_py() or "" for side, at in zip(t["side"][wanted[ts]].tolist(),
                                                                     (rows[ts] - first[file_no]).tolist())]
            sig, h, offsets = self.hasher.signatures(texts)
            keys[ts] = band_keys(sig, self.bands, self.rows)
            for j, k in enumerate(ts.tolist()):
                shingles[k] = h[offsets[j] : offsets[j + 1]]
        return keys, shingles


def _numbered(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``values`` (uint8 [n, width], digests) numbered: equal rows, equal numbers;
    (an int32 number per row, whether more than one row holds each number). As ``np.unique``'s
    inverse and counts, without its copy of the distinct values or its int64 temporaries."""
    flat = np.ascontiguousarray(values).view(f"S{values.shape[1]}").ravel()
    order = np.argsort(flat)
    new = np.ones(len(flat), dtype=bool)  # the first of a run of equal values, once sorted
    for lo in range(0, len(flat), _BLOCK):  # sorted values a block at a time, not a sorted copy
        in_order = flat[order[lo : lo + _BLOCK + 1]]
        new[lo + 1 : lo + len(in_order)] = in_order[1:] != in_order[:-1]
    in_order = np.cumsum(new, dtype=np.int32)
    in_order -= 1
    number = np.empty(len(flat), dtype=np.int32)
    number[order] = in_order
    first = np.flatnonzero(new)
    return number, np.diff(first, append=len(flat)) > 1

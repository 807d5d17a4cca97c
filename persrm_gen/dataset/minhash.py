"""Near-duplicate texts at scale: vectorised MinHash over word shingles, LSH banding, exact Jaccard.

The validators (``dataset.validators``) reject a pair whose generated candidate is a near
copy of one in an earlier kept pair; with tens of thousands of pairs, comparing every two
texts is quadratic, so MinHash signatures and LSH bands propose candidate pairs and each
candidate is then confirmed with the exact Jaccard of the two shingle sets: no false
positives, and the banding is tuned for recall (``lsh_params``). Everything is numpy,
hashed with blake2b and fixed seeds, so results never change between processes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from persrm_gen.textutil import MINHASH_TOKEN


def tokens(text: str) -> list[str]:
    """Casefolded word tokens, punctuation dropped: what shingles and leak spans are made of."""
    return MINHASH_TOKEN.findall(text.casefold())


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: spreads structured 64-bit values over all bits (uint64 wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _word_hash(word: str) -> int:
    # blake2b, not hash(): Python's str hash changes between processes
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, recall: float = 0.97) -> tuple[int, int]:
    """(bands, rows): the most selective banding that still proposes a pair of Jaccard exactly
    ``threshold`` with probability >= ``recall`` (pairs above it even more often).

    Selectivity only saves time: every candidate is confirmed with the exact Jaccard, so
    we trade false positives for recall (datasketch's default balance misses ~40% of
    pairs right at the threshold).
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


class MinHasher:
    """Vectorised MinHash over word shingles: one numpy pass per permutation for a whole batch.

    Permutations are ``(a * h + b) >> 32`` over 64-bit shingle hashes with odd ``a``
    (multiply-shift hashing), which numpy evaluates with wrapping uint64 arithmetic.
    """

    def __init__(self, num_perm: int = 128, shingle_size: int = 3, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm, self.shingle_size = num_perm, shingle_size
        self.a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._hashes: dict[str, int] = {}

    def shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat uint64 shingle hashes of all texts and offsets (len(texts) + 1) into them.

        A text shorter than the shingle size yields one shingle of all its words; an empty
        text yields none."""
        all_tokens: list[str] = []
        lens = np.empty(len(texts), dtype=np.int64)
        for i, t in enumerate(texts):
            toks = tokens(t)
            all_tokens.extend(toks)
            lens[i] = len(toks)
        vocab = {w: i for i, w in enumerate(dict.fromkeys(all_tokens))}
        for w in vocab:
            if w not in self._hashes:
                self._hashes[w] = _word_hash(w)
        word_h = np.fromiter((self._hashes[w] for w in vocab), dtype=np.uint64, count=len(vocab))
        ids = np.fromiter(map(vocab.__getitem__, all_tokens), dtype=np.int64, count=len(all_tokens))
        k = self.shingle_size
        w = np.concatenate([word_h[ids], np.zeros(k, dtype=np.uint64)])
        tok_start = np.concatenate([[0], np.cumsum(lens)])
        n_sh = np.where(lens > 0, np.maximum(lens - k + 1, 1), 0)
        offsets = np.concatenate([[0], np.cumsum(n_sh)])
        text_of = np.repeat(np.arange(len(texts)), n_sh)
        pos = np.arange(offsets[-1]) - offsets[:-1][text_of] + tok_start[:-1][text_of]
        end = tok_start[1:][text_of]
        h = np.zeros(len(pos), dtype=np.uint64)
        for j in range(k):
            wj = np.where(pos + j < end, w[np.minimum(pos + j, len(w) - 1)], np.uint64(0))
            h = (h ^ wj) * _MIX
        return _splitmix(h), offsets

    def signatures(self, texts: Sequence[str], chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signatures uint32 [n, num_perm], shingle hashes, offsets); empty texts get all-max rows.

        Texts are processed ``chunk`` at a time to bound the temporaries' memory."""
        sig = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        hs, offs, base = [], [np.zeros(1, dtype=np.int64)], 0
        for lo in range(0, len(texts), chunk):
            h, offsets = self.shingles(texts[lo : lo + chunk])
            self._minhash(h, offsets, sig[lo : lo + chunk])
            hs.append(h)
            offs.append(offsets[1:] + base)
            base += len(h)
        h = np.concatenate(hs) if hs else np.zeros(0, dtype=np.uint64)
        return sig, h, np.concatenate(offs)

    def _minhash(self, h: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
        nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
        if not len(nonempty):
            return
        tmp = np.empty_like(h)
        starts = offsets[nonempty]
        for i in range(self.num_perm):
            np.multiply(h, self.a[i], out=tmp)
            tmp += self.b[i]
            tmp >>= np.uint64(32)
            out[nonempty, i] = np.minimum.reduceat(tmp, starts)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.unique(a), np.unique(b)
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _band_keys(sig: np.ndarray, start: int, rows: int) -> np.ndarray:
    key = np.zeros(len(sig), dtype=np.uint64)
    for c in range(start, start + rows):
        key = (key ^ sig[:, c].astype(np.uint64)) * _MIX
    return _splitmix(key)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """LSH band keys uint64 [n, bands] of signatures [n, num_perm]: the compact state that
    proposes near-duplicate candidates (texts sharing a key in any band) without the signatures."""
    out = np.zeros((len(sig), bands), dtype=np.uint64)
    for b in range(bands):
        out[:, b] = _band_keys(sig, b * rows, rows)
    return out


def candidate_pairs_from_keys(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unique (i, j), i < j, whose band keys (``band_keys``) agree in at least one band."""
    idx = np.flatnonzero(valid)
    return candidate_pairs_of_bands((keys[idx, b] for b in range(keys.shape[1])), idx, len(keys))


def _candidate_pairs(sig: np.ndarray, valid: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Unique (i, j), i < j, whose signatures share at least one LSH band, as an int64 array [m, 2]."""
    idx = np.flatnonzero(valid)
    sub = sig[idx]
    return candidate_pairs_of_bands((_band_keys(sub, b * rows, rows) for b in range(bands)), idx, len(sig))


def candidate_pairs_of_bands(bands: Iterable[np.ndarray], idx: np.ndarray, n: int) -> np.ndarray:
    """Unique (i, j), i < j, of the texts ``idx`` (numbered below ``n``) that share a key in
    at least one band, as an int64 array [m, 2] in (i, j) order. ``bands`` yields one band's
    keys of those texts at a time, and pairs are merged band by band (as sorted unique codes
    ``i * n + j``), so a caller holding its keys in pieces never joins every band at once."""
    codes = np.zeros(0, dtype=np.int64)
    for keys in bands:
        pairs, big = band_buckets(keys, idx)
        pairs = np.sort(np.concatenate([pairs, *map(_bucket_pairs, big)]), axis=1)
        codes = np.union1d(codes, pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], 1)


_MAX_ALL = 32  # a bucket's size up to which all its pairs are proposed (``_bucket_pairs``)


def band_buckets(keys: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The texts ``idx`` sharing a key in one band (``keys``, one per text): (every pair of
    each bucket of up to ``_MAX_ALL`` texts, int64 [m, 2]; the members of each bigger bucket,
    in ``idx`` order, whose pairs ``_bucket_pairs`` chooses)."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    same = np.concatenate([[False], keys[1:] == keys[:-1], [False]])  # a text keyed as the one before
    del keys
    edges = np.diff(same.view(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) + 1  # buckets of 2+, sorted
    del same, edges
    sizes = ends - starts
    two = starts[sizes == 2]  # the usual case, vectorised
    found = [np.stack([idx[order[two]], idx[order[two + 1]]], 1)]
    some = (sizes > 2) & (sizes <= _MAX_ALL)
    for s, e in zip(starts[some].tolist(), ends[some].tolist()):
        found.append(_bucket_pairs(idx[order[s:e]]))
    big = [idx[order[s:e]] for s, e in zip(starts[sizes > _MAX_ALL].tolist(), ends[sizes > _MAX_ALL].tolist())]
    return np.concatenate(found), big


def _bucket_pairs(members: np.ndarray, max_all: int = _MAX_ALL) -> np.ndarray:
    """Pairs to verify in one LSH bucket: all of them in small buckets; in big ones (mostly
    copies of one text) each member with its predecessor and with the first member."""
    m = len(members)
    if m <= max_all:
        i, j = np.triu_indices(m, 1)
    else:
        i = np.concatenate([np.arange(m - 1), np.zeros(m - 2, dtype=np.int64)])
        j = np.concatenate([np.arange(1, m), np.arange(2, m)])
    return np.stack([members[i], members[j]], 1)


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = 0.85, num_perm: int = 128, shingle_size: int = 3, seed: int = 1
) -> list[tuple[int, int, float]]:
    """All (i, j, jaccard), i < j, whose word-shingle Jaccard is >= threshold, sorted.

    MinHash LSH proposes candidates; each is confirmed with the exact Jaccard of the two
    shingle sets, so there are no false positives, and misses are rare (the banding is
    tuned for recall, see lsh_params)."""
    if len(texts) < 2:
        return []
    hasher = MinHasher(num_perm, shingle_size, seed)
    sig, h, offsets = hasher.signatures(texts)
    bands, rows = lsh_params(threshold, num_perm)
    cand = _candidate_pairs(sig, offsets[1:] > offsets[:-1], bands, rows)
    out = []
    for i, j in cand.tolist():
        jac = jaccard(h[offsets[i] : offsets[i + 1]], h[offsets[j] : offsets[j + 1]])
        if jac >= threshold:
            out.append((i, j, jac))
    return out


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.85, **kw) -> list[list[int]]:
    """Connected groups (size >= 2) of near-duplicate texts, each sorted, ordered by first member."""
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in near_duplicate_pairs(texts, threshold, **kw):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        groups[find(i)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


class NearDuplicateIndex:
    """Incremental near-duplicate lookup: ``query`` returns keys of added texts with Jaccard >= threshold."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle_size: int = 3, seed: int = 1):
        self.threshold = threshold
        self.hasher = MinHasher(num_perm, shingle_size, seed)
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self._buckets: list[dict[int, list]] = [defaultdict(list) for _ in range(self.bands)]
        self._shingles: dict = {}  # key -> shingle hashes, in insertion order
        self._rank: dict = {}

    def _sketch(self, text: str) -> tuple[np.ndarray, list[int]]:
        sig, h, _ = self.hasher.signatures([text])
        keys = [int(_band_keys(sig, b * self.rows, self.rows)[0]) for b in range(self.bands)]
        return h, keys

    def add(self, key, text: str) -> None:
        if key in self._shingles:
            raise KeyError(f"duplicate key {key!r}")
        h, keys = self._sketch(text)
        self._shingles[key] = h
        self._rank[key] = len(self._rank)
        if len(h):
            for bucket, k in zip(self._buckets, keys):
                bucket[k].append(key)

    def query(self, text: str) -> list[tuple[object, float]]:
        """(key, jaccard) of every added text at or above the threshold, in insertion order."""
        h, keys = self._sketch(text)
        if not len(h):
            return []
        seen: dict = {}
        for bucket, k in zip(self._buckets, keys):
            for key in bucket.get(k, ()):
                seen.setdefault(key, None)
        hits = ((key, jaccard(h, self._shingles[key])) for key in seen)
        return sorted(((k, j) for k, j in hits if j >= self.threshold), key=lambda kj: self._rank[kj[0]])

    def __len__(self) -> int:
        return len(self._shingles)

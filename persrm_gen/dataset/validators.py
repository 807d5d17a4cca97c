"""Dataset validators: run on the canonical ``pairs`` rows at build time and by ``persrm-gen validate``.

``validate_pairs`` checks every row in a fixed order and gives each rejected row exactly
one reason, the first that applies. Per-row checks run first, so a broken row never
claims a text that a later, valid row would then lose as a "duplicate":

1. ``bad_format``         rationale is not ``<think>..</think><answer>X</answer>``, a response
                           outside [min_chars, max_chars], empty query or context, bad split
2. ``label_inconsistent`` verdict in the rationale != label, or response_a/response_b do not
                           hold chosen/rejected in the order the label says
3. ``identical_pair``     chosen == rejected after normalization
4. ``copied_chosen``      a generated rejected (not a minimal-edit or axis rewrite) that is a near copy of the chosen
5. ``leakage``            a generated candidate copying >= leak_ngram consecutive words of the context
6. ``low_margin``         style_margin < min_margin for negatives meant to diverge in style
7. ``exact_duplicate``    a generated candidate equal (normalized) to one of an earlier kept pair
8. ``near_duplicate``     a generated candidate whose word-shingle Jaccard with one of an
                           earlier kept pair is >= near_dup_threshold (MinHash LSH + exact check)

Only generated text is checked for duplicates and leakage: the author's real text appears
in several pairs on purpose (one per negative strategy) and is never "leaked".
Running ``validate_pairs`` on its own ``kept`` rows rejects nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import numbers
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.records import SPLITS
from persrm_gen.textutil import MINHASH_TOKEN

REASONS = (
    "bad_format",
    "label_inconsistent",
    "identical_pair",
    "copied_chosen",
    "leakage",
    "low_margin",
    "exact_duplicate",
    "near_duplicate",
)
REAL_SOURCES = frozenset({"author", "other-author"})  # any other source counts as generated


@dataclass
class ValidatorConfig:
    near_dup_threshold: float = 0.85  # Jaccard of word shingles between generated candidates
    shingle_size: int = 3  # words per shingle
    num_perm: int = 128  # MinHash permutations
    seed: int = 1
    leak_ngram: int = 12  # a copied span this many words long is a leak
    max_leak_fraction: float = 0.0  # share of a candidate's words allowed inside such spans
    copy_threshold: float = 0.8  # word-sequence similarity at which a rejected copies the chosen
    min_chars: int = 20
    max_chars: int = 20_000
    # style_margin (persrm_gen.style) of the author's held-out text against another real
    # author of the same genre, on the bundled corpora with 4 context samples: median 0.3,
    # quartiles -0.07 / 0.88, 5th percentile -0.7. A negative rewritten *away* from the
    # author's style (randomize, axis-*) should beat a real other author easily; one that
    # sits 0.5 closer to the author than the author's own text clearly failed. Mimic,
    # minimal-edit and other-author negatives are hard by design and are not filtered on
    # margin; a pair whose chosen is generated (style-matched) always is. None disables it.
    min_margin: float | None = -0.5
    margin_strategies: tuple[str, ...] = ("randomize", "axis-")  # prefixes of strategy names
    # Rewrites of the chosen by design (near copies are the point); copied_chosen skips them.
    rewrite_strategies: tuple[str, ...] = ("minimal-edit", "axis-")
    # The same chosen/rejected may appear twice, once with each label (A/B swapped copies).
    allow_both_orders: bool = True


@dataclass(frozen=True)
class Rejection:
    pair_id: str
    reason: str  # one of REASONS
    detail: str


@dataclass
class ValidationReport:
    kept: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rejections per reason, every reason present (zeros included), in REASONS order."""
        c = Counter(r.reason for r in self.rejected)
        return {reason: c.get(reason, 0) for reason in REASONS}


# --------------------------------------------------------------------------- text helpers



def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """Casefold, collapse whitespace, strip punctuation (and spaces) at both ends."""
    t = " ".join(text.casefold().split())
    if t[:1].isalnum() and t[-1:].isalnum():  # fast path: nothing to strip
        return t
    start, end = 0, len(t)
    while start < end and (_is_punct(t[start]) or t[start].isspace()):
        start += 1
    while end > start and (_is_punct(t[end - 1]) or t[end - 1].isspace()):
        end -= 1
    return t[start:end]


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()


def tokens(text: str) -> list[str]:
    """Casefolded word tokens, punctuation dropped: what shingles and leak spans are made of."""
    return MINHASH_TOKEN.findall(text.casefold())


def is_generated(source: str | None) -> bool:
    return source not in REAL_SOURCES


def generated_texts(row: dict) -> list[str]:
    """The row's generated candidates (chosen first), real text excluded."""
    out = []
    if is_generated(row.get("chosen_source")):
        out.append(row.get("chosen") or "")
    if is_generated(row.get("rejected_source")):
        out.append(row.get("rejected") or "")
    return out


# --------------------------------------------------------------------------- per-row checks


def format_problems(row: dict, config: ValidatorConfig | None = None) -> list[str]:
    """Everything wrong with the row's shape; empty when it is well formed."""
    config = config or ValidatorConfig()
    problems = []
    if not str(row.get("query") or "").strip():
        problems.append("empty query")
    context = row.get("context")
    if context is None or len(context) == 0 or not all(isinstance(s, str) and s.strip() for s in context):
        problems.append("context must be a non-empty list of non-empty texts")
    for col in ("chosen", "rejected"):
        text = row.get(col)
        n = len(text.strip()) if isinstance(text, str) else 0
        if not config.min_chars <= n <= config.max_chars:
            problems.append(f"{col} has {n} characters, outside [{config.min_chars}, {config.max_chars}]")
    for col in ("chosen_source", "rejected_source"):  # decides which text is checked as generated
        if not isinstance(row.get(col), str) or not row[col]:
            problems.append(f"{col} is missing")
    if not format_ok(str(row.get("rationale") or "")):
        problems.append("rationale is not one <think>...</think> then exactly one <answer>A|B</answer>")
    margin = row.get("style_margin")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not math.isfinite(margin):
        problems.append(f"style_margin must be a finite number, got {margin!r}")
    if row.get("split") not in SPLITS:
        problems.append(f"unknown split {row.get('split')!r}")
    return problems


def label_problem(row: dict) -> str | None:
    """Why the label disagrees with the responses or the rationale's verdict; None when consistent."""
    label = row.get("label")
    if label not in ("A", "B"):
        return f"label must be 'A' or 'B', got {label!r}"
    expected = (row.get("chosen"), row.get("rejected"))
    if label == "B":
        expected = expected[::-1]
    if (row.get("response_a"), row.get("response_b")) != expected:
        return f"response_a/response_b do not hold chosen/rejected in the order label {label} says"
    verdict = parse_verdict(str(row.get("rationale") or ""))
    if verdict is not None and verdict != label:
        return f"rationale answers {verdict} but the label is {label}"
    return None


def label_consistent(row: dict) -> bool:
    return label_problem(row) is None


def _similarity_at_least(a: list[str], b: list[str], floor: float) -> float:
    """difflib's ratio, or its cheap upper bound when that bound is already below ``floor``."""
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for bound in (sm.real_quick_ratio, sm.quick_ratio):
        if (r := bound()) < floor:
            return r
    return sm.ratio()


def copied_chosen(row: dict, config: ValidatorConfig | None = None) -> str | None:
    """A generated rejected that is a near copy of the chosen, unless it is a rewrite by design."""
    config = config or ValidatorConfig()
    strategy = row.get("strategy") or ""
    if strategy.startswith(config.rewrite_strategies) or not is_generated(row.get("rejected_source")):
        return None
    chosen, rejected = tokens(row.get("chosen") or ""), tokens(row.get("rejected") or "")
    sim = _similarity_at_least(chosen, rejected, config.copy_threshold)
    if sim >= config.copy_threshold:
        return f"rejected ({strategy}) has word similarity {sim:.2f} >= {config.copy_threshold} to the chosen"
    return None


@lru_cache(maxsize=256)
def _ngram_set(texts: tuple[str, ...], n: int) -> frozenset[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for t in texts:
        toks = tokens(t)
        out.update(zip(*(toks[i:] for i in range(n))))
    return frozenset(out)


def leak_coverage(text: str, context: Sequence[str], n: int, allowed: Sequence[str] = ()) -> tuple[float, str | None]:
    """Share of the text's words inside spans of >= n words copied from the context, and the
    longest such span. Spans that also occur in ``allowed`` (say, the author's real chosen
    text, which a minimal edit inherits) are not counted."""
    toks = tokens(text)
    if len(toks) < n:
        return 0.0, None
    src = _ngram_set(tuple(context), n)
    if src.isdisjoint(zip(*(toks[i:] for i in range(n)))):  # the usual case, decided in C
        return 0.0, None
    ok = _ngram_set(tuple(allowed), n) if allowed else frozenset()
    covered = np.zeros(len(toks), dtype=bool)
    best: tuple[int, int] | None = None
    run_start = None
    for i in range(len(toks) - n + 1):
        gram = tuple(toks[i : i + n])
        if gram in src and gram not in ok:
            covered[i : i + n] = True
            run_start = i if run_start is None else run_start
            if best is None or i + n - run_start > best[1] - best[0]:
                best = (run_start, i + n)
        else:
            run_start = None
    span = " ".join(toks[best[0] : best[1]]) if best else None
    return float(covered.mean()), span


def leaked_span(text: str, context: Sequence[str], n: int = 12, allowed: Sequence[str] = ()) -> str | None:
    """The longest run of >= n consecutive words the text copies from the context, or None."""
    return leak_coverage(text, context, n, allowed)[1]


def _leak_problem(row: dict, config: ValidatorConfig) -> str | None:
    context = list(row.get("context") or [])
    real_chosen = [] if is_generated(row.get("chosen_source")) else [row.get("chosen") or ""]
    for col, allowed in (("chosen", []), ("rejected", real_chosen)):
        if not is_generated(row.get(f"{col}_source")):
            continue
        frac, span = leak_coverage(row.get(col) or "", context, config.leak_ngram, allowed)
        if span is not None and frac > config.max_leak_fraction:
            return f"{col} copies {frac:.0%} of its words from the context, e.g. {span[:120]!r}"
    return None


def margin_problem(row: dict, config: ValidatorConfig) -> str | None:
    if config.min_margin is None:
        return None
    strategy = str(row.get("strategy") or "")
    applies = is_generated(row.get("chosen_source")) or any(strategy.startswith(p) for p in config.margin_strategies)
    margin = float(row["style_margin"])
    if applies and margin < config.min_margin:
        return f"style_margin {margin:.3f} < {config.min_margin}: the {strategy} negative is closer to the author"
    return None


def row_problem(row: dict, config: ValidatorConfig) -> tuple[str, str] | None:
    """The first per-row (reason, detail) that applies, or None."""
    problems = format_problems(row, config)
    if problems:
        return "bad_format", "; ".join(problems)
    if (p := label_problem(row)) is not None:
        return "label_inconsistent", p
    if normalize(row["chosen"]) == normalize(row["rejected"]):
        return "identical_pair", "chosen and rejected are the same text after normalization"
    if (p := copied_chosen(row, config)) is not None:
        return "copied_chosen", p
    if (p := _leak_problem(row, config)) is not None:
        return "leakage", p
    if (p := margin_problem(row, config)) is not None:
        return "low_margin", p
    return None


# --------------------------------------------------------------------------- near duplicates

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


def _candidate_pairs(sig: np.ndarray, valid: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Unique (i, j), i < j, that share at least one LSH band, as an int64 array [m, 2]."""
    n = len(sig)
    found: list[np.ndarray] = []
    idx = np.flatnonzero(valid)
    sub = sig[idx]
    for b in range(bands):
        keys = _band_keys(sub, b * rows, rows)
        order = np.argsort(keys, kind="stable")
        sk, members = keys[order], idx[order]
        starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1], [True]]))
        sizes = np.diff(starts)
        two = starts[:-1][sizes == 2]  # the usual case, vectorised
        found.append(np.stack([members[two], members[two + 1]], 1))
        for s, size in zip(starts[:-1][sizes > 2].tolist(), sizes[sizes > 2].tolist()):
            found.append(_bucket_pairs(members[s : s + size]))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], 1)


def _bucket_pairs(members: np.ndarray, max_all: int = 32) -> np.ndarray:
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


# --------------------------------------------------------------------------- cross-row checks


def _pair_key(row: dict) -> tuple[str, str]:
    return text_hash(row.get("chosen") or ""), text_hash(row.get("rejected") or "")


def exact_duplicates(rows: Sequence[dict], config: ValidatorConfig | None = None) -> dict[int, str]:
    """Row index -> detail, for rows whose generated candidate repeats (normalized) one of an
    earlier row that was not itself a duplicate. First occurrence wins, in row order.

    With ``allow_both_orders`` the same chosen/rejected pair may appear once per label (the
    builder's A/B-swapped copy); a third copy is a duplicate."""
    config = config or ValidatorConfig()
    seen: dict[str, int] = {}
    labels: dict[tuple[str, str], set] = defaultdict(set)
    out: dict[int, str] = {}
    for i, row in enumerate(rows):
        hashes = [text_hash(t) for t in generated_texts(row)]
        key, label = _pair_key(row), row.get("label")
        hits = [seen[h] for h in hashes if h in seen]
        mirror = config.allow_both_orders and all(_pair_key(rows[j]) == key for j in hits)
        if hits and not (mirror and label not in labels[key]):
            out[i] = f"a generated candidate repeats one of pair {rows[hits[0]].get('id')}"
            continue
        for h in hashes:
            seen.setdefault(h, i)
        labels[key].add(label)
    return out


def near_duplicates(rows: Sequence[dict], config: ValidatorConfig | None = None) -> dict[int, str]:
    """Row index -> detail, for rows with a generated candidate near-duplicating one of an
    earlier row that is kept (greedy in row order: a rejected row claims nothing). The two
    orders of one pair (see exact_duplicates) are not near duplicates of each other."""
    config = config or ValidatorConfig()
    texts, owner = [], []
    for i, row in enumerate(rows):
        for t in generated_texts(row):
            texts.append(t)
            owner.append(i)
    keys = [_pair_key(r) for r in rows] if config.allow_both_orders else None
    neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for a, b, jac in near_duplicate_pairs(
        texts, config.near_dup_threshold, config.num_perm, config.shingle_size, config.seed
    ):
        ra, rb = sorted((owner[a], owner[b]))
        if ra == rb or (keys and keys[ra] == keys[rb] and rows[ra].get("label") != rows[rb].get("label")):
            continue
        neighbours[rb].append((ra, jac))
    out: dict[int, str] = {}
    for i in sorted(neighbours):
        earlier = [(j, jac) for j, jac in neighbours[i] if j not in out]
        if earlier:
            j, jac = max(earlier, key=lambda x: (x[1], -x[0]))
            out[i] = f"a generated candidate has Jaccard {jac:.2f} with one of pair {rows[j].get('id')}"
    return out


def validate_pairs(rows: Iterable[dict], config: ValidatorConfig | None = None) -> ValidationReport:
    """Run every validator (order in the module docstring); deterministic for a given row order."""
    config = config or ValidatorConfig()
    report = ValidationReport()
    survivors = []
    for row in rows:
        problem = row_problem(row, config)
        if problem is None:
            survivors.append(row)
        else:
            report.rejected.append(Rejection(str(row.get("id")), *problem))
    for reason, check in (("exact_duplicate", exact_duplicates), ("near_duplicate", near_duplicates)):
        hits = check(survivors, config)
        for i in sorted(hits):
            report.rejected.append(Rejection(str(survivors[i].get("id")), reason, hits[i]))
        survivors = [r for i, r in enumerate(survivors) if i not in hits]
    report.kept = survivors
    return report


def in_split_order(by_split: dict[str, list[dict]]) -> list[dict]:
    """All rows, splits in SPLITS order (then any others by name): train first, so a test
    pair duplicating a train pair is the one rejected."""
    rank = {s: i for i, s in enumerate(SPLITS)}
    return [r for s in sorted(by_split, key=lambda s: (rank.get(s, len(SPLITS)), s)) for r in by_split[s]]


def load_pairs(folder: str | Path) -> list[dict]:
    """Rows of ``<folder>/data/pairs/*.parquet`` in split order."""
    from persrm_gen.dataset.io import load_split_rows  # noqa: PLC0415 - pyarrow only when reading a folder

    return in_split_order(load_split_rows(Path(folder), "pairs"))


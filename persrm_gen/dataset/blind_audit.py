"""The context-blind audit: can the pairs be told apart without looking at the author?

A personalized reward model should learn *which response this author would write*. If a
judge that never sees the author's samples (only the two responses) finds the chosen one
well above chance, the pairs carry a shortcut (the chosen is longer, more fluent, ends
cleanly, is human text) and a reward model can learn that instead of style. This is the
hypothesis-only baseline of NLI, applied to preference pairs.

The judge: response-only features (:data:`FEATURES`: length in words, mean sentence
length, commas, line breaks, capitals, type-token ratio, clean end, ...), each pair seen as
the difference ``f(A) - f(B)``, and an L2-regularised logistic regression *without an
intercept*, so ``P(A) = sigmoid(w . (f(A) - f(B)))``: swapping A and B flips the
probability, the A/B placement cannot be learned, and the judge can be fitted and scored
on chosen/rejected before labels are placed (the build's screen stage does exactly that).
It is small on purpose: a dozen weights fitted by Newton's method in numpy, so the audit
runs on every ``stats``, every build and in tests in milliseconds, and is deterministic
(the manifest must be byte-identical between identical runs). The fit and the scoring go a
block of rows at a time (:data:`CHUNK`), so a build's end step holds the pairs' features and
no per-pair temporaries of the judge.

Fluency: a caller may pass ``extra``, a function giving more per-text features (the
embedded model's mean per-token log-likelihood: ``persrm_gen.llm.fluency``). It is left
out by default because scoring every response with a language model costs minutes on a
CPU; ``persrm-gen stats --fluency`` and ``benchmarks/quality.py --fluency`` turn it on.
(This module sits in ``dataset``, which may not import ``llm``: the scorer is passed in.)

Evaluation (:func:`audit`): fitted on the ``train`` split, scored on each test split; per
strategy and per genre over the test splits pooled. Test splits of small builds hold a
handful of pairs per strategy, so :func:`audit` also reports an author-grouped k-fold
cross-validation over every pair (each pair judged by a model fitted without its author),
and the "pick the longer response" rate, the one-feature shortcut the issue measured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from persrm_gen.style import n_words
from persrm_gen.textutil import FINISHED_END, PARAGRAPH_BREAK, STYLE_SENTENCE_SPLIT, STYLE_WORD

FEATURES = (
    "log_words",  # length; a difference of logs is the log of the length ratio
    "log_chars",
    "sentence_words",  # mean words per sentence
    "word_chars",  # mean characters per word
    "commas",  # per word
    "line_breaks",  # per word
    "paragraphs",  # count of blank-line breaks
    "capitals",  # share of letters that are upper case
    "type_token",  # distinct words / words over the first 100 words (length-independent)
    "clean_end",  # 1 when the text ends a sentence (textutil.FINISHED_END, as the candidates' trim)
    "digits",  # share of characters
    "quotes_parens",  # per word
    "exclamations_dashes",  # "!" and dashes per word: the marks of a "breathless" randomize style or of a rule-based
                            # punctuation rewrite, which the other features cannot see
)
# The surface a base model's text is told from the author's by, with the spread of each over the
# example corpus's samples: the build keeps the draw of a generated negative nearest the
# positive on these (surface_distance), fixed scales so a shard decides alone.
SURFACE = {"sentence_words": 9.6, "word_chars": 0.37, "type_token": 0.06, "commas": 0.027}
TEST_SPLITS_ALL = "test"  # key of the pooled test splits in the report
TTR_WINDOW = 100
L2 = 3.0  # ridge on standardised features; keeps the judge calm on a few dozen pairs
MIN_TRAIN_PAIRS = 4
CV_FOLDS = 5
CHUNK = 2048  # rows per block of the fit and the scoring: their temporaries stay ~0.2 MB each
_QP = re.compile(r"[\"“”()\[\]]")
_EXCLAIM_DASH = re.compile(r"!|--|—|–|(?<=\s)-(?=\s)")

_INDEX = {name: i for i, name in enumerate(FEATURES)}
Extra = Callable[[str], Sequence[float]]  # more per-text features, e.g. fluency


@lru_cache(maxsize=8192)
def text_features(text: str) -> tuple[float, ...]:
    """The response-only features of one text, in :data:`FEATURES` order."""
    words = STYLE_WORD.findall(text)
    n = len(words)
    sents = [s for s in STYLE_SENTENCE_SPLIT.split(text) if STYLE_WORD.search(s)]
    letters = [c for c in text if c.isalpha()]
    head = [w.casefold() for w in words[:TTR_WINDOW]]
    per_word = max(n, 1)
    return (
        math.log1p(n),
        math.log1p(len(text)),
        n / max(len(sents), 1),
        sum(map(len, words)) / per_word,
        text.count(",") / per_word,
        text.strip().count("\n") / per_word,
        float(len(PARAGRAPH_BREAK.findall(text.strip()))),
        sum(c.isupper() for c in letters) / max(len(letters), 1),
        len(set(head)) / max(len(head), 1),
        1.0 if FINISHED_END.search(text) else 0.0,
        sum(c.isdigit() for c in text) / max(len(text), 1),
        len(_QP.findall(text)) / per_word,
        len(_EXCLAIM_DASH.findall(text)) / per_word,
    )


def surface_distance(a: str, b: str) -> float:
    """How far apart two texts are on :data:`SURFACE` (root of the summed squared scaled differences)."""
    fa, fb = text_features(a), text_features(b)
    return math.sqrt(sum(((fa[_INDEX[k]] - fb[_INDEX[k]]) / s) ** 2 for k, s in SURFACE.items()))


def pair_features(chosen: Sequence[str], rejected: Sequence[str], extra: Extra | None = None) -> np.ndarray:
    """One row per pair: features of the chosen minus those of the rejected."""
    if extra is not None and hasattr(extra, "prime"):  # a batched scorer (llm.fluency) scores all at once
        extra.prime([*chosen, *rejected])
    def f(t: str) -> list[float]:
        return [*text_features(t), *(extra(t) if extra else ())]

    return np.array([np.subtract(f(c), f(r)) for c, r in zip(chosen, rejected)], dtype=float).reshape(len(chosen), -1)


@dataclass(frozen=True)
class BlindJudge:
    """``P(chosen is chosen) = sigmoid((x / scale) . w)`` for a pair difference ``x``."""

    weights: np.ndarray
    scale: np.ndarray

    def confidence(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The judge's probability that the chosen (first) response is the author's, per row
        of ``x`` (or of ``x[rows]``), scaled a block of rows at a time."""
        n = len(x) if rows is None else len(rows)
        out = np.empty(n)
        for lo, z in _blocks(x, rows, CHUNK):
            out[lo:lo + len(z)] = _sigmoid((z / self.scale) @ self.weights)
        return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warnings for large |z|


def _blocks(x: np.ndarray, rows: np.ndarray | None, chunk: int):
    """(offset, block) over the rows of ``x`` (or ``x[rows]``, in that order), ``chunk`` rows at a time."""
    n = len(x) if rows is None else len(rows)
    for lo in range(0, n, chunk):
        yield lo, x[lo:lo + chunk] if rows is None else x[rows[lo:lo + chunk]]


def fit(x: np.ndarray, *, rows: np.ndarray | None = None, l2: float = L2, iters: int = 50,
        chunk: int = CHUNK) -> BlindJudge:
    """Fit on pair differences oriented chosen-minus-rejected (the rows of ``x``, or those
    ``rows`` indexes, in that order).

    The judge is the logistic regression on every pair seen both ways, ``x`` with label 1
    and its mirror ``-x`` with label 0, so the data are symmetric and no intercept is needed.
    The mirror adds nothing new: for ``-z`` with label 0, ``p' = 1 - p`` and its gradient and
    Hessian terms equal those of ``z`` with label 1. So the mirror is never built: Newton runs
    on ``x`` alone with the data terms doubled, a block of ``chunk`` rows at a time, and holds
    O(chunk * features) floats however many pairs a build has (the stacked ``[x; -x]`` and its
    temporaries were ~435 B per pair at a build's end step)."""
    n, d = (len(x) if rows is None else len(rows)), x.shape[1]
    squares = np.zeros(d)
    for _, b in _blocks(x, rows, chunk):
        # numpy sums axis 0 row after row: this is (x ** 2).sum(axis=0) to the bit, in blocks
        squares = np.vstack([squares[None], b * b]).sum(axis=0)
    scale = np.sqrt(squares / n) if n else np.ones(d)
    scale = np.where(scale > 1e-9, scale, 1.0)
    w = np.zeros(d)
    for _ in range(iters):  # Newton-Raphson on the penalised log-likelihood (convex)
        grad, hess = l2 * w, l2 * np.eye(d)
        for _, b in _blocks(x, rows, chunk):
            z = b / scale
            p = _sigmoid(z @ w)
            grad += 2.0 * (z.T @ (p - 1.0))
            z *= np.sqrt(p * (1.0 - p))[:, None]  # in place: z^T diag(p(1-p)) z without a second block
            hess += 2.0 * (z.T @ z)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-8:
            break
    return BlindJudge(w, scale)


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95 % interval of an accuracy ``p`` measured on ``n`` pairs. A strategy holds
    a few dozen pairs in most builds, where an accuracy is known to about +-0.2: the card and
    the quality benchmark print it so a 0.7 on 10 pairs is not read as a shortcut found."""
    if n <= 0:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def interval_text(p: float | None, n: int) -> str | None:
    """:func:`wilson_interval` as the card, ``stats`` and the quality benchmark print it,
    "0.21-0.72"; None when the accuracy was not measured."""
    if p is None:
        return None
    lo, hi = wilson_interval(p, n)
    return f"{lo:.2f}-{hi:.2f}"


def _hits(p: np.ndarray) -> np.ndarray:
    """1 for a right call, 0 for a wrong one, 0.5 for no preference."""
    return np.where(np.isclose(p, 0.5), 0.5, (p > 0.5).astype(float))


def _rate(values: Iterable[float]) -> float | None:
    v = list(values)
    return round(float(np.mean(v)), 4) if v else None


def _grouped(keys: Sequence[str], values: np.ndarray) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for k in sorted(set(keys)):
        sel = [v for kk, v in zip(keys, values) if kk == k]
        out[k] = {"n": len(sel), "accuracy": _rate(sel)}
    return out


def longer_chosen(chosen: Sequence[str], rejected: Sequence[str]) -> np.ndarray:
    """Per pair: 1 when the chosen has more words, 0 when fewer, 0.5 for a tie."""
    return np.array([np.sign(n_words(c) - n_words(r)) / 2 + 0.5 for c, r in zip(chosen, rejected)], dtype=float)


def _longer(rows: Sequence[dict]) -> np.ndarray:
    """``longer_chosen`` of the rows, or their precomputed ``pair_longer`` (``dataset.compact``)."""
    if rows and all("pair_longer" in r for r in rows):
        return np.array([r["pair_longer"] for r in rows], dtype=float)
    return longer_chosen([r["chosen"] for r in rows], [r["rejected"] for r in rows])


def _differences(rows: Sequence[dict], extra: Extra | None) -> np.ndarray:
    """``pair_features`` of the rows, or their precomputed ``pair_features`` (``dataset.compact``:
    the end step of a build reads no text); an ``extra`` cue always needs the texts."""
    if extra is None and rows and all("pair_features" in r for r in rows):
        return np.array([r["pair_features"] for r in rows], dtype=float).reshape(len(rows), -1)
    return pair_features([r["chosen"] for r in rows], [r["rejected"] for r in rows], extra)


@dataclass
class _Coded:
    """A column of the audited rows as a code per row into its distinct values."""

    codes: np.ndarray
    values: list

    @classmethod
    def of(cls, column: Iterable) -> _Coded:
        index: dict = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in column), dtype=np.int64)
        return cls(codes, list(index))

    def take(self, order: np.ndarray) -> _Coded:
        return _Coded(self.codes[order], self.values)

    def ranks(self, key=None) -> np.ndarray:
        """Per row, the rank of its value in sorted order (``key`` as ``sorted``'s)."""
        rank = np.empty(len(self.values), dtype=np.int64)
        rank[sorted(range(len(self.values)), key=lambda k: (key or _same)(self.values[k]))] = np.arange(len(self.values))
        return rank[self.codes]

    def equals(self, value) -> np.ndarray:
        return self.codes == self.values.index(value) if value in self.values else np.zeros(len(self.codes), bool)

    def present(self, mask: np.ndarray | None = None) -> list:
        """The distinct values of the rows (``mask``: of those rows), sorted."""
        codes = self.codes if mask is None else self.codes[mask]
        return sorted(self.values[c] for c in np.unique(codes).tolist())


def _same(v):
    return v


@dataclass
class _Audited:
    """The rows as the audit reads them, in (split, author, id) order (any input order, same
    numbers): coded columns and each pair's features. A build's compact rows
    (``dataset.compact.CompactRows``, which has ``coded``) are read column-wise, without a
    Python object per pair: the end step audits every pair of a large build at once."""

    split: _Coded
    author: _Coded
    strategy: _Coded
    genre: _Coded
    rows: Sequence[dict]
    order: np.ndarray | None = None  # compact rows: the sorted order of ``rows``

    @classmethod
    def of(cls, rows: Sequence[dict]) -> _Audited:
        if hasattr(rows, "coded"):
            split, author = _Coded(*rows.coded("split")), _Coded(*rows.coded("author_id"))
            order = np.lexsort((rows.ids(), author.ranks(str), split.ranks()))  # stable, as sorted()
            return cls(split.take(order), author.take(order), _Coded(*rows.coded("strategy")).take(order),
                       _Coded(*rows.coded("genre")).take(order), rows, order)
        rows = sorted(rows, key=lambda r: (r["split"], str(r["author_id"]), str(r.get("id"))))
        return cls(*(_Coded.of(r[name] for r in rows) for name in ("split", "author_id", "strategy", "genre")), rows)

    def differences(self, extra: Extra | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The pairs' features and, per row in audit order, its row of them (None: the same).
        Compact rows' own array is read through ``order``, never copied in sorted order."""
        if self.order is not None and extra is None:
            return self.rows.array("pair_features"), self.order
        return _differences(self.rows if self.order is None else [self.rows[i] for i in self.order.tolist()], extra), None

    def longer(self) -> np.ndarray:
        if self.order is not None:
            return self.rows.array("pair_longer")[self.order]
        return _longer(self.rows)


def _at(at: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """The rows of the features that the audit-order ``mask`` selects (``differences``' ``at``)."""
    return np.flatnonzero(mask) if at is None else at[mask]


def cross_validated(author: _Coded, x: np.ndarray, at: np.ndarray | None = None,
                    folds: int = CV_FOLDS) -> np.ndarray | None:
    """Each pair's confidence from a judge fitted on the other authors' pairs (authors dealt
    round-robin into ``folds`` groups, sorted by id: deterministic). None if too few authors.
    Pair ``i`` (in ``author``'s order) is row ``at[i]`` of ``x`` (row ``i`` if ``at`` is None)."""
    authors = author.present()
    if len(authors) < 2:
        return None
    group = np.zeros(len(author.values), dtype=np.int64)
    for i, a in enumerate(authors):
        group[author.values.index(a)] = i % min(folds, len(authors))
    g = group[author.codes]
    p = np.full(len(g), 0.5)
    for k in sorted(set(g.tolist())):
        train = g != k
        if train.sum() >= MIN_TRAIN_PAIRS:
            p[~train] = fit(x, rows=_at(at, train)).confidence(x, _at(at, ~train))
    return p


def _grouped(keys: _Coded, values: np.ndarray) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for k in keys.present():
        sel = values[keys.equals(k)]
        out[k] = {"n": len(sel), "accuracy": _rate(sel)}
    return out


def audit(rows: Sequence[dict], extra: Extra | None = None) -> dict | None:
    """The audit of a dataset's ``pairs`` rows (``chosen``, ``rejected``, ``split``,
    ``strategy``, ``genre``, ``author_id``); None when ``train`` has too few pairs to fit."""
    cols = _Audited.of(rows)
    is_train = cols.split.equals("train")
    if is_train.sum() < MIN_TRAIN_PAIRS:
        return None
    x, at = cols.differences(extra)
    judge = fit(x, rows=_at(at, is_train))
    hits = _hits(judge.confidence(x, at))
    test = ~is_train
    by_split = _grouped(cols.split, hits)
    by_split[TEST_SPLITS_ALL] = {"n": int(test.sum()), "accuracy": _rate(hits[test])}
    cv = cross_validated(cols.author, x, at)
    cv_hits = _hits(cv) if cv is not None else None
    longer = cols.longer()
    by_strategy = {}
    for s in cols.strategy.present():
        sel = cols.strategy.equals(s)
        by_strategy[s] = {
            "n_test": int((sel & test).sum()),
            "accuracy": _rate(hits[sel & test]),
            "n": int(sel.sum()),
            "cv_accuracy": _rate(cv_hits[sel]) if cv_hits is not None else None,
            "longer_chosen": _rate(longer[sel]),
        }
    return {
        "weights": {name: round(float(w), 4) for name, w in zip(_names(x.shape[1], extra), judge.weights)},
        "train_accuracy": _rate(hits[is_train]),
        "by_split": by_split,
        "by_strategy": by_strategy,
        "by_genre": _grouped(cols.genre.take(test), hits[test]),
        "cv_accuracy": _rate(cv_hits) if cv_hits is not None else None,
        "longer_chosen": _rate(longer),
    }

def _names(width: int, extra: Extra | None) -> list[str]:
    named = list(getattr(extra, "names", ()))
    return [*FEATURES, *(named[i] if i < len(named) else f"extra_{i}" for i in range(width - len(FEATURES)))]


def confident_shortcuts(rows: Sequence[dict], threshold: float, extra: Extra | None = None) -> dict[int, float]:
    """Row index -> the judge's probability for the chosen, for pairs the blind judge (fitted
    on the ``train`` rows) decides with confidence >= ``threshold`` either way: right
    (p >= threshold, the shortcut) or wrong (p <= 1 - threshold, its mirror). Dropping only
    the right ones would leave the opposite cue behind ("the shorter one wins"); dropping
    both keeps what is left balanced. Empty when train is too small to fit."""
    is_train = np.array([r.get("split") == "train" for r in rows], dtype=bool)
    if is_train.sum() < MIN_TRAIN_PAIRS:
        return {}
    x = pair_features([r["chosen"] for r in rows], [r["rejected"] for r in rows], extra)
    p = fit(x, rows=np.flatnonzero(is_train)).confidence(x)
    return {i: float(v) for i, v in enumerate(p) if max(v, 1 - v) >= threshold}

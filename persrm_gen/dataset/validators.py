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
                           earlier kept pair is >= near_dup_threshold (MinHash LSH + exact check,
                           ``dataset.minhash``)
9. ``blind_shortcut``     only with ``max_blind_confidence``: the context-blind judge
                           (``dataset.blind_audit``, fitted on the surviving ``train`` rows)
                           picks the chosen with probability >= that value, so the pair can be
                           told apart without the author (length, form); a pair it gets wrong
                           as confidently goes too, so no opposite cue is left behind. Refitted
                           on what is left until nothing more goes (at most ``blind_rounds``).

Only generated text is checked for duplicates and leakage: the author's real text appears
in several pairs on purpose (one per negative strategy) and is never "leaked". So does a
generated positive (``--positive mixed``) in the pairs of its own task: it is one text
facing each of the task's negatives; anywhere else (another task's positive, a negative)
it is a duplicate like any other (:func:`positive_task`). Likewise a minimal edit or axis
rewrite is a near copy of the chosen it was made from, and of that chosen's other rewrites,
by design: those are never near duplicates of each other (:func:`edit_families`), while
the same edit facing another task's pairs is.
Running ``validate_pairs`` on its own ``kept`` rows rejects nothing (with
``max_blind_confidence``, when the blind check settled within its rounds).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import numbers
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from persrm_gen.answer import format_ok, parse_verdict
from persrm_gen.dataset.blind_audit import confident_shortcuts
from persrm_gen.dataset.minhash import near_duplicate_pairs, tokens
from persrm_gen.dataset.schema import SPLITS, in_contract_order
from persrm_gen.textutil import normalized as normalize  # the identical-pair and duplicate checks' notion of "same text"

REASONS = (
    "bad_format",
    "label_inconsistent",
    "identical_pair",
    "copied_chosen",
    "leakage",
    "low_margin",
    "exact_duplicate",
    "near_duplicate",
    "blind_shortcut",
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
    # Drop pairs the context-blind judge gets right with at least this confidence; None: off
    # (the default: the audit is reported on every build, dropping is the user's call, see
    # README "Shortcuts" and benchmarks/README.md for what it costs in pairs).
    max_blind_confidence: float | None = None
    blind_rounds: int = 3


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

def text_hash(text: str) -> str:
    return text_digest(text).hex()


def text_digest(text: str) -> bytes:
    """``text_hash`` as its 16 raw bytes (``crosscheck`` keeps these in numpy arrays)."""
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).digest()


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


def positive_task(row: dict) -> tuple[str, str] | None:
    """(author_id, sample_id) when the row's chosen is generated: the task whose pairs all
    share that one positive, so repeating it among them is by design, not a duplicate."""
    if not is_generated(row.get("chosen_source")) or not row.get("sample_id"):
        return None
    return str(row.get("author_id")), str(row["sample_id"])


def edit_families(row: dict, config: ValidatorConfig | None = None) -> list[tuple | None]:
    """Per text of ``generated_texts(row)``: the family it belongs to, or None.

    A family is one task's chosen text and the rewrites made from it by design
    (``rewrite_strategies``: minimal edits, axis rewrites): (author_id, sample_id, hash of
    the chosen). Those texts are near copies of one another on purpose (an axis-punctuation
    rewrite has the same word shingles as its source), so the near-duplicate check does not
    compare them with each other; anything from another family still counts. A real chosen
    is never checked, but its rewrites are one family all the same (two edits of one text)."""
    config = config or ValidatorConfig()
    family = (str(row.get("author_id")), str(row.get("sample_id")), text_hash(row.get("chosen") or ""))
    rewrite = str(row.get("strategy") or "").startswith(config.rewrite_strategies)
    out = []
    if is_generated(row.get("chosen_source")):
        out.append(family if positive_task(row) else None)
    if is_generated(row.get("rejected_source")):
        out.append(family if rewrite else None)
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
    chosen, rejected = _tokens(row.get("chosen") or ""), _tokens(row.get("rejected") or "")
    sim = _similarity_at_least(chosen, rejected, config.copy_threshold)
    if sim >= config.copy_threshold:
        return f"rejected ({strategy}) has word similarity {sim:.2f} >= {config.copy_threshold} to the chosen"
    return None


@lru_cache(maxsize=2048)  # sizes: a shard's contexts stay, a candidate is reused within its target
def _tokens(text: str) -> tuple[str, ...]:
    """``tokens`` once per text: a chosen text is checked in every pair it is in (read only)."""
    return tuple(tokens(text))


@lru_cache(maxsize=2048)
def _gram_hashes(text: str, n: int) -> frozenset[int]:
    """Hashes of the text's word n-grams: the leak check's fast "nothing copied" test, per
    text, so a context sample shared by many pairs is split once. Equal grams hash equal,
    so disjoint hashes mean disjoint grams; a shared hash goes to the exact check."""
    toks = _tokens(text)
    return frozenset(map(hash, zip(*(toks[i:] for i in range(n)))))


@lru_cache(maxsize=256)
def _ngram_set(texts: tuple[str, ...], n: int) -> frozenset[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for t in texts:
        toks = _tokens(t)
        out.update(zip(*(toks[i:] for i in range(n))))
    return frozenset(out)


def leak_coverage(text: str, context: Sequence[str], n: int, allowed: Sequence[str] = ()) -> tuple[float, str | None]:
    """Share of the text's words inside spans of >= n words copied from the context, and the
    longest such span. Spans that also occur in ``allowed`` (say, the author's real chosen
    text, which a minimal edit inherits) are not counted."""
    toks = _tokens(text)
    if len(toks) < n:
        return 0.0, None
    mine = _gram_hashes(text, n)
    if all(mine.isdisjoint(_gram_hashes(c, n)) for c in context):  # the usual case, decided in C
        return 0.0, None
    src = _ngram_set(tuple(context), n)
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


def leaks(text: str, context: Sequence[str], config: ValidatorConfig,
          allowed: Sequence[str] = ()) -> tuple[float, str] | None:
    """(share of words copied, longest copied span) when ``text`` copies more of ``context``
    than ``config`` allows (the ``leakage`` rule), else None. The candidates stage applies
    the same rule to a generated positive before its negatives are bought."""
    frac, span = leak_coverage(text, context, config.leak_ngram, allowed)
    return (frac, span) if span is not None and frac > config.max_leak_fraction else None


def _leak_problem(row: dict, config: ValidatorConfig) -> str | None:
    context = list(row.get("context") or [])
    real_chosen = [] if is_generated(row.get("chosen_source")) else [row.get("chosen") or ""]
    for col, allowed in (("chosen", []), ("rejected", real_chosen)):
        if not is_generated(row.get(f"{col}_source")):
            continue
        if (leak := leaks(row.get(col) or "", context, config, allowed)) is not None:
            frac, span = leak
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


# --------------------------------------------------------------------------- cross-row checks


def _pair_key(row: dict) -> tuple[str, str]:
    return text_hash(row.get("chosen") or ""), text_hash(row.get("rejected") or "")


def exact_duplicates(rows: Sequence[dict], config: ValidatorConfig | None = None) -> dict[int, str]:
    """Row index -> detail, for rows whose generated candidate repeats (normalized) one of an
    earlier row that was not itself a duplicate. First occurrence wins, in row order.

    With ``allow_both_orders`` the same chosen/rejected pair may appear once per label (the
    builder's A/B-swapped copy); a third copy is a duplicate."""
    config = config or ValidatorConfig()
    seen = SeenTexts()
    labels: dict[tuple[str, str], set] = defaultdict(set)
    out: dict[int, str] = {}
    for i, row in enumerate(rows):
        hashes = [text_hash(t) for t in generated_texts(row)]
        task = positive_task(row)  # when set, hashes[0] is the positive
        key, label = _pair_key(row), row.get("label")
        hits = seen.hits(hashes, task)
        mirror = config.allow_both_orders and all(_pair_key(rows[j]) == key for j in hits)
        if hits and not (mirror and label not in labels[key]):
            out[i] = f"a generated candidate repeats one of pair {rows[hits[0]].get('id')}"
            continue
        seen.claim(i, hashes, task)
        labels[key].add(label)
    return out


class SeenTexts:
    """The exact-duplicate check's memory: each generated text's hash -> the first kept row
    holding it, and a generated positive's hash -> its task, whose other pairs repeat that
    positive by design (:func:`positive_task`). ``crosscheck`` keeps the same two maps as
    arrays over numbered hashes."""

    def __init__(self) -> None:
        self.first: dict[str, int] = {}
        self.task_of: dict[str, tuple[str, str]] = {}

    def hits(self, hashes: Sequence[str], task: tuple[str, str] | None) -> list[int]:
        """Earlier rows repeating one of ``hashes`` (``hashes[0]`` is the positive when ``task``)."""
        return [self.first[h] for k, h in enumerate(hashes)
                if h in self.first and not (k == 0 and task and self.task_of.get(h) == task)]

    def claim(self, i: int, hashes: Sequence[str], task: tuple[str, str] | None) -> None:
        for h in hashes:
            self.first.setdefault(h, i)
        if task:
            self.task_of.setdefault(hashes[0], task)


def near_duplicates(rows: Sequence[dict], config: ValidatorConfig | None = None) -> dict[int, str]:
    """Row index -> detail, for rows with a generated candidate near-duplicating one of an
    earlier row that is kept (greedy in row order: a rejected row claims nothing). The two
    orders of one pair (see exact_duplicates) are not near duplicates of each other, nor
    are a task's chosen and the rewrites made from it (``edit_families``)."""
    config = config or ValidatorConfig()
    texts, owner, family = [], [], []  # family: edit_families, else None
    for i, row in enumerate(rows):
        texts += generated_texts(row)
        family += edit_families(row, config)
        owner += [i] * (len(texts) - len(owner))
    keys = [_pair_key(r) for r in rows] if config.allow_both_orders else None
    neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for a, b, jac in near_duplicate_pairs(
        texts, config.near_dup_threshold, config.num_perm, config.shingle_size, config.seed
    ):
        ra, rb = sorted((owner[a], owner[b]))
        if ra == rb or (keys and keys[ra] == keys[rb] and rows[ra].get("label") != rows[rb].get("label")) \
                or (family[a] is not None and family[a] == family[b]):
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
    report.kept = _drop_blind_shortcuts(survivors, config, report)
    return report


def _drop_blind_shortcuts(rows: list[dict], config: ValidatorConfig, report: ValidationReport) -> list[dict]:
    """Rows left after the blind check (module docstring, 9); rejections go into ``report``."""
    if config.max_blind_confidence is None:
        return rows
    for _ in range(config.blind_rounds):
        hits = confident_shortcuts(rows, config.max_blind_confidence)
        if not hits:
            break
        for i in sorted(hits):
            side, conf = ("chosen", hits[i]) if hits[i] >= 0.5 else ("rejected", 1 - hits[i])
            detail = f"a judge that sees only the two responses picks the {side} with confidence {conf:.2f}"
            report.rejected.append(Rejection(str(rows[i].get("id")), "blind_shortcut", detail))
        rows = [r for i, r in enumerate(rows) if i not in hits]
    return rows


def in_split_order(by_split: dict[str, list[dict]]) -> list[dict]:
    """All rows, splits in SPLITS order (then any others by name): train first, so a test
    pair duplicating a train pair is the one rejected."""
    return [r for s in in_contract_order(by_split, SPLITS) for r in by_split[s]]


def load_pairs(folder: str | Path) -> list[dict]:
    """Rows of ``<folder>/data/pairs/*.parquet`` in split order."""
    from persrm_gen.dataset.reader import load_split_rows  # noqa: PLC0415 - pyarrow only when reading a folder

    return in_split_order(load_split_rows(Path(folder), "pairs"))


"""Pairwise evaluation of a reward model against baselines, on the dataset's ``pairs`` config.

    persrm-gen eval --model ckpt/rft --data out/ --split test_unseen_authors

Every pair is judged twice, once as stored and once with A and B swapped, which
measures position bias and order consistency and makes the labels exactly balanced.
Judges: the trained model (local generation), ``random``, ``stylometric`` (no LLM)
and optionally an API model zero-shot through the project's cached LLM client.
Every judge's accuracy is also split by the length ratio of the two responses, beside
what "pick the longer" would score (``length_control``), so a judge that learnt length
instead of style shows. Writes ``report.json``, ``accuracy.png`` and ``predictions.jsonl``
into ``--out``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic.dataclasses import dataclass as options_dataclass

from persrm_gen.answer import parse_verdict, reasoning_of
from persrm_gen.llm.base_url import BaseUrl
from persrm_gen.errors import InputError, InputIssue, UsageError
from persrm_gen.options_file import STRICT
from persrm_gen.redact import display_path
from persrm_gen.dataset.reader import available_splits, split_path
from persrm_gen.dataset.schema import TEST_SPLITS
from persrm_gen.trainers import common
from persrm_gen.trainers.common import Count, Whole
from persrm_gen.trainers.length_control import Judged, length_report, pick_longer_reference

FLIP = {"A": "B", "B": "A"}
BASELINES = ("random", "stylometric")
DEFAULT_MAX_LENGTH = 2048  # as the trainers' default


@dataclass(frozen=True)
class Item:
    """One pair in one presentation order."""

    pair_id: str
    order: str  # "ab" as stored, "ba" swapped
    split: str
    genre: str
    author_id: str
    context: tuple[str, ...]
    query: str
    response_a: str
    response_b: str
    label: str

    def messages(self) -> list[dict]:
        from persrm_gen.prompts.judge import judge_messages

        return judge_messages(self.context, self.query, self.response_a, self.response_b)


@dataclass
class Judgment:
    verdict: str | None  # None: the output had no single well-formed answer
    text: str | None = None  # the reasoning trace, for judges that write one
    forced: str | None = None  # for unparsable outputs: the verdict read off the model's next-token odds


class Judge(Protocol):
    name: str

    def judge(self, items: Sequence[Item]) -> list[Judgment]: ...


def load_items(data_dir: str | Path, splits: Sequence[str], limit: int | None = None) -> list[Item]:
    """Both orders of every pair in ``splits`` (at most ``limit`` pairs per split)."""
    items: list[Item] = []
    for split in splits:
        rows = common.load_split(data_dir, "pairs", split)
        common.require_columns(
            rows, str(split_path(data_dir, "pairs", split)),
            ("id", "author_id", "genre", "query", "context", "response_a", "response_b", "label"),
        )  # fmt: skip
        if limit is not None:
            rows = rows.select(range(min(limit, len(rows))))
        for r in rows:
            base = dict(pair_id=r["id"], split=split, genre=r["genre"], author_id=r["author_id"],
                        context=tuple(r["context"]), query=r["query"])  # fmt: skip
            label = str(r["label"]).strip().upper()
            items.append(Item(order="ab", response_a=r["response_a"], response_b=r["response_b"], label=label, **base))
            items.append(
                Item(order="ba", response_a=r["response_b"], response_b=r["response_a"], label=FLIP[label], **base)
            )
    return items


# ----------------------------------------------------------------- judges


class RandomJudge:
    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def judge(self, items):
        return [Judgment(self.rng.choice("AB")) for _ in items]


class StylometricJudge:
    name = "stylometric"

    def judge(self, items):
        from persrm_gen.style import baseline_judge

        return [Judgment(baseline_judge(list(i.context), i.response_a, i.response_b)) for i in items]


class ModelJudge:
    """Greedy generation with a local causal LM, batched, through its chat template.

    Prompts are batched in order of length (less padding), and generation stops at the
    first ``</answer>``. Where the output has no parsable verdict (a weak model that
    loops, or runs out of tokens), the judge also reads a *forced* verdict: the more
    likely of ``A`` and ``B`` right after ``</think><answer>`` appended to what it wrote.
    Strict accuracy still counts those outputs as wrong; the forced verdict is reported
    beside it, so a model that has learnt a preference but not the format is visible.
    """

    FORCE_SUFFIX = "\n</think>\n<answer>"

    def __init__(self, model_dir: Path, *, batch_size: int = 8, max_new_tokens: int = 512, name: str = "model"):
        import torch

        self.name = name
        self.model, self.tokenizer = common.load_model_and_tokenizer(model_dir, for_training=False)
        self.tokenizer.padding_side = "left"
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens

    def _prompt(self, item: Item) -> str:
        return self.tokenizer.apply_chat_template(item.messages(), add_generation_prompt=True, tokenize=False)

    def _encode(self, texts: list[str]):
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def _batches(self, prompts: list[str]):
        """Index batches, shortest prompts first."""
        order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def judge(self, items):
        import torch

        prompts = [self._prompt(i) for i in items]
        texts: list[str] = [""] * len(items)
        for idx in self._batches(prompts):
            enc = self._encode([prompts[k] for k in idx])
            stop = _StopAfterAnswer(self.tokenizer, enc["input_ids"].shape[1])
            with torch.no_grad():
                out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=[stop])  # fmt: skip
            decoded = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for k, text in zip(idx, decoded, strict=True):
                texts[k] = text
        judgments = [Judgment(parse_verdict(t), t) for t in texts]
        failed = [k for k, j in enumerate(judgments) if j.verdict is None]
        for k, forced in zip(failed, self.forced_verdicts([prompts[k] + texts[k] for k in failed]), strict=True):
            judgments[k].forced = forced
        return judgments

    def forced_verdicts(self, contexts: list[str]) -> list[str | None]:
        """A or B, whichever the model finds likelier right after ``</think><answer>``
        (None for all when the tokenizer does not spell A and B as single tokens)."""
        import torch

        a_ids, b_ids = (self.tokenizer.encode(x, add_special_tokens=False) for x in ("A", "B"))
        if not contexts or len(a_ids) != 1 or len(b_ids) != 1 or a_ids == b_ids:
            return [None] * len(contexts)
        full = [c + self.FORCE_SUFFIX for c in contexts]
        verdicts: list[str | None] = [None] * len(full)
        for idx in self._batches(full):
            enc = self._encode([full[k] for k in idx])
            with torch.no_grad():
                # Only the last position: full logits would be batch x length x vocabulary floats.
                last = self.model(**enc, logits_to_keep=1).logits[:, -1, :]  # left padding: the real end
            for k, a, b in zip(idx, last[:, a_ids[0]].tolist(), last[:, b_ids[0]].tolist(), strict=True):
                verdicts[k] = "A" if a >= b else "B"
        return verdicts


class _StopAfterAnswer:
    """Stop each row once its generated text holds ``</answer>``.

    transformers' ``stop_strings`` needs a tokenizer with SentencePiece-style prefixes;
    decoding the last few generated tokens works with any tokenizer.
    """

    def __init__(self, tokenizer, prompt_length: int, window: int = 8):
        self.tokenizer, self.prompt_length, self.window = tokenizer, prompt_length, window

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_length :][:, -self.window :]
        tails = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return torch.tensor(["</answer>" in t for t in tails], dtype=torch.bool, device=input_ids.device)


class ApiJudge:
    """A hosted (or OpenAI-compatible) model as a zero-shot judge, through the cached LLM client."""

    def __init__(self, transport, cache_path: Path, model: str, *, max_tokens: int = 1024, concurrency: int = 32):
        from persrm_gen.llm.cache import RequestCache
        from persrm_gen.llm.client import LLMClient
        from persrm_gen.prompts.renderer import PromptRenderer

        self.name = f"api:{model}"
        self.model, self.max_tokens = model, max_tokens
        self.client = LLMClient(transport, RequestCache(cache_path), concurrency=concurrency)
        self.template_hash = PromptRenderer().template_hash("judge")

    def _request(self, item: Item):
        from persrm_gen.llm.types import LLMRequest, Message

        msgs = tuple(Message(m["role"], m["content"]) for m in item.messages())
        return LLMRequest(model=self.model, messages=msgs, max_tokens=self.max_tokens, temperature=0.0,
                          stage="eval-judge", template_hashes=(self.template_hash,))  # fmt: skip

    def judge(self, items):
        async def run():
            try:
                return await self.client.complete_many([self._request(i) for i in items])
            finally:
                await self.client.aclose()

        responses = asyncio.run(run())
        return [Judgment(parse_verdict(r.text), r.text) for r in responses]


# ----------------------------------------------------------------- metrics


def _accuracy(pairs: list[tuple[Item, Judgment]]) -> dict:
    return {"accuracy": sum(j.verdict == i.label for i, j in pairs) / len(pairs), "n": len(pairs)}


def _grouped(pairs, key) -> dict[str, dict]:
    groups: dict[str, list] = defaultdict(list)
    for i, j in pairs:
        groups[getattr(i, key)].append((i, j))
    return {k: _accuracy(v) for k, v in sorted(groups.items())}


def _both_orders(pairs: list[tuple[Item, Judgment]]) -> list[dict[str, tuple[Item, Judgment]]]:
    """Each pair judged in both orders, as {"ab": (item, judgment), "ba": (item, judgment)}."""
    by_pair: dict[tuple[str, str], dict[str, tuple[Item, Judgment]]] = defaultdict(dict)
    for i, j in pairs:
        by_pair[(i.split, i.pair_id)][i.order] = (i, j)
    return [d for d in by_pair.values() if len(d) == 2]


def _order_consistency(both: list[dict[str, tuple[Item, Judgment]]], verdict) -> float:
    """Share of pairs whose two orders pick the same underlying response (the verdict flips)."""
    def consistent(d) -> bool:
        ab, ba = verdict(d["ab"][1]), verdict(d["ba"][1])
        return ab is not None and ba == FLIP.get(ab)

    return sum(map(consistent, both)) / max(1, len(both))


def _reasoning_words(text: str) -> int:
    """Words of reasoning; an unclosed ``<think>`` (a run that hit its token limit) counts too."""
    closed = reasoning_of(text)
    if closed or "<think>" not in text:
        return len(closed.split())
    return len(text.split("<think>", 1)[1].split())


def _judged(items: Sequence[Item], verdicts: Sequence[str | None]) -> list[Judged]:
    return [Judged(i.response_a, i.response_b, i.label, v) for i, v in zip(items, verdicts, strict=True)]


def score(items: Sequence[Item], judgments: Sequence[Judgment]) -> dict:
    """Accuracy (parse failures count as wrong) overall and by split, genre, author and
    length ratio; order effects; how often the judge picks the longer response."""
    pairs = list(zip(items, judgments, strict=True))
    parsed = [j.verdict for j in judgments if j.verdict is not None]
    both = _both_orders(pairs)
    traces = [j.text for j in judgments if j.text is not None]
    # Parse failures resolved by the forced verdict where the judge gives one (local models).
    forced = lambda j: j.verdict or j.forced  # noqa: E731
    return {
        "status": "ok",
        **_accuracy(pairs),
        "accuracy_forced": _accuracy([(i, Judgment(forced(j))) for i, j in pairs])["accuracy"],
        "pair_accuracy": sum(all(j.verdict == i.label for i, j in d.values()) for d in both) / max(1, len(both)),
        "order_consistency": _order_consistency(both, lambda j: j.verdict),
        "order_consistency_forced": _order_consistency(both, forced),
        "a_rate": parsed.count("A") / max(1, len(parsed)),
        "position_bias": parsed.count("A") / max(1, len(parsed)) - 0.5,
        "parse_failure_rate": 1 - len(parsed) / len(pairs),
        "mean_reasoning_words": (sum(_reasoning_words(t) for t in traces) / len(traces)) if traces else None,
        "by_split": _grouped(pairs, "split"),
        "by_genre": _grouped(pairs, "genre"),
        "by_author": _grouped(pairs, "author_id"),
        "length": length_report(_judged(items, [j.verdict for j in judgments])),
    }


# ----------------------------------------------------------------- the run


@options_dataclass(config=STRICT)
class EvalOptions:
    data: str
    model: str | None = None  # None: baselines (and the API judge) only
    splits: list[str] = field(default_factory=list)  # empty: every test split in the folder
    out: str | None = None  # default: the model folder
    limit: Count | None = None  # pairs per split
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    judge_backend: str | None = None  # "openai" | "anthropic": an API model as zero-shot judge
    judge_model: str | None = None
    judge_base_url: BaseUrl = None
    batch_size: Count = 8
    max_new_tokens: Count = 512
    max_length: Count | None = None  # prompt + generated tokens; None: the model's training --max-length, else 2048
    behaviours: bool = False
    compare_to: str | None = None  # an earlier report.json (before RFT) to diff behaviours against
    seed: Whole = 0


def _out_dir(opts: EvalOptions, model_dir: Path | None) -> Path:
    if opts.out:
        return Path(opts.out)
    if model_dir is None:
        raise UsageError("eval without --model needs --out for the report")
    from persrm_gen.llm.transports.local_model import cache_root

    if model_dir.resolve().is_relative_to(cache_root().resolve()):
        raise UsageError("evaluating the embedded model needs --out (its cache folder is not a place for reports)")
    return model_dir


def _max_length(opts: EvalOptions, model_dir: Path) -> int:
    """--max-length, else the one the checkpoint was trained with (persrm_train.json), else 2048."""
    if opts.max_length is not None:
        return opts.max_length
    from persrm_gen.cards.model_card import TRAIN_INFO

    try:
        trained = json.loads((model_dir / TRAIN_INFO).read_text(encoding="utf-8"))["options"]["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_LENGTH
    return trained if isinstance(trained, int) and trained > 0 else DEFAULT_MAX_LENGTH


def _fit(items: list[Item], judge: ModelJudge, opts: EvalOptions, model_dir: Path):
    """Items whose prompts leave room for --max-new-tokens within --max-length, for every judge alike."""
    from persrm_gen.trainers import fitting

    max_length = _max_length(opts, model_dir)
    if max_length <= opts.max_new_tokens:
        raise UsageError(f"--max-length ({max_length}) must be larger than --max-new-tokens ({opts.max_new_tokens}): "
                         "the prompt needs room too")  # fmt: skip
    items, report = fitting.fit_pairs(items, judge.tokenizer, max_length=max_length,
                                      budget=max_length - opts.max_new_tokens)  # fmt: skip
    common.report_fitting(report, "test pair")
    return items, report


def _judges(opts: EvalOptions, out: Path) -> list:
    """The baselines and the API judge (the model judge is made first, to fit the items)."""
    judges: list = []
    for name in opts.baselines:
        if name == "random":
            judges.append(RandomJudge(opts.seed))
        else:
            judges.append(StylometricJudge())
    if opts.judge_backend:
        from persrm_gen.llm.backends import make_transport

        if not opts.judge_model:
            raise UsageError("--judge-backend needs --judge-model")
        transport = make_transport(opts.judge_backend, opts.judge_model, opts.judge_base_url)
        judges.append(ApiJudge(transport, out / "judge_cache.sqlite", opts.judge_model))
    return judges


def _check_compare_to(path: str | None) -> None:
    """--compare-to is read after every judge ran: check it before that."""
    if path is None:
        return
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable JSON report"
        raise InputError(InputIssue("--compare-to", None, f"{display_path(path)}: {reason}")) from None
    if not isinstance(data, dict):
        raise InputError(InputIssue("--compare-to", None, f"{display_path(path)}: not an eval report.json"))


def evaluate(opts: EvalOptions, *, extra_judges: Sequence = ()) -> dict:
    """Run every judge on both orders of every pair; write report, plot, predictions, card."""
    common.check_data_dir(opts.data)
    model_dir = common.resolve_model_dir(opts.model)[0] if opts.model else None
    splits = opts.splits or [s for s in TEST_SPLITS if s in available_splits(opts.data, "pairs")]
    if not splits:
        raise UsageError(f"{opts.data} has no test splits in data/pairs/; pass --split")
    unknown = [b for b in opts.baselines if b not in BASELINES]
    if unknown:
        raise UsageError(f"unknown baseline {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    _check_compare_to(opts.compare_to)
    out = _out_dir(opts, model_dir)
    if out.exists() and not out.is_dir():
        raise InputError(InputIssue("--out", None, f"{display_path(out)} is a file, not a folder"))
    items = load_items(opts.data, splits, opts.limit)
    judges: list = []
    fit = None
    if model_dir is not None:
        judges.append(ModelJudge(model_dir, batch_size=opts.batch_size, max_new_tokens=opts.max_new_tokens))
        items, fit = _fit(items, judges[0], opts, model_dir)
    out.mkdir(parents=True, exist_ok=True)
    judges += _judges(opts, out)
    results: dict[str, dict] = {}
    predictions = []
    for judge in [*judges, *extra_judges]:
        started = time.monotonic()
        judgments = judge.judge(items)
        results[judge.name] = score(items, judgments) | {"seconds": round(time.monotonic() - started, 2)}
        predictions += [{"judge": judge.name, "pair_id": i.pair_id, "split": i.split, "order": i.order,
                         "label": i.label, "verdict": j.verdict, "forced": j.forced, "text": j.text}
                        for i, j in zip(items, judgments, strict=True)]  # fmt: skip
    report = {
        "model": display_path(model_dir) if model_dir else None,
        "data": display_path(opts.data),
        "splits": splits,
        "n_pairs": {s: sum(1 for i in items if i.split == s and i.order == "ab") for s in splits},
        "fitting": fit.as_dict() if fit is not None else None,
        "length": pick_longer_reference(_judged(items, [None] * len(items))),
        "judges": results,
        "options": common.options_dict(opts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if opts.behaviours:
        report["behaviours"] = _behaviours(predictions, opts.compare_to)
    _write_outputs(out, report, predictions)
    if model_dir is not None and out.resolve() == model_dir.resolve():
        from persrm_gen.cards.model_card import write_card

        write_card(model_dir)
    return report


def _behaviours(predictions: list[dict], compare_to: str | None) -> dict:
    from persrm_gen.trainers.behaviours import behaviour_report, compare_behaviours

    by_judge: dict[str, list[str]] = defaultdict(list)
    for p in predictions:
        if p["text"] is not None:
            by_judge[p["judge"]].append(p["text"])
    result = {name: behaviour_report(texts) for name, texts in by_judge.items()}
    if compare_to and "model" in result:
        before = json.loads(Path(compare_to).read_text(encoding="utf-8")).get("behaviours", {}).get("model")
        if before:
            result["model_change"] = compare_behaviours(before, result["model"])
    return result


def _write_outputs(out: Path, report: dict, predictions: list[dict]) -> None:
    common.write_json(out / "report.json", report)
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    plot_accuracy(report, out / "accuracy.png")


def plot_accuracy(report: dict, path: Path) -> Path:
    """Grouped bars: accuracy per split (and overall) for the model and each baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judges = {k: v for k, v in report["judges"].items() if v.get("status") == "ok"}
    groups = [*report["splits"], "overall"]
    width = 0.8 / max(1, len(judges))
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(groups)), 4))
    for k, (name, m) in enumerate(judges.items()):
        values = [m["by_split"].get(s, {}).get("accuracy", 0.0) for s in report["splits"]] + [m["accuracy"]]
        ax.bar([g + k * width for g in range(len(groups))], values, width, label=name)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks([g + width * (len(judges) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy (both orders)")
    ax.set_title("Personalized reward model: accuracy by split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

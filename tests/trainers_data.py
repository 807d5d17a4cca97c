"""Synthetic dataset folders in the persrm-gen output contract, for the trainer tests.

Two invented authors with unmistakable habits (one shouts, one whispers) so that the
right answer is learnable and the stylometric cues are real.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from persrm_gen.answer import make_trace
from persrm_gen.prompts.judge import judge_messages

WORDS = "river stone light wind road field house tree cloud rain".split()


def _text(author: str, rng: random.Random, n: int = 6) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    if author == "loud":
        return " ".join(w.upper() for w in words) + " !"
    return " ".join(words) + " ..."


def _sample(author: str, rng: random.Random, sentences: int) -> str:
    """A writing sample of ``sentences`` sentences (long ones make rows outgrow --max-length)."""
    return " ".join(_text(author, rng) for _ in range(sentences))


def pair_rows(split: str, n: int, seed: int, genre: str = "essay", context_sentences: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        author = ("loud", "quiet")[i % 2]
        other = "quiet" if author == "loud" else "loud"
        chosen, rejected = _text(author, rng), _text(other, rng)
        label = "A" if rng.random() < 0.5 else "B"
        a, b = (chosen, rejected) if label == "A" else (rejected, chosen)
        # A short, regular trace: a tiny model learns the format in a few dozen steps.
        reason = "capitals" if author == "loud" else "softly"
        rows.append(
            {
                "id": f"{split}-{i}",
                "author_id": author if split != "test_unseen_authors" else f"{author}-new",
                "genre": genre,
                "query": "Write about the weather .",
                "context": [_sample(author, rng, context_sentences), _sample(author, rng, context_sentences)],
                "chosen": chosen,
                "rejected": rejected,
                "chosen_source": "author",
                "rejected_source": "other-author",
                "response_a": a,
                "response_b": b,
                "label": label,
                "rationale": make_trace(reason, label),
                "style_margin": 0.5,
                "split": split,
                "strategy": "other-author",
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_dataset(folder: Path, sizes: dict[str, int] | None = None, *, context_sentences: int = 1) -> Path:
    """Write pairs/sft/rft configs for each split, a card and a manifest; return the folder."""
    sizes = sizes or {"train": 16, "test_seen_authors": 4, "test_unseen_authors": 4}
    for k, (split, n) in enumerate(sizes.items()):
        pairs = pair_rows(split, n, seed=k, context_sentences=context_sentences)
        sft, rft = [], []
        for p in pairs:
            prompt = judge_messages(p["context"], p["query"], p["response_a"], p["response_b"])
            sft.append({"prompt": prompt, "completion": [{"role": "assistant", "content": p["rationale"]}]})
            rft.append({"prompt": prompt, "label": p["label"]})
        _write(folder / "data" / "pairs" / f"{split}.parquet", pairs)
        _write(folder / "data" / "sft" / f"{split}.parquet", sft)
        _write(folder / "data" / "rft" / f"{split}.parquet", rft)
    configs = "\n".join(
        f"- config_name: {c}\n  data_files:\n"
        + "\n".join(f"  - split: {s}\n    path: data/{c}/{s}.parquet" for s in sizes)
        for c in ("pairs", "sft", "rft")
    )
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}\n---\n# synthetic\n")
    (folder / "manifest.json").write_text(json.dumps({"backend": "synthetic", "model": "none", "seed": 0}))
    return folder


def corpus(folder: Path) -> list[str]:
    """Every text the tiny tokenizer must know: prompts, completions and chat-template markers."""
    texts = []
    for path in (folder / "data" / "sft").glob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            texts += [m["content"] for m in row["prompt"]] + [row["completion"][0]["content"]]
    return texts + ["<start_of_turn> user model <end_of_turn> <think> </think> <answer> A B </answer>"]


def trainer_workspace(root: Path, **dataset: object) -> Path:
    """``root/data`` (a built dataset) and ``root/tiny`` (a tiny Gemma 3 with its tokenizer);
    ``dataset`` goes to :func:`write_dataset` (``sizes``, ``context_sentences``)."""
    from persrm_gen.trainers.tiny import build_random_model

    write_dataset(root / "data", **dataset)
    build_random_model(root / "tiny", corpus(root / "data"))
    return root

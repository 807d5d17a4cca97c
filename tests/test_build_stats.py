"""A build validates each row once and measures each pair's style comparison once: the rationales stage compares the
pair, and the card's stats reuse that verdict; ``persrm-gen stats OUT`` measures it again
from the folder and must agree with the card."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from fakeserver import KEY, FakeServer
from example_corpus import write_example_slice
from test_build_api import persona

from persrm_gen import style
from persrm_gen.cards.dataset_card import write_dataset_card
from persrm_gen.dataset import validators
from persrm_gen.dataset.stats_report import load_stats
from persrm_gen.dataset.validators import load_pairs
from persrm_gen.generator import rationales
from persrm_gen.pipeline import validate
from persrm_gen.pipeline.build import run_build
from persrm_gen.pipeline.options import BuildOptions


def _authors(tmp_path: Path) -> Path:
    return write_example_slice(tmp_path / "authors.jsonl", first=3, last=2, samples=4)


def test_a_build_validates_and_compares_each_pair_once_and_its_card_stats_match_the_folder(tmp_path, monkeypatch):
    calls: Counter = Counter()
    real = style.compare
    validated: Counter = Counter()
    real_validate = validators.validate_pairs

    def counting_validate(rows, config=None):
        rows = list(rows)
        validated.update(r["id"] for r in rows)
        return real_validate(rows, config)

    for module in (validators, validate):  # every content check (MinHash included) runs in here
        monkeypatch.setattr(module, "validate_pairs", counting_validate)

    def counting(context, a, b):
        calls[(tuple(context), a, b)] += 1
        return real(context, a, b)

    # the rationales stage and the stats' style judge (style.baseline_judge); the start-up
    # template check renders one stand-in pair and is not per-pair work
    monkeypatch.setattr(style, "compare", counting)
    monkeypatch.setattr(rationales, "compare", counting)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        opts = BuildOptions(authors=_authors(tmp_path), out=out, backend="openai", model="gpt-4.1-mini",
                            base_url=server.openai_base, context_size=2, test_authors="1", timeout=5)
        run_build(opts, quiet=True)
    rows = load_pairs(out)
    assert rows
    assert validated and set(validated.values()) == {1}
    assert [calls[(tuple(r["context"]), r["response_a"], r["response_b"])] for r in rows] == [1] * len(rows)

    monkeypatch.setattr(style, "compare", real)
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "README.md").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    write_dataset_card(again, manifest, load_stats(again))  # the stats measured from the folder
    assert (again / "README.md").read_bytes() == (out / "README.md").read_bytes()


def test_the_end_step_reads_compact_rows_and_measures_no_text(tmp_path, monkeypatch):
    """Each shard measures its pairs once when it finishes (``.shards/NNNNN/stats.parquet``);
    the end step (cross-shard checks, manifest, card) must not measure a text again, so its
    memory does not grow with the texts of the whole dataset."""
    from persrm_gen.dataset import blind_audit
    from persrm_gen.pipeline import build

    def no_text(*_args, **_kwargs):
        raise AssertionError("the end step measured texts again")

    real_write = build.write_dataset
    seen: list[bool] = []

    def end_step(*args, **kwargs):
        shards = kwargs["compact_of"].__self__.root
        seen.extend((shards / f"{i:05d}" / "stats.parquet").is_file() for i in range(len(args[1])))
        with monkeypatch.context() as m:
            for name in ("pair_features", "longer_chosen", "text_features"):
                m.setattr(blind_audit, name, no_text)
            return real_write(*args, **kwargs)

    monkeypatch.setattr(build, "write_dataset", end_step)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        opts = BuildOptions(authors=_authors(tmp_path), out=out, backend="openai", model="gpt-4.1-mini",
                            base_url=server.openai_base, context_size=2, test_authors="1", timeout=5, shard_authors=2)
        run_build(opts, quiet=True)
    assert len(seen) == 3 and all(seen)  # 5 authors in shards of 2, each with its compact rows
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shortcuts"]["blind_audit"]["longer_chosen"] is not None  # the audit ran, from compact rows
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "README.md").unlink()
    write_dataset_card(again, manifest, load_stats(again))  # measured from the texts of the folder
    assert (again / "README.md").read_bytes() == (out / "README.md").read_bytes()

"""The dataset card: Hub YAML that makes load_dataset work per config, body, and merging."""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from persrm_gen.cards.dataset_card import render_dataset_card, size_category, write_dataset_card
from persrm_gen.cards.merge import parse_card

MSG = pa.struct([("role", pa.string()), ("content", pa.string())])

SPLITS = {"train": 6, "test_seen_authors": 2, "test_unseen_authors": 3}


def _pairs(n: int, split: str) -> pa.Table:
    return pa.table({
        "id": [f"{split}-{i}" for i in range(n)],
        "author_id": ["a"] * n,
        "genre": ["news"] * n,
        "query": ["q"] * n,
        "context": [["s1", "s2"]] * n,
        "chosen": ["c"] * n,
        "rejected": ["r"] * n,
        "chosen_source": ["real"] * n,
        "rejected_source": ["mimic"] * n,
        "response_a": ["c"] * n,
        "response_b": ["r"] * n,
        "label": ["A" if i % 2 else "B" for i in range(n)],
        "rationale": ["because"] * n,
        "style_margin": [0.1 * i for i in range(n)],
        "split": [split] * n,
    })


def _messages(n: int, role: str) -> list:
    return [[{"role": role, "content": f"m{i}"}] for i in range(n)]


TABLES = {
    "pairs": _pairs,
    "sft": lambda n, s: pa.table({"prompt": pa.array(_messages(n, "user"), pa.list_(MSG)),
                                  "completion": pa.array(_messages(n, "assistant"), pa.list_(MSG))}),
    "rft": lambda n, s: pa.table({"prompt": pa.array(_messages(n, "user"), pa.list_(MSG)),
                                  "label": ["A"] * n}),
    "preference": lambda n, s: pa.table({"prompt": pa.array(_messages(n, "user"), pa.list_(MSG)),
                                         "chosen": pa.array(_messages(n, "assistant"), pa.list_(MSG)),
                                         "rejected": pa.array(_messages(n, "assistant"), pa.list_(MSG))}),
}


def make_manifest(**over) -> dict:
    m = {
        "persrm_gen_version": "0.1.0", "created": "2025-06-01T12:00:00+00:00",
        "command": "persrm-gen build --authors authors.jsonl --seed 3",
        "backend": "openai", "model": "gpt-4.1-mini", "base_url": None, "seed": 3, "context_size": 4,
        "negatives": ["mimic", "randomize", "minimal_edit"], "positive": "real",
        "templates": {"judge": "a" * 64, "mimic": "b" * 64},
        "splits": {"test_authors": ["zed"], "holdout_genre": None},
        "counts": {c: dict(SPLITS) for c in TABLES},
        "rejections": {"duplicate": 4, "leakage": 1},
        "usage": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.01},
        "versions": {"datasets": "5.2.0"}, "license": None, "language": None,
    }
    m.update(over)
    return m


def make_stats(n_pairs: int = 11) -> dict:
    return {
        "n_pairs": n_pairs, "by_split": dict(SPLITS),
        "by_strategy": {"mimic": 5, "randomize": 4, "minimal_edit": 2},
        "by_genre": {"news": n_pairs}, "ab_balance": {"A": 5, "B": 6},
        "style_margin": {"mean": 0.21, "p10": 0.01, "p50": 0.2, "p90": 0.44, "min": -0.05, "max": 0.6},
        "rejections": {"duplicate": 4, "leakage": 1},
        "baseline_accuracy": {"train": 0.62, "test_seen_authors": 0.5, "test_unseen_authors": 0.58, "all": 0.6},
        "authors": {"train": 3, "test_seen_authors": 2, "test_unseen_authors": 1, "all": 4},
    }


def build_folder(out: Path, configs=tuple(TABLES)) -> Path:
    for cfg in configs:
        (out / "data" / cfg).mkdir(parents=True)
        for split, n in SPLITS.items():
            pq.write_table(TABLES[cfg](n, split), out / "data" / cfg / f"{split}.parquet")
    return out


def front(text: str) -> dict:
    return parse_card(text).meta


def test_size_category_buckets():
    assert size_category(0) == "n<1K"
    assert size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(54_321) == "10K<n<100K"
    assert size_category(2_000_000) == "1M<n<10M"


def test_every_config_loads_with_load_dataset(tmp_path):
    from datasets import load_dataset

    out = build_folder(tmp_path / "out")
    write_dataset_card(out, make_manifest(), make_stats())
    for cfg, make in TABLES.items():
        ds = load_dataset(str(out), cfg, cache_dir=str(tmp_path / "cache"))
        assert set(ds) == set(SPLITS)
        for split, n in SPLITS.items():
            assert ds[split].num_rows == n
        assert ds["train"].column_names == make(1, "train").column_names
    # 'pairs' is the default config, so a bare load_dataset picks it.
    assert "style_margin" in load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"].column_names


def test_yaml_header(tmp_path):
    out = build_folder(tmp_path / "out", configs=("pairs", "rft"))
    meta = front(write_dataset_card(out, make_manifest(), make_stats()).read_text())
    assert meta["license"] == "other"
    assert meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]
    assert set(meta["tags"]) >= {"personalization", "reward-modeling", "preference", "synthetic", "persrm"}
    assert [c["config_name"] for c in meta["configs"]] == ["pairs", "rft"]  # only configs present
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "data/pairs/train.parquet"}
    assert meta["configs"][0]["default"] is True
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    pairs_features = {f["name"]: f for f in infos["pairs"]["features"]}
    assert pairs_features["context"] == {"name": "context", "list": "string"}
    assert pairs_features["style_margin"]["dtype"] == "float64"
    rft_prompt = {f["name"]: f for f in infos["rft"]["features"]}["prompt"]
    assert rft_prompt["list"] == [{"name": "role", "dtype": "string"}, {"name": "content", "dtype": "string"}]
    assert {s["name"]: s["num_examples"] for s in infos["pairs"]["splits"]} == SPLITS


def test_body_reports_manifest_and_stats():
    manifest = make_manifest(license="cc-by-4.0", language=["en", "de"],
                             splits={"test_authors": ["zed"], "holdout_genre": "speech"})
    text = render_dataset_card(manifest, make_stats())
    meta, body = front(text), parse_card(text).body
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["en", "de"]
    for needle in ("gpt-4.1-mini", "openai", "a" * 64, "mimic | 5 | 45.5%", "duplicate | 4",
                   "| test_unseen_authors | 3 | 1 | 0.580 |", "A 5, B 6", "| 0.210 | -0.050 |",
                   "2508.14076", "PersRM-R1: Enhance Personalized Reward Modeling with Reinforcement Learning",
                   "## Personal data", "private", "impersonate", "genre `speech`", "persrm-gen build --authors"):
        assert needle in body, needle
    # configs without scanned files come from the manifest counts
    assert [c["config_name"] for c in meta["configs"]] == ["pairs", "sft", "rft", "preference"]


def test_values_are_data_not_template_or_markup():
    manifest = make_manifest(model="{{ 7*7 }} | x --> <!-- persrm-gen:end stats -->",
                             base_url="https://user:s3cret@llm.example:8443/v1?api_key=zzz")
    text = render_dataset_card(manifest, make_stats())
    assert "{{ 7*7 }}" in text and "49" not in text.split("## How it was made")[1].split("| seed")[0]
    assert text.count("<!-- persrm-gen:end stats -->") == 1
    assert "s3cret" not in text and "zzz" not in text
    assert "https://llm.example:8443/v1" in text


def test_minimal_inputs_render():
    text = render_dataset_card({}, {})
    assert front(text)["size_categories"] == ["n<1K"]
    assert "## Citation" in text


def test_regeneration_keeps_user_edits_and_refreshes_machine_keys(tmp_path):
    out = build_folder(tmp_path / "out", configs=("pairs",))
    path = write_dataset_card(out, make_manifest(), make_stats())
    text = path.read_text()
    meta = front(text)
    meta["license"] = "mit"
    meta["tags"] = ["my-tag"]
    meta["homepage_note"] = "kept"
    meta["size_categories"] = ["bogus"]
    body = parse_card(text).body
    body = body.replace("## Intended use", "## Intended use")  # unchanged section
    body = "My own intro paragraph.\n\n" + body
    body = body.replace("## Statistics", "## Statistics\n\nUSER TEXT INSIDE STATS")
    body += "\n## Notes from the maintainer\n\nHand-written notes.\n"
    path.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body)

    (out / "data" / "sft").mkdir()
    pq.write_table(TABLES["sft"](4, "train"), out / "data" / "sft" / "train.parquet")
    stats = make_stats(n_pairs=12_345)
    stats["by_strategy"] = {"mimic": 12_345}
    new = write_dataset_card(out, make_manifest(license="apache-2.0"), stats).read_text()
    meta2 = front(new)
    assert meta2["license"] == "mit"  # user edit wins over the new manifest value
    assert meta2["homepage_note"] == "kept"
    assert meta2["tags"][0] == "my-tag" and "persrm" in meta2["tags"]
    assert meta2["size_categories"] == ["10K<n<100K"]  # machine-owned: refreshed
    assert [c["config_name"] for c in meta2["configs"]] == ["pairs", "sft"]
    assert "My own intro paragraph." in new and "Hand-written notes." in new
    assert "USER TEXT INSIDE STATS" not in new  # inside markers: regenerated
    assert "| mimic | 12345 | 100.0% |" in new
    assert new.index("My own intro") < new.index("## Statistics") < new.index("Hand-written notes.")
    assert new.count("<!-- persrm-gen:begin stats -->") == 1 and new.count("persrm-gen:state") == 1


def test_untouched_defaults_follow_the_manifest():
    first = render_dataset_card(make_manifest(), make_stats())
    second = render_dataset_card(make_manifest(license="cc0-1.0", language=["fr"]), make_stats(), existing=first)
    meta = front(second)
    assert meta["license"] == "cc0-1.0" and meta["language"] == ["fr"]
    assert "`cc0-1.0`" in second and "No license was given" not in second


def test_deleted_sections_stay_deleted_and_new_ones_are_added():
    first = render_dataset_card(make_manifest(), make_stats())
    card = parse_card(first)
    start = card.body.index("<!-- persrm-gen:begin intended-use -->")
    end = card.body.index("<!-- persrm-gen:end intended-use -->") + len("<!-- persrm-gen:end intended-use -->")
    body = card.body[:start] + card.body[end:]
    # Pretend an older persrm-gen never wrote the 'license' section.
    lstart = body.index("<!-- persrm-gen:begin license -->")
    lend = body.index("<!-- persrm-gen:end license -->") + len("<!-- persrm-gen:end license -->")
    body = body[:lstart] + body[lend:]
    state = copy.deepcopy(card.state)
    state["sections"].remove("license")
    from persrm_gen.cards.merge import dump_card

    again = render_dataset_card(make_manifest(), make_stats(), existing=dump_card(card.meta, body, state))
    assert "## Intended use" not in again
    assert again.index("## Personal data") < again.index("## License") < again.index("## Citation")


def test_foreign_readme_keeps_user_text_and_values():
    existing = "---\nlicense: cc-by-sa-4.0\npretty_name: Mine\n---\n# My dataset\n\nWritten by hand.\n"
    text = render_dataset_card(make_manifest(license="mit"), make_stats(), existing=existing)
    meta = front(text)
    assert meta["license"] == "cc-by-sa-4.0" and meta["pretty_name"] == "Mine"
    assert text.index("Written by hand.") < text.index("## Statistics")
    assert "configs" in meta


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    out = build_folder(tmp_path / "out", configs=("pairs",))
    write_dataset_card(out, make_manifest(), make_stats())
    write_dataset_card(out, make_manifest(), make_stats())
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]


@pytest.mark.parametrize("n_shards", [2])
def test_sharded_split_gets_a_glob(tmp_path, n_shards):
    from datasets import load_dataset

    out = tmp_path / "out"
    (out / "data" / "pairs").mkdir(parents=True)
    for i in range(n_shards):
        pq.write_table(_pairs(3, "train"), out / "data" / "pairs" / f"train-{i:05d}-of-{n_shards:05d}.parquet")
    meta = front(write_dataset_card(out, make_manifest(), make_stats()).read_text())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/pairs/train-*.parquet"}]
    assert load_dataset(str(out), "pairs", cache_dir=str(tmp_path / "c"))["train"].num_rows == 3 * n_shards


def test_rewriting_an_unchanged_card_is_byte_identical(tmp_path):
    out = build_folder(tmp_path / "out", configs=("pairs", "sft"))
    first = write_dataset_card(out, make_manifest(), make_stats()).read_bytes()
    second = write_dataset_card(out, make_manifest(), make_stats()).read_bytes()
    assert first == second
    fresh = tmp_path / "fresh"
    build_folder(fresh, configs=("pairs", "sft"))
    assert write_dataset_card(fresh, make_manifest(), make_stats()).read_bytes() == first

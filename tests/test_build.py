"""End to end: ``persrm-gen build`` with the local backend on a tiny model built offline,
then validate, stats, load_dataset, re-run (no model calls, identical files) and resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from persrm_gen.trainers.tiny import build_random_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"
CONTRACT = {
    "pairs": {"id", "author_id", "genre", "query", "context", "chosen", "rejected", "chosen_source", "rejected_source",
              "response_a", "response_b", "label", "rationale", "style_margin", "split"},
    "sft": {"prompt", "completion"},
    "rft": {"prompt", "label"},
    "preference": {"prompt", "chosen", "rejected"},
}


def cli(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    """Five example authors, five samples each, each cut to its first sentences (about 70
    words): small enough for a quick CPU build, whose negatives are generated to the
    positive's length. Samples are numbered "1", "2", ... per author, as corpora number them
    (ids repeat across authors)."""
    from persrm_gen.textutil import cap_words

    path = tmp_path_factory.mktemp("in") / "authors.jsonl"
    lines = EXAMPLES.read_text().splitlines()
    keep = [json.loads(line) for line in lines[:4]] + [json.loads(lines[-1])]
    with path.open("w") as fh:
        for a in keep:
            a["samples"] = [s | {"id": str(i + 1), "text": cap_words(s["text"], 70)} for i, s in enumerate(a["samples"][:5])]
            fh.write(json.dumps(a) + "\n")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory, authors) -> Path:
    texts = [s["text"] for line in authors.read_text().splitlines() for s in json.loads(line)["samples"]]
    # Subword tokens, so random output is space-separated words; the end token out of reach
    # (every candidate runs to --max-new-tokens); peaked logits and untied embeddings (tied
    # ones make a random model repeat its last word), as in test_local.
    return build_random_model(tmp_path_factory.mktemp("tiny"), texts, tokenizer_size=1500, subwords=True, can_end=False,
                              initializer_range=0.2, tie_word_embeddings=False)


def build_args(authors: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["build", "--authors", str(authors), "--out", str(out), "--model", str(model), "--context-size", "2",
            "--max-new-tokens", "96", "--test-authors", "1", "--threads", "1", "--quiet", *extra]


def requests_sent(proc: subprocess.CompletedProcess) -> int:
    return int(re.search(r"\((\d+) requests sent", proc.stderr).group(1))


def digests(out: Path) -> dict[str, str]:
    files = sorted((out / "data").rglob("*.parquet")) + [out / "manifest.json", out / "README.md"]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def built(tmp_path_factory, authors, model) -> Path:
    out = tmp_path_factory.mktemp("build") / "out"
    proc = cli(*build_args(authors, out, model))
    assert "requests sent, 0 from cache" in proc.stderr
    return out


def test_every_config_loads_with_the_contract_columns(built):
    for config, columns in CONTRACT.items():
        ds = datasets.load_dataset(str(built), config)
        assert set(ds) >= {"train", "test_seen_authors", "test_unseen_authors"}
        for split in ds.values():
            assert columns <= set(split.column_names)
            assert len(split) > 0
    pairs = datasets.load_dataset(str(built), "pairs", split="train")
    assert set(pairs["label"]) == {"A", "B"}
    assert {"mimic", "randomize", "other-author"} <= set(pairs["strategy"])
    sft = datasets.load_dataset(str(built), "sft", split="train")
    assert sft[0]["completion"][0]["role"] == "assistant"
    assert sft[0]["completion"][0]["content"].rstrip().endswith(("<answer>A</answer>", "<answer>B</answer>"))


def test_sample_ids_numbered_per_author_give_distinct_correct_pairs(built, authors):
    from persrm_gen.dataset.reader import load_split_rows

    def flat(text: str) -> str:  # capped texts rejoin sentences with one space
        return " ".join(text.split())

    samples = {(a["author_id"], s["id"]): flat(s["text"])
               for a in map(json.loads, authors.read_text().splitlines()) for s in a["samples"]}
    by_split = load_split_rows(built, "pairs")
    rows = [r for split in by_split.values() for r in split]
    assert len({r["id"] for r in rows}) == len(rows)
    keys = {(r["author_id"], r["sample_id"]) for r in rows}
    assert len({sid for _, sid in keys}) < len(keys)  # the same sample id under several authors
    assert any(r["chosen_source"] == "author" for r in rows)
    for r in rows:
        own = samples[r["author_id"], r["sample_id"]]
        if r["chosen_source"] == "author":  # a real positive (mixed, the default, generates most)
            assert flat(r["chosen"]) in own  # this author's own sample
        others_of_author = [t for (aid, sid), t in samples.items() if aid == r["author_id"] and sid != r["sample_id"]]
        assert all(any(flat(c) in t for t in others_of_author) for c in r["context"])
        if r["rejected_source"] == "other-author":
            source = [aid for (aid, _), t in samples.items() if flat(r["rejected"]) in t]
            assert source and r["author_id"] not in source
    train_authors = {r["author_id"] for r in by_split["train"]}
    assert train_authors.isdisjoint(r["author_id"] for r in by_split["test_unseen_authors"])


def test_validate_passes_and_stats_report_the_baseline(built):
    proc = cli("validate", str(built))
    assert "valid" in proc.stderr
    stats = json.loads(cli("stats", str(built), "--json").stdout)
    assert 0.0 <= stats["baseline_accuracy"]["all"] <= 1.0
    assert stats["n_pairs"] == sum(stats["by_split"].values())
    assert abs(stats["ab_balance"]["A"] - stats["ab_balance"]["B"]) <= stats["authors"]["all"]


def test_manifest_records_templates_seeds_counts_and_no_clock(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert {"mimic", "randomize", "judge", "rationale_evidence"} <= set(manifest["templates"])
    assert manifest["seed"] == 0 and manifest["backend"] == "local"
    assert manifest["counts"]["pairs"]["train"] > 0
    assert manifest["usage"]["total"]["requests"] > 0
    assert "created" not in manifest


def test_second_run_makes_no_model_calls_and_identical_files(built, authors, model):
    before = digests(built)
    stamped = {p: p.stat().st_mtime_ns for p in (built / "data").rglob("*.parquet")}
    proc = cli(*build_args(authors, built, model))
    assert "up to date" in proc.stderr  # the stamp answers: nothing rebuilt, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in (built / "data").rglob("*.parquet")} == stamped
    (built / ".built").unlink()  # without the stamp the build replays every stage from the cache
    proc = cli(*build_args(authors, built, model))
    assert "(0 requests sent," in proc.stderr
    assert digests(built) == before
    assert (built / ".built").is_file()


def every_row(out: Path) -> dict[str, list[str]]:
    """Every config's rows, order-free (as sorted JSON), whatever files hold them."""
    from persrm_gen.dataset.reader import load_split_rows
    from persrm_gen.dataset.schema import CONFIGS

    return {c: sorted(json.dumps(r, sort_keys=True) for rs in load_split_rows(out, c).values() for r in rs)
            for c in CONFIGS}


def test_rows_do_not_depend_on_the_shard_size(tmp_path, built, authors, model):
    """The embedded backend batches the prompts it has in hand: shards of 2 authors batch
    other prompts together than one shard of all 5, and must give the same rows."""
    out = tmp_path / "out"
    cli(*build_args(authors, out, model, "--shard-authors", "2"))
    assert len(list((out / "data" / "pairs").glob("train-*.parquet"))) > 1  # written shard by shard
    assert every_row(out) == every_row(built), row_differences(out, built)
    strip = lambda d: {k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k != "command"}  # noqa: E731
    assert strip(out) == strip(built)


def test_edited_template_resends_only_what_it_renders(tmp_path, built, authors, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cache.sqlite").write_bytes((built / "cache.sqlite").read_bytes())
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    src = Path(__file__).resolve().parents[1] / "persrm_gen" / "prompts" / "randomize.j2"
    (prompts / "randomize.j2").write_text(src.read_text().replace("Text {{ loop.index }}:", "Sample {{ loop.index }}:"))
    proc = cli(*build_args(authors, out, model, "--prompts-dir", str(prompts)))
    sent = requests_sent(proc)
    # The randomize outputs are new, so are their re-samples (a negative out of the positive's
    # length is sampled again): every request sent is a randomize one, every other from cache.
    before, after = (json.loads((d / "manifest.json").read_text())["usage"]["stages"] for d in (built, out))
    assert sent == after["randomize"]["requests"] > 0
    assert {k: v for k, v in after.items() if k != "randomize"} == {k: v for k, v in before.items() if k != "randomize"}


def test_bad_input_exits_2_with_file_and_line_and_writes_nothing(tmp_path, model):
    bad = tmp_path / "authors.jsonl"
    bad.write_text('{"author_id": "a", "samples": [{"text": "x"}]}\n{"author_id": "b", "samples": [}\n')
    out = tmp_path / "out"
    proc = cli(*build_args(bad, out, model), check=False)
    assert proc.returncode == 2
    assert f"{bad}:2: invalid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def row_differences(a: Path, b: Path) -> list[dict]:
    """Which pairs differ between two builds, and in which fields (for failure messages)."""
    from persrm_gen.dataset.reader import load_split_rows

    rows = [{r["id"]: r for split in load_split_rows(d, "pairs").values() for r in split} for d in (a, b)]
    out = [{"id": k, "only_in": "a" if k in rows[0] else "b"} for k in rows[0].keys() ^ rows[1].keys()]
    for k in rows[0].keys() & rows[1].keys():
        fields = {f: (rows[0][k][f], rows[1][k][f]) for f in rows[0][k] if rows[0][k][f] != rows[1][k][f]}
        if fields:
            out.append({"id": k, **fields})
    return out


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_dataset(tmp_path, built, authors, model):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "persrm_gen.cli", *build_args(authors, out, model, "--batch-size", "2")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "cache.sqlite"
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.Error:
                continue
            if done >= 4:
                break
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "data").exists()  # nothing half-written
    total = json.loads((built / "manifest.json").read_text())["usage"]["total"]["requests"]
    resumed = cli(*build_args(authors, out, model))
    sent = requests_sent(resumed)
    assert 0 < sent <= total - done  # what finished before the kill is never paid twice
    data = lambda d: {k: v for k, v in digests(d).items() if k.startswith("data/")}  # noqa: E731
    assert data(out) == data(built), row_differences(out, built)
    strip = lambda d: {k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k != "command"}  # noqa: E731
    assert strip(out) == strip(built)  # the command differs only by --out


def start_and_wait_for_generation(authors: Path, out: Path, model: Path) -> subprocess.Popen:
    """A local build in the background, returned once its first batch is cached (the next is running)."""
    cmd = [sys.executable, "-m", "persrm_gen.cli", *build_args(authors, out, model, "--batch-size", "2")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = out / "cache.sqlite"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            if db.exists() and sqlite3.connect(db).execute("SELECT COUNT(*) FROM responses").fetchone()[0] >= 2:
                break
        except sqlite3.Error:
            continue
    assert proc.poll() is None, "the build finished before it could be stopped"
    return proc


def test_sigterm_mid_generation_exits_promptly_caches_nothing_partial_then_resumes(tmp_path, built, authors, model):
    """Slurm and Kubernetes send SIGKILL about 30 s after SIGTERM: a local build stops
    generating at once (tests/test_local.py shows it stops within a token), exits 130 with
    one line, records no cut-off reply, leaves no published or staged files and no lock."""
    import fcntl

    out = tmp_path / "out"
    proc = start_and_wait_for_generation(authors, out, model)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - sent < 15, stderr
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.count("re-run the same command") == 1, stderr
    columns = "request, output_tokens, finish_reason"
    rows = sqlite3.connect(out / "cache.sqlite").execute(
        f"SELECT {columns} FROM responses UNION ALL SELECT {columns} FROM rejected").fetchall()
    # The tiny model never ends a text itself: a reply is whole when a stop string or its max_tokens ended it.
    assert all(reason == "stop" or n == json.loads(req)["max_tokens"] for req, n, reason in rows)
    assert not {"data", "manifest.json", "README.md", ".staging"} & {p.name for p in out.iterdir()}
    with open(out / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the build still held it
    resumed = cli(*build_args(authors, out, model))
    assert requests_sent(resumed) < json.loads((built / "manifest.json").read_text())["usage"]["total"]["requests"]
    data = lambda d: {k: v for k, v in digests(d).items() if k.startswith("data/")}  # noqa: E731
    assert data(out) == data(built), row_differences(out, built)


def test_validate_fails_on_a_tampered_folder(tmp_path, built):
    import shutil

    import pyarrow.parquet as pq

    out = tmp_path / "out"
    shutil.copytree(built, out)
    path = out / "data" / "pairs" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["label"] = "B" if rows[0]["label"] == "A" else "A"  # label no longer matches the trace
    rows.append(dict(rows[1]))  # and a duplicate pair
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    proc = cli("validate", str(out), check=False)
    assert proc.returncode == 1
    assert "label_inconsistent" in proc.stderr and "exact_duplicate" in proc.stderr
    assert "rft/train: labels do not match" in proc.stderr

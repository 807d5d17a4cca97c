"""A build in shards of authors and across machines, against tests/fakeserver.py through the
CLI: the rows do not depend on the shard size, an interrupted build resumes at the first
unfinished shard without computing a finished one again, K shard folders merge into the
single build's rows, and duplicates planted across shards are caught."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from example_corpus import write_example_slice
from fakeserver import FakeServer
from test_build_api import args, data_digests, env, persona, served

from persrm_gen.dataset.reader import load_split_rows
from persrm_gen.dataset.schema import CONFIGS
from persrm_gen.pipeline.shards import partition_of

PLANTED = ("the quarterly harbor report lists every lantern orbit saddle and tunnel near the meadow "
           "where the violin makers met each spring to trade apples velvet prisms and stories about "
           "engines rivers monuments and the quiet work of keeping a small town running through long "
           "winters without complaint or fuss while the children learned to read by candlelight").split()


def planted(body: dict, text: str) -> str:
    """persona, except that every free generation is one fixed text with its last word varied:
    near duplicates of each other across every author (Jaccard ~0.97)."""
    reply = persona(body, text)
    if reply.startswith("Here is the response:"):
        tag = hashlib.sha256(reply.encode()).hexdigest()[:6]
        return "Here is the response:\n\n" + " ".join(PLANTED[:-1] + [f"w{tag}"]) + "."
    return reply


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=3, last=2, samples=4)


def build(authors: Path, out: Path, server: FakeServer, *extra: str, check: bool = True, **extra_env: str):
    proc = subprocess.run(args(authors, out, server, *extra), capture_output=True, text=True,
                          env=env(server) | extra_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr}")
    return proc


def cli(*argv: str, server: FakeServer) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "persrm_gen.cli", *argv], capture_output=True, text=True,
                          env=env(server), timeout=600)


def rows(out: Path) -> dict[str, list]:
    """Every config's rows, order-free (pairs by id; the others as sorted JSON)."""
    found = {}
    for config in CONFIGS:
        all_rows = [r for split_rows in load_split_rows(out, config).values() for r in split_rows]
        found[config] = sorted(json.dumps(r, sort_keys=True) for r in all_rows)
    return found


@pytest.fixture(scope="module")
def single(tmp_path_factory, authors):
    """One build, every author in one shard (the default size)."""
    out = tmp_path_factory.mktemp("single") / "out"
    with FakeServer(reply=planted) as server:
        build(authors, out, server)
        return out, served(server)


def test_rows_do_not_depend_on_the_shard_size(tmp_path, authors, single):
    ref, _ = single
    out = tmp_path / "out"
    with FakeServer(reply=planted) as server:
        build(authors, out, server, "--shard-authors", "1")
    assert rows(out) == rows(ref)
    files = sorted(p.name for p in (out / "data" / "pairs").iterdir())
    assert files and all(f.split("-")[1:3] != [] and f.endswith(".parquet") and "-of-" in f for f in files)
    assert len([f for f in files if f.startswith("train-")]) > 1  # written shard by shard
    manifest, ref_manifest = (json.loads((o / "manifest.json").read_text()) for o in (out, ref))
    assert manifest["counts"] == ref_manifest["counts"] and manifest["rejections"] == ref_manifest["rejections"]
    assert manifest["usage"]["total"]["requests"] == ref_manifest["usage"]["total"]["requests"]
    import datasets

    for config in CONFIGS:  # the card's globs load every shard
        loaded = datasets.load_dataset(str(out), config)
        assert sum(len(s) for s in loaded.values()) == sum(manifest["counts"][config].values())
    assert not (out / ".shards").exists()  # the work folder goes once the dataset is published


def test_near_duplicates_planted_across_shards_are_caught(tmp_path, authors, single):
    ref, _ = single
    out = tmp_path / "out"
    with FakeServer(reply=planted) as server:
        # real positives: each author's generated negatives are the planted text (under the mixed
        # default a generated positive is planted too, and its negatives copy their own chosen)
        build(authors, out, server, "--shard-authors", "1", "--positive", "real")
        assert cli("validate", str(out), server=server).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejections"].get("near_duplicate", 0) > 0
    pairs = [r for rs in load_split_rows(out, "pairs").values() for r in rs]
    by_author = {r["author_id"] for r in pairs if r["rejected"].startswith(" ".join(PLANTED[:5]))}
    assert len(by_author) == 1  # the planted text survives in one author's pairs only


def sent_and_cached(stderr: str) -> tuple[int, int]:
    m = re.search(r"\((\d+) requests sent, (\d+) from cache", stderr)
    assert m, stderr
    return int(m[1]), int(m[2])


def test_a_killed_build_resumes_at_the_first_unfinished_shard(tmp_path, authors):
    first, out = tmp_path / "first", tmp_path / "out"
    with FakeServer(reply=planted) as server:
        total, _ = sent_and_cached(build(authors, first, server, "--shard-authors", "1").stderr)
    with FakeServer(reply=planted) as server:
        killed = build(authors, out, server, "--shard-authors", "1", check=False, PERSRM_GEN_TEST_CRASH_AFTER_SHARD="2")
        assert killed.returncode == -9
        finished = {p.name for p in (out / ".shards").iterdir() if p.is_dir()}
        assert {"00000", "00001", "00002"} <= finished and len(finished) < 5
        before = served(server)
        resumed = build(authors, out, server, "--shard-authors", "1")
        after = served(server)
        # re-running the finished command is a no-op: nothing sent, byte-identical files
        digests = data_digests(out)
        again = build(authors, out, server, "--shard-authors", "1")
        assert served(server) == after and "up to date" in again.stderr
        assert data_digests(out) == digests
    # only requests in flight at the kill (the next shard's: two are under way) were paid twice;
    # the finished shards were not computed again, not even from the cache: the resumed run
    # asked for fewer requests than the build has
    assert max(after.values()) <= 2 and len(after) == total
    sent, cached = sent_and_cached(resumed.stderr)
    assert sent == sum(after.values()) - sum(before.values()) and sent + cached < total
    assert data_digests(out) == data_digests(first)  # the same bytes as an uninterrupted build
    manifests = [json.loads((o / "manifest.json").read_text()) for o in (out, first)]
    same = ("counts", "rejections", "skipped_samples", "usage", "splits", "templates")
    assert [{k: m[k] for k in same} for m in manifests] == [{k: manifests[1][k] for k in same}] * 2


@pytest.fixture(scope="module")
def shard_folders(tmp_path_factory, authors):
    ids = [json.loads(line)["author_id"] for line in authors.read_text().splitlines()]
    assert len({partition_of(a, 2) for a in ids}) == 2  # both machines have work
    root = tmp_path_factory.mktemp("machines")
    with FakeServer(reply=planted) as server:
        for i in range(2):
            build(authors, root / f"out{i}", server, "--num-shards", "2", "--shard-index", str(i))
    return [root / "out0", root / "out1"]


def test_merged_shard_folders_equal_the_single_build(tmp_path, single, shard_folders):
    ref, _ = single
    out = tmp_path / "merged"
    with FakeServer(reply=planted) as server:
        proc = cli("merge", *map(str, shard_folders), "--out", str(out), server=server)
        assert proc.returncode == 0, proc.stderr
        assert cli("validate", str(out), server=server).returncode == 0
    assert rows(out) == rows(ref)
    manifest, ref_manifest = (json.loads((o / "manifest.json").read_text()) for o in (out, ref))
    for key in ("requests", "input_tokens", "output_tokens"):
        assert manifest["usage"]["total"][key] == ref_manifest["usage"]["total"][key]
    assert manifest["counts"] == ref_manifest["counts"]
    assert "shards" not in manifest and len(manifest["merged_from"]) == 2
    readme = (out / "README.md").read_text()
    assert "data/pairs/train-*.parquet" in readme or "data/pairs/train-00000-of-00001.parquet" in readme


def test_merge_refuses_an_author_in_two_shard_folders(tmp_path, shard_folders):
    twin = tmp_path / "twin"
    shutil.copytree(shard_folders[0], twin)
    with FakeServer(reply=planted) as server:
        proc = cli("merge", str(shard_folders[0]), str(shard_folders[1]), str(twin), "--out", str(tmp_path / "m"),
                   server=server)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is also in" in lines[0] and str(twin) in lines[0]
    assert not (tmp_path / "m").exists()


def test_shard_files_follow_the_hub_naming(single):
    out, _ = single
    for config in CONFIGS:
        for f in (out / "data" / config).iterdir():
            split, index, _of, total = f.name.removesuffix(".parquet").split("-")
            assert int(index) < int(total) and pq.ParquetFile(f).metadata.num_rows > 0


def test_readers_take_shards_and_legacy_single_files(tmp_path, single):
    from persrm_gen.dataset.layout import shard_file, split_of_file
    from persrm_gen.dataset.reader import available_splits, split_files
    from persrm_gen.trainers.common import load_split

    assert [split_of_file(n) for n in ("train-00001-of-00003.parquet", "train.parquet", "train-00003-of-00003.parquet",
                                       "train-1-of-3.parquet", "notes.txt")] == ["train", "train", None, None, None]
    out, _ = single
    folder = tmp_path / "legacy"
    shutil.copytree(out / "data", folder / "data")
    sft = folder / "data" / "sft"
    n = pq.ParquetFile(sft / shard_file("train", 0, 1)).metadata.num_rows
    table = pq.read_table(sft / shard_file("train", 0, 1))
    (sft / shard_file("train", 0, 1)).unlink()
    pq.write_table(table.slice(0, 2), sft / shard_file("train", 0, 2))
    pq.write_table(table.slice(2), sft / shard_file("train", 1, 2))
    assert [p.name for p in split_files(folder, "sft", "train")] == [shard_file("train", i, 2) for i in range(2)]
    assert len(load_split(folder, "sft", "train")) == n  # the trainers read every shard
    (folder / "data" / "pairs" / shard_file("test_seen_authors", 0, 1)).rename(folder / "data" / "pairs" / "test_seen_authors.parquet")
    assert "test_seen_authors" in available_splits(folder, "pairs")


def test_the_scale_benchmark_refuses_an_unknown_code_commit_in_one_line(tmp_path):
    """benchmarks/scale.py --code takes folders or commits: a name that is neither is bad
    input (one line, exit 2), found before any server starts or worktree is added."""
    import sys

    root = Path(__file__).resolve().parents[1]
    before = subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True, text=True).stdout
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "scale.py"), "--samples", "10",
                           "--code", "no-such-commit-0badc0de"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no-such-commit-0badc0de" in proc.stderr and proc.stdout == ""
    assert subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True, text=True).stdout == before


@pytest.mark.parametrize("samples", ["x", "1000,ten", "0", "1e3", "²"])
def test_the_scale_benchmark_refuses_a_bad_sample_count_in_one_line(tmp_path, samples):
    """benchmarks/scale.py --samples x gave int()'s traceback, after the fake server had
    started and each --code commit had become a worktree: bad input, one line, exit 2."""
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "scale.py"), "--samples", samples],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: --samples") and repr(samples) in proc.stderr and proc.stdout == ""

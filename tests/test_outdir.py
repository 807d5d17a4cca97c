"""The output folder's safety: ``--out`` never clobbers what persrm-gen did not write, every
write starts from an empty staging folder, one command at a time holds the folder, and the
switch to a new dataset is atomic (a SIGKILL between any two steps of the publish leaves
the old or the new dataset, and the next command completes it). Real builds through the CLI
against tests/fakeserver.py, in subprocesses."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from example_corpus import write_example_slice
from fakeserver import FakeServer
from test_build_api import args, env, persona

from persrm_gen.fileio import fsync_dir, write_bytes_atomic, write_text_atomic
from persrm_gen.dataset.folder import PUBLISH_STEPS



@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=2, last=2, samples=4)


@pytest.fixture(scope="module")
def server():
    with FakeServer(reply=persona) as s:
        yield s


def cli(server: FakeServer, *argv: str, check: bool = False, cwd: Path | None = None, preexec=None,
        **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", *argv], check=False, capture_output=True, text=True,
                          env=env(server) | extra_env, timeout=600, cwd=cwd, preexec_fn=preexec)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr}")
    return proc


def build(server: FakeServer, authors: Path, out: Path, *extra: str, check: bool = False, preexec=None,
          **extra_env: str) -> subprocess.CompletedProcess:
    """A build into ``out``, named relative to its parent so that every copy of a folder
    records the same command (manifest and card) and the datasets compare byte for byte."""
    where = Path(out.name) if out.is_absolute() and out.name == "out" else out
    return cli(server, *args(authors, where, server, *extra)[3:], check=check, cwd=out.parent, preexec=preexec,
               **extra_env)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (hidden ones included) with its content's digest."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def dataset(out: Path) -> dict[str, str]:
    """The published dataset: parquet files, manifest and card."""
    files = sorted((out / "data").rglob("*.parquet")) if (out / "data").is_dir() else []
    files += [p for p in (out / "manifest.json", out / "README.md") if p.exists()]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, authors, server):
    """A folder holding dataset A (seed 0) whose cache also answers every request of B (seed 1)."""
    base = tmp_path_factory.mktemp("ab") / "out"
    build(server, authors, base, "--seed", "1", check=True)
    b = dataset(base)
    build(server, authors, base, check=True)
    a = dataset(base)
    assert a != b and set(a) == set(b)
    return base, a, b


# ------------------------------------------------------------------ 1. never clobber


def test_a_folder_we_did_not_write_is_refused_and_left_untouched(tmp_path, authors, server):
    out = tmp_path / "mine"
    (out / "data" / "raw").mkdir(parents=True)
    (out / "data" / "raw" / "precious.csv").write_text("a,b\n1,2\n")
    (out / "manifest.json").write_text('{"mine": true}\n')
    (out / ".staging").mkdir()
    (out / ".staging" / "draft.txt").write_text("draft\n")
    (out / ".data-old").mkdir()
    (out / ".data-old" / "keep.txt").write_text("keep\n")
    before = tree(out)
    for extra in ((), ("--dry-run",)):
        line = one_line_error(build(server, authors, out, *extra))
        assert str(out) in line and "not a persrm-gen output folder" in line
        assert tree(out) == before


def test_a_built_folder_with_a_foreign_file_is_refused(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    (out / "data" / "pairs" / "notes.txt").write_text("mine\n")
    before = tree(out)
    line = one_line_error(build(server, authors, out))
    assert "data/pairs/notes.txt" in line
    assert tree(out) == before


def test_root_home_and_a_file_are_refused(tmp_path, authors, server):
    home = tmp_path / "home"
    (home / "data" / "photos").mkdir(parents=True)
    (home / "data" / "photos" / "p1.jpg").write_bytes(b"\xff\xd8 photo")
    before = tree(home)
    line = one_line_error(build(server, authors, home, HOME=str(home)))
    assert "home folder" in line
    assert tree(home) == before
    assert "root folder" in one_line_error(build(server, authors, Path("/")))
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    for extra in ((), ("--dry-run",)):
        line = one_line_error(build(server, authors, afile, *extra))
        assert str(afile) in line and "not a folder" in line
        assert afile.read_text() == "not a folder\n"


def test_a_lone_manifest_is_refused_but_our_older_folders_and_a_copied_cache_are_claimed(tmp_path, authors, server, two_datasets):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text('{"mine": true}\n')
    assert "not a persrm-gen output folder" in one_line_error(build(server, authors, mine))
    assert sorted(p.name for p in mine.iterdir()) == ["manifest.json"]
    legacy = tmp_path / "legacy" / "out"  # built before the marker existed
    shutil.copytree(two_datasets[0], legacy)
    (legacy / ".persrm-gen").unlink()
    (legacy / ".lock").unlink()
    (legacy / ".built").unlink()  # newer than the marker too
    assert "0 requests sent" in build(server, authors, legacy, check=True).stderr
    assert (legacy / ".persrm-gen").is_file() and dataset(legacy) == two_datasets[1]
    seeded = tmp_path / "seeded" / "out"  # a new folder seeded with a copied cache
    seeded.mkdir(parents=True)
    shutil.copy(two_datasets[0] / "cache.sqlite", seeded / "cache.sqlite")
    assert "0 requests sent" in build(server, authors, seeded, check=True).stderr


def test_a_card_that_is_not_utf8_is_one_line_before_anything_is_paid(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    card = out / "README.md"
    card.write_bytes(card.read_bytes().replace(b"\n", b"\n\xff caf\xe9\n", 1))
    before, paid = tree(out), len(server.snapshot())
    line = one_line_error(build(server, authors, out, "--seed", "2"))  # seed 2: nothing cached
    assert line.startswith("error: out/README.md:2: not valid UTF-8"), line
    assert tree(out) == before and len(server.snapshot()) == paid


def test_an_empty_folder_is_claimed_and_marked(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    out.mkdir()
    build(server, authors, out, check=True)
    assert (out / ".persrm-gen").is_file()
    assert dataset(out) == two_datasets[1]  # dataset A (seed 0), byte for byte


# ------------------------------------------------------------------ 2. stale staging


def test_files_left_in_staging_by_a_crash_are_never_published(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    stale = out / ".staging" / "data" / "pairs"
    stale.mkdir(parents=True)
    shutil.copy(out / "data" / "pairs" / "train-00000-of-00001.parquet", stale / "test_unseen_genre-00000-of-00001.parquet")
    build(server, authors, out, check=True)
    assert not list((out / "data" / "pairs").glob("test_unseen_genre*"))
    assert "test_unseen_genre" not in (out / "README.md").read_text()
    assert dataset(out) == two_datasets[1]
    cli(server, "validate", str(out), check=True)


# ------------------------------------------------------------------ 3. one command at a time


def test_a_second_build_on_the_same_folder_exits_2_naming_the_holder(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=persona, delay=0.2) as slow:
        first = subprocess.Popen(args(authors, out, slow, "--concurrency", "1"), env=env(slow),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not slow.snapshot() and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.05)
            assert first.poll() is None, first.stderr.read()
            second = subprocess.run(args(authors, out, slow), check=False, env=env(slow), capture_output=True, text=True,
                                    timeout=120)
            line = one_line_error(second)
            assert f"pid {first.pid}" in line and "persrm-gen build" in line
            reader = cli(slow, "stats", str(out))
            assert f"pid {first.pid}" in one_line_error(reader)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        # the kernel released the dead holder's lock: the next build runs (and resumes)
        cli(slow, *args(authors, out, slow)[3:], check=True)


# ------------------------------------------------------------------ 4. atomic publish


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_crash_at_any_publish_step_leaves_old_or_new_and_the_next_command_completes(tmp_path, authors, server, two_datasets, step):
    base, a, b = two_datasets
    out = tmp_path / "out"
    shutil.copytree(base, out)
    crashed = build(server, authors, out, "--seed", "1", PERSRM_GEN_TEST_CRASH_AT=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    committed = (out / ".publish").exists()
    assert committed == (step != PUBLISH_STEPS[0])  # only the journal commits the switch
    if not committed:
        assert dataset(out) == a  # the old dataset, whole
    # every command completes an interrupted publish before it reads
    recover = (["validate", str(out)], ["stats", str(out)], ["push", str(out), "--repo-id", "me/x", "--dry-run"])
    cli(server, *recover[PUBLISH_STEPS.index(step) % 3], check=True)
    assert dataset(out) == (b if committed else a)
    leftovers = {p.name for p in out.iterdir()} - {"README.md", "manifest.json", "data", "cache.sqlite",
                                                   "cache.sqlite-wal", "cache.sqlite-shm", ".persrm-gen", ".lock"}
    # before the journal, the finished shards stay for the next build to resume from
    # and the old dataset's up-to-date stamp, which the journal's switch removes
    assert leftovers <= ({".staging"} if committed else {".staging", ".shards", ".built"}), leftovers
    cli(server, "validate", str(out), check=True)
    again = build(server, authors, out, "--seed", "1", check=True)
    assert "0 requests sent" in again.stderr
    assert dataset(out) == b


def test_readme_and_manifest_follow_the_umask(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    (out / "README.md").chmod(0o600)  # as the landed code wrote it
    (out / ".built").unlink()  # which wrote no up-to-date stamp either
    build(server, authors, out, check=True)
    for name in ("README.md", "manifest.json", "data/pairs/train-00000-of-00001.parquet"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


# ------------------------------------------------------------------ 5. one atomic writer


def test_atomic_writes_replace_whole_files_with_the_umask_mode(tmp_path):
    path = tmp_path / "f.txt"
    old = os.umask(0o027)
    try:
        write_text_atomic(path, "héllo\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    path.chmod(0o604)  # an existing file keeps the mode its owner gave it
    write_bytes_atomic(path, b"bye\n")
    assert path.read_bytes() == b"bye\n" and stat.S_IMODE(path.stat().st_mode) == 0o604
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temp file left
    fsync_dir(tmp_path)

    def refuse(tmp: Path) -> None:
        raise ValueError(f"bad {tmp.name}")

    with pytest.raises(ValueError):
        write_text_atomic(path, "rejected\n", verify=refuse)
    assert path.read_bytes() == b"bye\n" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_only_one_atomic_writer_exists():
    src = Path(__file__).resolve().parents[1] / "persrm_gen"
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.name != "fileio.py" and ("mkstemp(" in p.read_text() or "os.replace(" in p.read_text())]
    # folder swaps, not file writes
    assert sorted(offenders) == ["dataset/folder.py", "llm/transports/local_model.py", "pipeline/shardstore.py"]


# ------------------------------------------------------------------ 6. disks that say no


CACHED = re.compile(r"already cached\W+([1-9][\d,]*)")  # a dry run that read the cache


def chattr(path: Path, flag: str) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(["chattr", flag, str(path)], check=False,
                                                                 capture_output=True).returncode == 0


def test_a_read_only_folder_is_one_line_and_dry_run_reads_it(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    for side in ("cache.sqlite-wal", "cache.sqlite-shm"):
        (out / side).unlink(missing_ok=True)
    before = tree(out)
    if not chattr(out, "+i"):
        pytest.skip("chattr +i is not available here (needs root on a filesystem that supports it)")
    try:
        line = one_line_error(build(server, authors, out))
        assert line.startswith("error: out: ") and "not writable" in line
        dry = build(server, authors, out, "--dry-run", check=True)
        assert CACHED.search(dry.stderr), dry.stderr
    finally:
        chattr(out, "-i")
    assert tree(out) == before


def test_dry_run_never_writes_the_output_folder(tmp_path, authors, server, two_datasets):
    out = tmp_path / "out"
    shutil.copytree(two_datasets[0], out)
    for side in ("cache.sqlite-wal", "cache.sqlite-shm", ".lock"):
        (out / side).unlink(missing_ok=True)
    before = tree(out)
    dry = build(server, authors, out, "--dry-run", check=True)
    assert CACHED.search(dry.stderr), dry.stderr
    assert tree(out) == before
    fresh = tmp_path / "fresh"
    build(server, authors, fresh, "--dry-run", check=True)
    assert not fresh.exists()


FILE_LIMIT = 33_000  # above SQLite's 32 KiB -shm file, below the largest parquet file


def _small_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def test_a_full_disk_is_one_line_and_the_old_dataset_stays(tmp_path, authors, server, two_datasets):
    base, a, _b = two_datasets
    out = tmp_path / "out"
    shutil.copytree(base, out)
    assert max(p.stat().st_size for p in (out / "data").rglob("*.parquet")) > FILE_LIMIT, "the limit must bite"
    full = build(server, authors, out, "--seed", "1", preexec=_small_files)
    line = one_line_error(full)
    assert "File too large" in line or "No space left" in line
    assert dataset(out) == a
    cli(server, "validate", str(out), check=True)

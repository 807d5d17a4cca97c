"""Bad input files and option values: ``persrm-gen build`` prints one line, exits 2 and
writes nothing. Each case runs the real command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEXT = ("One plain sentence opens the sample here. Another plain sentence follows it. "
        "The rest of the sample goes on for a while, long enough to be a target that the build can use, "
        "with more plain words in a third sentence. And a fourth sentence ends it.")


def author(aid: str, n: int = 4, **sample_extra) -> dict:
    return {"author_id": aid, "samples": [{"text": TEXT, **sample_extra} for _ in range(n)]}


def write_jsonl(path: Path, *objs: dict, raw: bytes = b"") -> Path:
    # ensure_ascii keeps "\ud800" as an escape, the only way a lone surrogate reaches a file
    path.write_bytes(b"".join(json.dumps(o).encode() + b"\n" for o in objs) + raw)
    return path


def build(tmp_path: Path, authors: str | Path, *extra: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
           "--context-size", "2", "--quiet", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="backslashreplace", check=False,
                          env={**os.environ, "COLUMNS": "200"})
    return proc, out


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert "\x1b" not in proc.stderr and "\x00" not in proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --- ids and text -------------------------------------------------------------------


def test_lone_surrogate_in_sample_text(tmp_path):
    bad = author("b")
    bad["samples"][3]["text"] = "A lone \ud800 surrogate. " + TEXT
    path = write_jsonl(tmp_path / "a.jsonl", author("a"), bad)
    proc, out = build(tmp_path, path)
    assert_one_line_exit_2(proc, f"{path}:2: samples[3].text", "surrogate")
    assert not out.exists()


def test_lone_surrogate_in_author_id(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", author("a"), author("b\udc80"))
    proc, out = build(tmp_path, path)
    assert_one_line_exit_2(proc, f"{path}:2: author_id", "surrogate")
    assert not out.exists()


@pytest.mark.parametrize("bad", ["nul\x00id", "esc\x1b[31mred", "bell\x07", "new\nline", "c1\x9bx", "bidi\u202eflip"])
def test_control_characters_in_author_id(tmp_path, bad):
    path = write_jsonl(tmp_path / "a.jsonl", author("a"), author(bad))
    proc, out = build(tmp_path, path)
    assert_one_line_exit_2(proc, f"{path}:2: author_id", "control character")
    assert not out.exists()


@pytest.mark.parametrize("field", ["id", "genre"])
def test_control_characters_in_sample_id_and_genre(tmp_path, field):
    obj = author("b")
    obj["samples"][1][field] = "x\x1b]0;owned\x07"
    path = write_jsonl(tmp_path / "a.jsonl", author("a"), obj)
    proc, out = build(tmp_path, path)
    assert_one_line_exit_2(proc, f"{path}:2: samples[1].{field}", "control character")
    assert not out.exists()


# --- the authors file ----------------------------------------------------------------


def test_authors_file_that_is_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "authors.jsonl"
    os.mkfifo(fifo)
    proc, out = build(tmp_path, fifo, timeout=30)  # a hang is a TimeoutExpired failure
    assert_one_line_exit_2(proc, str(fifo), "not a regular file")
    assert not out.exists()


def test_authors_file_dev_zero_is_refused(tmp_path):
    proc, out = build(tmp_path, "/dev/zero", timeout=30)
    assert_one_line_exit_2(proc, "/dev/zero", "not a regular file")
    assert not out.exists()


def test_non_utf8_authors_file(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", author("a"), raw=b'{"author_id": "caf\xe9", "samples": []}\n')
    proc, out = build(tmp_path, path)
    assert_one_line_exit_2(proc, f"{path}:2: not valid UTF-8")
    assert not out.exists()


# --- --test-authors ------------------------------------------------------------------


def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "a.jsonl", *(author(a) for a in "abcde"))


@pytest.mark.parametrize("spec", ["²", "٣", "-1", "1.5", "３"])
def test_test_authors_junk_value(tmp_path, spec):
    proc, out = build(tmp_path, corpus(tmp_path), "--test-authors", spec)
    assert_one_line_exit_2(proc, "--test-authors")
    assert not out.exists()


def test_test_authors_non_utf8_file(tmp_path):
    ids = tmp_path / "test.txt"
    ids.write_bytes(b"a\nb\xff\n")
    proc, out = build(tmp_path, corpus(tmp_path), "--test-authors", str(ids))
    assert_one_line_exit_2(proc, f"{ids}:2: not valid UTF-8")
    assert not out.exists()


def test_test_authors_fifo(tmp_path):
    fifo = tmp_path / "test.txt"
    os.mkfifo(fifo)
    proc, out = build(tmp_path, corpus(tmp_path), "--test-authors", str(fifo), timeout=30)
    assert_one_line_exit_2(proc, str(fifo), "--test-authors")
    assert not out.exists()


# --- an existing README.md in the output folder ----------------------------------------


def test_non_utf8_readme_in_output_folder_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".persrm-gen").write_text("ours\n")  # an earlier build's folder whose card the user edited
    readme = out / "README.md"
    readme.write_bytes(b"---\nlicense: mit\n---\n\nCaf\xe9 notes\n")
    proc, _ = build(tmp_path, corpus(tmp_path))
    assert_one_line_exit_2(proc, f"{readme}:5: not valid UTF-8")
    assert sorted(p.name for p in out.iterdir()) == [".persrm-gen", "README.md"]
    assert readme.read_bytes() == b"---\nlicense: mit\n---\n\nCaf\xe9 notes\n"

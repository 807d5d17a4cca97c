"""userfiles: only regular files are read; undecodable bytes get FILE:LINE and an offset."""

from __future__ import annotations

import os

import pytest

from persrm_gen.errors import InputError
from persrm_gen.userfiles import read_bytes, read_text


def problem(fn, path) -> str:
    with pytest.raises(InputError) as exc:
        fn(path)
    [issue] = exc.value.issues
    return str(issue)


def test_fifo_device_folder_and_missing_file_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a plain open() would block here forever
    assert problem(read_bytes, fifo) == f"{fifo}: is not a regular file (a FIFO, device or socket); give a file"
    assert problem(read_bytes, "/dev/zero").startswith("/dev/zero: is not a regular file")
    assert problem(read_bytes, tmp_path) == f"{tmp_path}: is a folder, expected a file"
    assert problem(read_bytes, tmp_path / "nope") == f"{tmp_path / 'nope'}: file not found"


def test_read_text_names_line_and_byte_offset_and_drops_a_bom(tmp_path):
    path = tmp_path / "f.md"
    path.write_bytes(b"\xef\xbb\xbfok\nline two \xff\n")
    assert problem(read_text, path) == f"{path}:2: not valid UTF-8: byte 0xff at byte offset 15; save the file as UTF-8"
    path.write_bytes(b"\xef\xbb\xbfok\n")
    assert read_text(path) == "ok\n"

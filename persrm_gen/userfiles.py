"""Reading files a user names: regular files only, and UTF-8 errors with a line number.

A FIFO blocks the reader until some writer opens it, and ``/dev/zero`` never ends, so
"read the whole file" must first make sure there is a whole file. Undecodable bytes are
reported as ``FILE:LINE`` with the byte offset, so the user can find them, instead of a
UnicodeDecodeError traceback. Every reader of a user's file goes through here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from persrm_gen.errors import InputError, InputIssue

_BOM = b"\xef\xbb\xbf"


def read_bytes(path: str | Path) -> bytes:
    """File contents, or an InputError that says why not (missing, a folder, not a regular
    file such as a FIFO or a device, unreadable)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on regular files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(InputIssue(str(path), None, "file not found")) from None
    except IsADirectoryError:
        raise InputError(InputIssue(str(path), None, "is a folder, expected a file")) from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL in the name
        raise InputError(InputIssue(str(path), None, f"cannot read file: {getattr(exc, 'strerror', None) or exc}")) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise InputError(InputIssue(str(path), None, "is a folder, expected a file"))
        raise InputError(InputIssue(str(path), None, "is not a regular file (a FIFO, device or socket); give a file"))
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise InputError(InputIssue(str(path), None, f"cannot read file: {exc.strerror}")) from None


def read_text(path: str | Path) -> str:
    """A regular UTF-8 file as text (a BOM is dropped); InputError with ``FILE:LINE`` otherwise."""
    data = read_bytes(path)
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        message = f"not valid UTF-8: byte 0x{data[at]:02x} at byte offset {at}; save the file as UTF-8"
        raise InputError(InputIssue(str(path), line, message)) from None

"""Whole-file writes that a crash, a full disk or a concurrent reader never sees half done.

Every file persrm-gen writes outside parquet (manifest, card, authors.jsonl, trainer JSON)
goes through :func:`write_bytes_atomic`: a temp file beside the target, fsync, one
``os.replace``, fsync of the folder. The temp file is created with mode 0666 so the
kernel applies the user's umask, as for any other file the user creates (``mkstemp``'s
0600 made the dataset card unreadable to the group); replacing an existing file keeps the
mode its owner gave it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes, *, verify: Callable[[Path], object] | None = None) -> Path:
    """Replace ``path`` with ``data`` in one step. ``verify(tmp)`` may inspect the temp
    file and raise to keep the old file (the temp file is removed either way)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass  # a new file: the umask already decided
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str, *, verify: Callable[[Path], object] | None = None) -> Path:
    """:func:`write_bytes_atomic` of ``text`` as UTF-8 (newlines as given)."""
    return write_bytes_atomic(path, text.encode("utf-8"), verify=verify)


def is_temp_name(name: str, of: str) -> bool:
    """Whether ``name`` is a temp file that :func:`write_bytes_atomic` made for ``of``."""
    return name.startswith(f".{of}.") and name.endswith(".tmp")


def fsync_dir(path: str | Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder under ``root`` (and ``root``): files written by other
    libraries (pyarrow) are on disk before anything points at them."""
    root = Path(root)
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)

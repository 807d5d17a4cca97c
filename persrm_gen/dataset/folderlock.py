"""One writer or many readers per output folder, and who holds it when we may not.

An advisory ``flock`` on ``OUT/.lock``: a build holds it exclusively for the whole
command, ``validate``/``stats``/``push`` hold it shared while they read. The kernel drops
the lock when its process dies (a SIGKILL included), so a crashed run never leaves a stale
lock behind. A refused command names the holder: the pid comes from ``/proc/locks`` (the
kernel's own record, right even after a crash), the command from the line the exclusive
holder writes into the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FolderBusy(Exception):
    """Another process holds the lock; the message names it."""


class FolderLock:
    def __init__(self, path: Path, command: str):
        self.path = Path(path)
        self.command = command  # "persrm-gen build": recorded for the next one refused
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool) -> None:
        """Take the lock without waiting; raise :class:`FolderBusy` naming the holder."""
        if self._fd is None:
            self._fd = self._open(exclusive)
            if self._fd is None:
                return  # a folder we may only read, with no lock file: nobody writes it
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(self.holder()) from None
        if exclusive:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()} {self.command}\n".encode(), 0)

    def _open(self, exclusive: bool) -> int | None:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            if exclusive:
                raise
        try:
            return os.open(self.path, os.O_RDONLY)  # flock works on a read-only descriptor
        except OSError:
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a reader holding it next must not be named by our line
        except OSError:
            pass  # opened read-only: a reader of a folder it may not write
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    def holder(self) -> str:
        """``pid N (persrm-gen build)``, as well as can be told."""
        pids = _flock_holders(self.path)
        pid, command = _recorded(self.path)
        if pid is not None and (pids is None or pid in pids):
            return f"pid {pid} ({command})"
        if pids:
            return f"pid {min(pids)} (a persrm-gen command reading it)"
        return "another process"


def _recorded(path: Path) -> tuple[int | None, str]:
    try:
        pid, _, command = path.read_text(encoding="utf-8", errors="replace").strip().partition(" ")
        return int(pid), command or "persrm-gen"
    except (OSError, ValueError):
        return None, ""


def _flock_holders(path: Path) -> set[int] | None:
    """pids holding a flock on ``path`` per /proc/locks; None where the kernel does not say."""
    try:
        st = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == ident:
            pids.add(int(fields[4]))
    return pids

"""The output folder's safety: persrm-gen replaces only what it wrote, one command at a
time, and switches to a new dataset in one step that a crash cannot split.

* **Ours or refused.** ``--out`` is a new folder, an empty one, or one persrm-gen wrote:
  it holds the marker ``.persrm-gen`` (written on the first claim) and nothing but the
  entries below. Anything else (a user's ``data/raw/precious.csv``, a ``manifest.json``
  without the marker, ``/``, the home folder, a file) is refused with one line before
  anything is written, and nothing in it changes.
* **One writer.** A build holds ``.lock`` (``folderlock.py``) for the whole command;
  ``validate``/``stats``/``push`` hold it shared, so none reads a folder mid-publish.
* **Atomic publish.** Everything (``data/``, ``manifest.json``, the card) is written into
  an empty ``.staging`` and fsynced; the journal ``.publish`` is then written atomically:
  it is the commit point. Before it, the old dataset is untouched and the staging is
  discarded by the next command; after it, the switch (old ``data/`` aside into
  ``.replaced``, each staged entry renamed into place) is rolled forward by whichever
  command comes next, each step idempotent. Every command completes a pending journal
  before it reads, so none ever sees half a switch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from persrm_gen.dataset.folderlock import FolderBusy, FolderLock
from persrm_gen.dataset.layout import split_of_file
from persrm_gen.errors import UsageError
from persrm_gen.fileio import fsync_dir, fsync_tree, is_temp_name, write_text_atomic
from persrm_gen.userfiles import read_text

MARKER = ".persrm-gen"
LOCK = ".lock"
STAGING = ".staging"
JOURNAL = ".publish"
REPLACED = ".replaced"
SHARDS = ".shards"  # finished shards of an unfinished build (pipeline.shardstore): kept for resume
BUILT = ".built"  # what the published dataset was built from (pipeline.uptodate)
PUBLISHED = ("data", "manifest.json", "README.md")  # switched in this order
CACHE = ("cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite-journal")
OURS = frozenset(PUBLISHED + CACHE + (MARKER, LOCK, STAGING, JOURNAL, REPLACED, SHARDS, BUILT))
_ADDS_TO = frozenset(CACHE)  # what a build only adds to, never replaces or removes
_DIRS = frozenset(("data", STAGING, REPLACED, SHARDS))  # every other entry of ours is a file
_ATOMIC = (MARKER, JOURNAL, BUILT)  # written in the folder itself, so their temp files are ours too
# Where a test may SIGKILL the publish (PERSRM_GEN_TEST_CRASH_AT=step); in order.
PUBLISH_STEPS = ("staged", "journal", "data-aside", "data", "manifest.json", "README.md", "switched", "cleaned")
_MARKER_TEXT = ("This folder is a persrm-gen output folder: persrm-gen replaces README.md, manifest.json,\n"
                "data/ and its own hidden files here, and refuses any folder without this file.\n")


def _command() -> str:
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return f"persrm-gen {sub}".strip()


class OutputFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.staging = self.path / STAGING

    # ------------------------------------------------------------ ours or refused

    def check(self, *, ignore: tuple[str, ...] = ()) -> None:
        """Refuse (UsageError, one line) a folder persrm-gen may not write. Reads only.
        ``ignore``: entries this command itself just made (its lock file)."""
        path, real = self.path, self.path.resolve()
        if real == Path(real.anchor):
            raise UsageError(f"{path}: refusing to write into the root folder; give --out a folder of its own")
        if real == _home():
            raise UsageError(f"{path}: refusing to write into your home folder; give --out a folder of its own")
        if not path.exists() and not path.is_symlink():
            return
        if not path.is_dir():
            raise UsageError(f"{path}: not a folder; --out needs a new folder, an empty one, or one persrm-gen wrote")
        entries = sorted(p.name for p in path.iterdir() if p.name not in ignore)
        if not entries:
            return
        foreign = self.foreign_entries()
        # Unmarked, it may still be ours: built before the marker, or only a copied cache
        # (which a build only adds to).
        if not self._marked() and (foreign or not (self._legacy() or set(entries) <= _ADDS_TO)):
            shown = ", ".join((foreign or entries)[:3]) + (" ..." if len(foreign or entries) > 3 else "")
            raise UsageError(f"{path}: not a persrm-gen output folder (it holds {shown}); "
                             "give --out a new or empty folder")
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise UsageError(f"{path}: holds files persrm-gen did not write ({foreign[0]}{more}); "
                             "move them out or give --out another folder")
        # The build merges its card into README.md (keeping the user's edits): one that is not
        # UTF-8 (or not a regular file) is refused now, not after every request was paid for.
        if os.path.lexists(path / "README.md"):
            read_text(path / "README.md")

    def foreign_entries(self) -> list[str]:
        """Paths (relative, posix) under the folder that persrm-gen would never write."""
        # imported here: the schema brings pyarrow, needed only once a folder is inspected
        from persrm_gen.dataset.schema import CONFIGS, SPLITS

        foreign = []
        for entry in sorted(self.path.iterdir()):
            name = entry.name
            if entry.is_symlink() or (name not in OURS and not any(is_temp_name(name, of) for of in _ATOMIC)):
                foreign.append(name)  # we never make links
            elif (name in _DIRS) != entry.is_dir():
                foreign.append(name)
            elif name == "data":
                foreign += _foreign_in_data(entry, CONFIGS, SPLITS)
        return foreign

    def _marked(self) -> bool:
        return (self.path / MARKER).is_file()

    def _legacy(self) -> bool:
        """Built before the marker existed: its manifest.json is one of ours."""
        try:
            manifest = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and "persrm_gen_version" in manifest

    # ------------------------------------------------------------ writing

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """Claim the folder for a build: lock, complete a pending publish, mark it, and
        yield an empty staging folder. On an error the staging is removed (a full disk
        gets its space back); the published dataset is never touched before ``publish``."""
        self.check()
        lock = FolderLock(self.path / LOCK, _command())
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock.acquire(exclusive=True)
        except FolderBusy as exc:
            raise UsageError(f"{self.path}: in use by {exc}; wait for it to finish") from None
        except OSError as exc:
            raise UsageError(f"{self.path}: output folder is not writable ({exc.strerror or exc})") from None
        try:
            self.check(ignore=(LOCK,))  # again, under the lock: the folder may have changed meanwhile
            self._claim()
            yield self.staging
        finally:
            try:
                if not (self.path / JOURNAL).exists():
                    shutil.rmtree(self.staging, ignore_errors=True)
            finally:
                lock.release()

    def _claim(self) -> None:
        try:
            self._complete_publish()
            if not self._marked():
                write_text_atomic(self.path / MARKER, _MARKER_TEXT)
            for entry in self.path.iterdir():
                if any(is_temp_name(entry.name, of) for of in _ATOMIC):
                    entry.unlink()
            for name in (STAGING, REPLACED):  # what a crash left before the journal: never published
                if (self.path / name).exists():
                    shutil.rmtree(self.path / name)
            self.staging.mkdir()
        except OSError as exc:
            raise UsageError(f"{self.path}: output folder is not writable ({exc.strerror or exc})") from None

    def publish(self) -> None:
        """Switch to what is in staging: fsync it, commit with the journal, roll forward."""
        staged = [name for name in PUBLISHED if (self.staging / name).exists()]
        fsync_tree(self.staging)
        _crash_point("staged")
        write_text_atomic(self.path / JOURNAL, json.dumps({"publish": staged}) + "\n")
        _crash_point("journal")
        self._complete_publish()

    def _complete_publish(self) -> None:
        """Roll a committed switch forward (idempotent; any step may have run already)."""
        journal = self.path / JOURNAL
        if not journal.exists():
            return
        # the stamp described the dataset being replaced (pipeline.uptodate); the build that
        # publishes writes a new one once the switch is done
        (self.path / BUILT).unlink(missing_ok=True)
        replaced = self.path / REPLACED
        replaced.mkdir(exist_ok=True)
        for name in PUBLISHED:
            new, cur = self.staging / name, self.path / name
            if not new.exists():
                continue  # already in place (or never staged)
            if new.is_dir() and cur.exists():
                shutil.rmtree(replaced / name, ignore_errors=True)
                os.replace(cur, replaced / name)  # a folder cannot replace a folder in one rename
                _crash_point(f"{name}-aside")
            os.replace(new, cur)
            _crash_point(name)
        fsync_dir(self.path)
        _crash_point("switched")
        # the finished shards the staged dataset was made from (pipeline.shardstore) are done too
        for done in (replaced, self.staging, self.path / SHARDS):
            if done.exists():  # a crash may have removed it already
                shutil.rmtree(done)
        fsync_dir(self.path)
        _crash_point("cleaned")
        journal.unlink()
        fsync_dir(self.path)

    # ------------------------------------------------------------ reading

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the folder shared while ``validate``/``stats``/``push`` read it, after
        completing a publish a crashed build left. Folders we did not write pass as they are."""
        if not self._marked():
            yield
            return
        lock = FolderLock(self.path / LOCK, _command())
        try:
            if (self.path / JOURNAL).exists():
                lock.acquire(exclusive=True)
                self._complete_publish()
            lock.acquire(exclusive=False)  # flock converts in place
        except FolderBusy as exc:
            lock.release()
            raise UsageError(f"{self.path}: in use by {exc}; try again when it has finished") from None
        except OSError as exc:
            lock.release()
            raise UsageError(f"{self.path}: a publish interrupted by a crash must be completed, but the folder "
                             f"is not writable ({exc.strerror or exc})") from None
        try:
            yield
        finally:
            lock.release()


def _foreign_in_data(data: Path, configs: tuple[str, ...], splits: tuple[str, ...]) -> list[str]:
    foreign = []
    for cfg in sorted(data.iterdir()):
        if cfg.name not in configs or cfg.is_symlink() or not cfg.is_dir():
            foreign.append(f"data/{cfg.name}")
            continue
        foreign += [f"data/{cfg.name}/{f.name}" for f in sorted(cfg.iterdir())
                    if split_of_file(f.name) not in splits or f.is_symlink() or not f.is_file()]
    return foreign


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (KeyError, RuntimeError):  # no HOME and no passwd entry
        return None


def _crash_point(step: str) -> None:
    """Test hook: die here as a power cut would (no cleanup, no exit handlers)."""
    if os.environ.get("PERSRM_GEN_TEST_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)

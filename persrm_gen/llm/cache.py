"""Durable request cache: every completed response is committed the moment it arrives.

SQLite in WAL mode, one row per request key, one autocommit transaction per response.
A run killed at any point (SIGKILL included) loses at most the requests that were in
flight; a re-run finds everything else here and never pays for it twice.

``put`` commits at once. ``put_soon`` (the client's hot path) group-commits: rows that
arrive in the same event-loop turn are written in one transaction by a callback scheduled
for the very next turn, which cuts the per-response cost ~10x at thousands of responses
per second. A response is handed to ``put_soon`` before the next ``await``, so no
cancellation (SIGINT, a budget stop) can separate it from its row; only a SIGKILL in the
sub-millisecond before the flush can, and then the request is simply sent again, like any
request that was in flight. ``get`` sees pending rows; ``flush`` and ``close`` write them.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from persrm_gen.errors import UsageError
from persrm_gen.llm.types import LLMRequest, LLMResponse, request_key

_COLUMNS = """
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    stage TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    created REAL NOT NULL,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    batch INTEGER NOT NULL DEFAULT 0
"""
# Columns added after the first release: an older cache gains them on open (ALTER TABLE),
# its rows reading as 0/False; a read-only open reads them as 0 without migrating.
_ADDED = ("cached_input_tokens", "cache_write_tokens", "batch")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, {_COLUMNS});
CREATE TABLE IF NOT EXISTS rejected (key TEXT NOT NULL, {_COLUMNS});
CREATE INDEX IF NOT EXISTS rejected_by_key ON rejected (key);
"""
_TABLES = ("responses", "rejected")
# Errors in our own use of sqlite (a closed cache, a bad statement): bugs, not a damaged file.
_BUGS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError, sqlite3.NotSupportedError)
_COLS = "text, input_tokens, output_tokens, finish_reason, " + ", ".join(_ADDED)
_CHUNK = 500  # below SQLite's bound-parameter limit

_NAMES = ("key, provider, model, stage, request, text, input_tokens, output_tokens, finish_reason, created, "
          + ", ".join(_ADDED))
_INSERT = f"INSERT OR REPLACE INTO responses ({_NAMES}) VALUES ({','.join('?' * 13)})"
_INSERT_REJECTED = f"INSERT INTO rejected ({_NAMES}) VALUES ({','.join('?' * 13)})"


def _row(row: tuple) -> LLMResponse:
    return LLMResponse(text=row[0], input_tokens=row[1], output_tokens=row[2], finish_reason=row[3],
                       cached_input_tokens=row[4], cache_write_tokens=row[5], batch=bool(row[6]))


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older cache lacks (rows already there read as 0/False)."""
    for table in _TABLES:
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for column in _ADDED:
            if column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


def _select_cols(db: sqlite3.Connection, table: str) -> str:
    """The columns _row reads; those an unmigrated (read-only) cache lacks read as 0."""
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    return ", ".join(c if c in have or c not in _ADDED else f"0 AS {c}" for c in _COLS.split(", "))


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro`` reads the WAL a killed run left behind; without a WAL the file is whole and
    ``immutable=1`` reads it without creating ``-wal``/``-shm`` beside it (as ``mode=ro``
    alone would), so even a read-only folder can be read."""
    wal = path.with_name(path.name + "-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if wal else "?mode=ro&immutable=1")
    return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)


def unusable_cache(path: Path, error: BaseException) -> UsageError:
    """One line that says what is wrong with the cache file and how to get going again."""
    msg = str(error).lower()
    p = shlex.quote(str(path))
    aside = f"move it aside (mv {p} {shlex.quote(str(path) + '.bad')}) and re-run with --new-cache"
    if "readonly" in msg or "read-only" in msg or (path.exists() and not os.access(path, os.W_OK)):
        return UsageError(f"{path}: the request cache is read-only ({error}); make it writable "
                          f"(chmod u+w {p}), or {aside} (requests it held are paid for again)")
    if "full" in msg:
        return UsageError(f"{path}: the disk is full ({error}); free some space and re-run the same command "
                          "(every response cached so far is kept)")
    if "locked" in msg or "busy" in msg:
        return UsageError(f"{path}: the request cache is in use by another process ({error}); "
                          "wait for it to finish and re-run")
    return UsageError(f"{path}: the request cache is damaged or not a persrm-gen cache ({error}); "
                      f"{aside} (requests it held are paid for again)")


class RequestCache:
    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[str, tuple] = {}
        self._pending_rejected: list[tuple] = []
        self._flush_handle: asyncio.Handle | None = None
        self._db = self._open_read_only() if read_only else self._open()
        with self._io() as db:
            self._has_rejected = db.execute("SELECT 1 FROM sqlite_master WHERE name='rejected'").fetchone() is not None
            self._cols = {t: _select_cols(db, t) for t in _TABLES if t != "rejected" or self._has_rejected}

    def _open_read_only(self) -> sqlite3.Connection:
        """A dry run: reads what is cached and writes nothing."""
        try:
            db = _connect_read_only(self.path)
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in names & set(_TABLES):  # an older cache may lack a table: it is not migrated here
                db.execute(f"SELECT max(rowid) FROM {table}").fetchone()
        except sqlite3.DatabaseError as e:
            raise unusable_cache(self.path, e) from None
        return db

    def _open(self) -> sqlite3.Connection:
        db = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            # Another process on the same file (a second run, `persrm-gen stats`) waits, not fails.
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process death (SIGKILL) in WAL mode; only an OS
            # crash can lose the last transactions, which the re-run then simply re-sends.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
            for table in _TABLES:  # reads the schema and each table's rightmost pages: cheap
                db.execute(f"SELECT max(rowid) FROM {table}").fetchone()
            if self.path.exists() and not os.access(self.path, os.W_OK):
                # sqlite opens a read-only file read-only and fails at the first write: say it now.
                raise sqlite3.OperationalError("attempt to write a readonly database")
        except _BUGS:
            raise
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            raise unusable_cache(self.path, e) from None
        return db

    @contextmanager
    def _io(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; damage found later is the same one-line error."""
        with self._lock:
            try:
                yield self._db
            except _BUGS:
                raise
            except sqlite3.DatabaseError as e:
                raise unusable_cache(self.path, e) from None

    def get(self, key: str) -> LLMResponse | None:
        if key in self._pending:
            row = self._pending[key]
            return _row(row[5:9] + row[10:])
        with self._io() as db:
            row = db.execute(f"SELECT {self._cols['responses']} FROM responses WHERE key=?", (key,)).fetchone()
        return None if row is None else _row(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, LLMResponse]:
        """Every cached response among ``keys``, in a few queries instead of one per key."""
        self.flush()
        keys = list(dict.fromkeys(keys))
        found: dict[str, LLMResponse] = {}
        for row in self._select("responses", keys):
            found[row[0]] = _row(row[1:])
        return found

    def rejected_many(self, keys: Iterable[str]) -> dict[str, list[LLMResponse]]:
        """Every paid reply that failed validation, per key (in arrival order); keys without any are left out."""
        self.flush()
        found: dict[str, list[LLMResponse]] = {}
        if not self._has_rejected:  # a cache opened without migrating (read-only) that predates the table
            return found
        for row in self._select("rejected", list(dict.fromkeys(keys)), order="rowid"):
            found.setdefault(row[0], []).append(_row(row[1:]))
        return found

    def _select(self, table: str, keys: list[str], order: str = "") -> Iterator[tuple]:
        rows: list[tuple] = []
        with self._io() as db:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                order_by = f" ORDER BY {order}" if order else ""
                rows += db.execute(f"SELECT key, {self._cols[table]} FROM {table} WHERE key IN ({marks}){order_by}", chunk)
        return iter(rows)

    def __contains__(self, key: str) -> bool:
        if key in self._pending:
            return True
        with self._io() as db:
            return db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone() is not None

    def put(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
            request_json: str | None = None) -> None:
        """Write one response now (committed when this returns)."""
        row = self._make_row(key, provider, request, response, request_json)
        with self._io() as db:
            db.execute(_INSERT, row)

    def put_rejected(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
                     request_json: str | None = None) -> None:
        """Record one paid reply that failed validation now (committed when this returns)."""
        row = self._make_row(key, provider, request, response, request_json)
        with self._io() as db:
            db.execute(_INSERT_REJECTED, row)

    def put_rejected_soon(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
                          request_json: str | None = None) -> None:
        """Queue one rejected reply for the next group commit (like :meth:`put_soon`)."""
        self._pending_rejected.append(self._make_row(key, provider, request, response, request_json))
        self._schedule_flush()

    def put_soon(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
                 request_json: str | None = None) -> None:
        """Queue one response for the group commit at the start of the next loop turn."""
        self._pending[key] = self._make_row(key, provider, request, response, request_json)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_in_loop)

    def _flush_in_loop(self) -> None:
        # An error here would only be logged by the event loop (with a traceback); the rows
        # stay queued and the next explicit flush (end of complete_many, close) raises it.
        self._flush_handle = None
        with suppress(UsageError):
            self.flush()

    def flush(self) -> None:
        """Commit every queued response in one transaction."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending and not self._pending_rejected:
            return
        pending, self._pending = self._pending, {}
        rejected, self._pending_rejected = self._pending_rejected, []
        with self._io() as db:
            try:
                db.execute("BEGIN")
                db.executemany(_INSERT, list(pending.values()))
                db.executemany(_INSERT_REJECTED, rejected)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                # Keep the rows: the next flush (end of complete_many, close) tries again.
                self._pending = {**pending, **self._pending}
                self._pending_rejected = rejected + self._pending_rejected
                raise

    @staticmethod
    def _make_row(key: str, provider: str, request: LLMRequest, response: LLMResponse,
                  request_json: str | None) -> tuple:
        if request_json is None:
            request_json = request_key(request, provider)[1]
        return (key, provider, request.model, request.stage, request_json, response.text,
                response.input_tokens, response.output_tokens, response.finish_reason, time.time(),
                response.cached_input_tokens, response.cache_write_tokens, int(response.batch))

    def __len__(self) -> int:
        """Valid responses held (rejected replies are not counted)."""
        self.flush()
        with self._io() as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        with self._lock:
            self._closed = True
            self._db.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

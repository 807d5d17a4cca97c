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
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

from persrm_gen.generator.transport import LLMRequest, LLMResponse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    stage TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_COLS = "text, input_tokens, output_tokens, finish_reason"
_CHUNK = 500  # below SQLite's bound-parameter limit


_INSERT = "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)"


def _row(row: tuple) -> LLMResponse:
    return LLMResponse(text=row[0], input_tokens=row[1], output_tokens=row[2], finish_reason=row[3])


_REQ_FIELDS = tuple(f.name for f in fields(LLMRequest))


def request_key(request: LLMRequest, provider: str) -> tuple[str, str]:
    """(key, canonical JSON): the key equals ``request.cache_key(provider)``, ~5x cheaper.

    ``dataclasses.asdict`` deep-copies recursively; this builds the same dict by hand.
    A test pins the equality, so the two can never drift apart.
    """
    d = {name: getattr(request, name) for name in _REQ_FIELDS}
    if request.messages is not None:
        d["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    d["provider"] = provider
    blob = json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest(), blob


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro`` reads the WAL a killed run left behind; without a WAL the file is whole and
    ``immutable=1`` reads it without creating ``-wal``/``-shm`` beside it (as ``mode=ro``
    alone would), so even a read-only folder can be read."""
    wal = path.with_name(path.name + "-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if wal else "?mode=ro&immutable=1")
    return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)


class RequestCache:
    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[str, tuple] = {}
        self._flush_handle: asyncio.Handle | None = None
        if read_only:  # a dry run: reads what is cached and writes nothing
            self._db = _connect_read_only(self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # Another process on the same file (a second run, `persrm-gen stats`) waits, not fails.
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process death (SIGKILL) in WAL mode; only an OS
        # crash can lose the last transactions, which the re-run then simply re-sends.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> LLMResponse | None:
        if key in self._pending:
            return _row(self._pending[key][5:9])
        with self._lock:
            row = self._db.execute(f"SELECT {_COLS} FROM responses WHERE key=?", (key,)).fetchone()
        return None if row is None else _row(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, LLMResponse]:
        """Every cached response among ``keys``, in a few queries instead of one per key."""
        self.flush()
        keys = list(dict.fromkeys(keys))
        found: dict[str, LLMResponse] = {}
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT key, {_COLS} FROM responses WHERE key IN ({marks})", chunk
                ):
                    found[row[0]] = _row(row[1:])
        return found

    def __contains__(self, key: str) -> bool:
        if key in self._pending:
            return True
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone() is not None

    def put(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
            request_json: str | None = None) -> None:
        """Write one response now (committed when this returns)."""
        row = self._make_row(key, provider, request, response, request_json)
        with self._lock:
            self._db.execute(_INSERT, row)

    def put_soon(self, key: str, provider: str, request: LLMRequest, response: LLMResponse,
                 request_json: str | None = None) -> None:
        """Queue one response for the group commit at the start of the next loop turn."""
        self._pending[key] = self._make_row(key, provider, request, response, request_json)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Commit every queued response in one transaction."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, list(pending.values()))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                # Keep the rows: the next flush (end of complete_many, close) tries again.
                self._pending = {**pending, **self._pending}
                raise

    @staticmethod
    def _make_row(key: str, provider: str, request: LLMRequest, response: LLMResponse,
                  request_json: str | None) -> tuple:
        if request_json is None:
            request_json = request_key(request, provider)[1]
        return (key, provider, request.model, request.stage, request_json, response.text,
                response.input_tokens, response.output_tokens, response.finish_reason, time.time())

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

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

"""Where ``--batch`` keeps what it submitted: two tables of cache.sqlite (schema in llm.cache).

``batches``: one row per batch (its id, the provider and server, the last state seen, and
``done`` once its results are downloaded). ``batch_requests``: one row per line, custom_id
-> cache key, and the line's reply once downloaded (``state`` sent -> result -> used, or
failed). Rows are written before the run waits on anything: a batch is first recorded
under a local tag (``state = submitting``), then under the id the provider gave. A run
killed at any point finds every line in flight here and waits for it instead of submitting
it again; a reply downloaded but not yet in the response cache is taken from here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.types import LLMResponse

SUBMITTING = "submitting"


@dataclass(frozen=True)
class BatchRow:
    batch_id: str
    provider: str
    endpoint: str | None
    state: str
    done: bool
    requests: int
    round: int
    message: str
    created: float
    updated: float


class BatchStore:
    def __init__(self, cache: RequestCache, scope: str = ""):
        self.cache, self.scope = cache, scope

    # ---- writes (the build) -------------------------------------------------------------

    def intend(self, tag: str, provider: str, endpoint: str | None, rnd: int, lines: list[tuple[str, str]]) -> None:
        """Record a batch about to be created (``lines``: custom_id, key) under our own ``tag``."""
        now = time.time()
        with self.cache.transaction() as db:
            db.execute("INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (tag, provider, endpoint, self.scope, SUBMITTING, 0, len(lines), rnd, "", now, now))
            db.executemany("INSERT INTO batch_requests VALUES (?,?,?,?,NULL)",
                           [(cid, tag, key, "sent") for cid, key in lines])

    def created(self, tag: str, batch_id: str) -> None:
        """The provider's id for the batch recorded as ``tag``."""
        with self.cache.transaction() as db:
            db.execute("UPDATE batches SET batch_id=?, state='created', updated=? WHERE batch_id=?", (batch_id, time.time(), tag))
            db.execute("UPDATE batch_requests SET batch_id=? WHERE batch_id=?", (batch_id, tag))

    def abandon(self, batch_id: str, message: str) -> None:
        """A batch that never reached the provider (or cannot be found there): its lines are free to go again."""
        self.finish(batch_id, "not submitted", message, [])

    def set_state(self, batch_id: str, state: str, message: str = "") -> None:
        with self.cache.transaction() as db:
            db.execute("UPDATE batches SET state=?, message=?, updated=? WHERE batch_id=?", (state, message, time.time(), batch_id))

    def finish(self, batch_id: str, state: str, message: str, replies: list[tuple[str, LLMResponse]]) -> None:
        """One transaction: the downloaded replies (custom_id, reply) are kept, the other lines marked
        failed, the batch done. From here a crash loses nothing: the replies wait here."""
        with self.cache.transaction() as db:
            db.executemany("UPDATE batch_requests SET state='result', result=? WHERE custom_id=? AND state='sent'",
                           [(_dump(r), cid) for cid, r in replies])
            db.execute("UPDATE batch_requests SET state='failed' WHERE batch_id=? AND state='sent'", (batch_id,))
            db.execute("UPDATE batches SET state=?, message=?, done=1, updated=? WHERE batch_id=?",
                       (state, message, time.time(), batch_id))

    def used(self, custom_ids: list[str]) -> None:
        """These replies are in the response cache now (committed): drop their second copy."""
        with self.cache.transaction() as db:
            db.executemany("UPDATE batch_requests SET state='used', result=NULL WHERE custom_id=?", [(c,) for c in custom_ids])

    # ---- reads --------------------------------------------------------------------------

    def open_batches(self) -> list[BatchRow]:
        """Batches of this scope whose results are not downloaded yet (oldest first)."""
        rows = self.cache.read(f"SELECT {_COLS} FROM batches WHERE done=0 AND scope=? ORDER BY created", (self.scope,))
        return [_batch(r) for r in rows]

    def lines_of(self, batch_id: str) -> dict[str, str]:
        """custom_id -> key of every line still waiting in a batch."""
        return dict(self.cache.read("SELECT custom_id, key FROM batch_requests WHERE batch_id=? AND state='sent'", (batch_id,)))

    def waiting_replies(self) -> dict[str, tuple[str, LLMResponse]]:
        """key -> (custom_id, reply) of replies downloaded but not yet handed to the response cache."""
        rows = self.cache.read("SELECT custom_id, key, result FROM batch_requests WHERE state='result'")
        return {key: (cid, _load(result)) for cid, key, result in rows}

    def all_batches(self) -> list[BatchRow]:
        """Every batch of the folder, oldest first (``persrm-gen batches``)."""
        return [_batch(r) for r in self.cache.read(f"SELECT {_COLS} FROM batches ORDER BY created")]


_COLS = "batch_id, provider, endpoint, state, done, requests, round, message, created, updated"


def _batch(row: tuple) -> BatchRow:
    return BatchRow(*row[:4], bool(row[4]), *row[5:])  # type: ignore[arg-type]


def _dump(r: LLMResponse) -> str:
    d = asdict(r)
    d.pop("meta", None)
    return json.dumps(d, ensure_ascii=False)


def _load(text: str) -> LLMResponse:
    return LLMResponse(**json.loads(text))

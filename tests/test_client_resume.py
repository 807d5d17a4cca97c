"""Kill the client at any moment and re-run: nothing completed is ever sent twice.

A small driver script runs LLMClient (aiohttp fast path) in a subprocess against the fake
server running in this process, so the server's log is the ground truth for what was sent.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakeserver import KEY, FakeServer

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[1]
N, CONCURRENCY = 240, 8

DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from persrm_gen.llm.backends import make_transport
    from persrm_gen.llm.cache import RequestCache
    from persrm_gen.llm.client import LLMClient, RunInterrupted, run
    from persrm_gen.llm.types import LLMRequest, Message

    base, cache_path, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    async def main() -> int:
        transport = make_transport("openai", "gpt-4.1-mini", base, 10.0)
        client = LLMClient(transport, RequestCache(cache_path), concurrency=concurrency, timeout=10.0)
        client.handle_signals()
        reqs = [LLMRequest(model="gpt-4.1-mini", messages=(Message("user", f"item {i:04d}"),))
                for i in range(n)]
        try:
            await client.complete_many(reqs)
        except RunInterrupted as e:
            print(e, file=sys.stderr)
            return 130
        finally:
            await client.aclose()
        print("done", client.accounting.total().completed)
        return 0

    sys.exit(run(main()))
    """
)


def start_driver(tmp_path: Path, server: FakeServer) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(script), server.openai_base, str(tmp_path / "cache.sqlite"), str(N), str(CONCURRENCY)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_served(server: FakeServer, count: int, proc: subprocess.Popen, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while sum(server.served().values()) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "driver made no progress"
        time.sleep(0.01)


def cached_texts(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT request FROM responses").fetchall()
    finally:
        db.close()
    return {json.loads(r[0])["messages"][-1]["content"] for r in rows}


def test_sigkill_mid_run_then_resume_sends_nothing_twice(tmp_path):
    with FakeServer(delay=0.03) as server:
        proc = start_driver(tmp_path, server)
        wait_for_served(server, N // 3, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        first_run = len(server.snapshot())
        cached = cached_texts(tmp_path / "cache.sqlite")
        assert N // 3 - CONCURRENCY <= len(cached) < N  # minus what was still in flight

        proc = start_driver(tmp_path, server)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        second_run = server.snapshot()[first_run:]

    resent = {h.text for h in second_run} & cached
    assert resent == set()  # a response that reached the cache is never paid for again
    assert cached_texts(tmp_path / "cache.sqlite") == {f"item {i:04d}" for i in range(N)}
    # Only requests that were in flight at the kill can have been served twice.
    duplicates = sum(c - 1 for c in server.served().values() if c > 1)
    assert duplicates <= CONCURRENCY
    assert f"done {N - len(cached)}" in out


def test_sigint_finishes_in_flight_writes_and_exits_with_a_resume_hint(tmp_path):
    with FakeServer(delay=0.05) as server:
        proc = start_driver(tmp_path, server)
        wait_for_served(server, N // 4, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        served = set(server.served())
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err and "Traceback" not in err
    cached = cached_texts(tmp_path / "cache.sqlite")
    # Every response the server delivered, including those in flight at the signal, was cached.
    assert served == cached
    assert N // 4 <= len(cached) < N

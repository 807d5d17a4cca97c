"""Requests/s through LLMClient against a loopback OpenAI-compatible server (200 ms replies).

    python benchmarks/client_throughput.py                     # all rows, 64/256/1024 in flight
    python benchmarks/client_throughput.py --rows raw,fast --levels 256

Rows:
  ideal  in_flight / delay: what a zero-cost client would reach (as in the issue's table)
  raw    bare aiohttp + uvloop, one semaphore: the practical ceiling on this machine
  fast   LLMClient + FastOpenAITransport (aiohttp wire format), everything on:
         retries, rpm/tpm buckets, durable SQLite cache writes, budget, accounting
  sdk    LLMClient + OpenAITransport (official AsyncOpenAI on its aiohttp transport), same
  sdk-bare  AsyncOpenAI (aiohttp transport) with a semaphore, none of our machinery

2,000 requests per level, 8,000 at 1,024 in flight. The server runs in its own process
(benchmarks/fake_openai_server.py). Each cell is the best of ``--repeat`` runs, since the
machine is shared. Results also go to benchmarks/results/client_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from persrm_gen.llm.cache import RequestCache  # noqa: E402
from persrm_gen.llm.client import LLMClient  # noqa: E402
from persrm_gen.llm.pricing import Pricing  # noqa: E402
from persrm_gen.llm.types import LLMRequest, Message  # noqa: E402

MODEL = "gpt-4.1-mini"
PROMPT = "Which response would this author have written? Think, then answer <answer>A</answer> or B."


def requests_for(n: int, tag: str) -> list[LLMRequest]:
    # Unique per run so the cache never answers: every request really goes out.
    return [LLMRequest(model=MODEL, messages=(Message("system", "You judge style."),
                                              Message("user", f"{PROMPT} [{tag}-{i}]")),
                       max_tokens=64, stage="bench") for i in range(n)]


async def run_raw(base: str, n: int, conc: int) -> None:
    import aiohttp

    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64})
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def one() -> None:
            async with sem:
                async with session.post(base + "/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as r:
                    await r.json()

        await asyncio.gather(*(one() for _ in range(n)))


async def run_sdk_bare(base: str, n: int, conc: int) -> None:
    import httpx2
    import openai

    http = openai.DefaultAioHttpClient(limits=httpx2.Limits(max_connections=conc, max_keepalive_connections=conc))
    client = openai.AsyncOpenAI(api_key="bench", base_url=base, max_retries=0, http_client=http)
    sem = asyncio.Semaphore(conc)

    async def one() -> None:
        async with sem:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=64)

    await asyncio.gather(*(one() for _ in range(n)))
    await client.close()


async def run_client(http: str, base: str, n: int, conc: int, cache_dir: str) -> None:
    from persrm_gen.llm.backends import make_transport

    transport = make_transport("openai", MODEL, base, 30.0, http=http, max_connections=conc,
                               env={"OPENAI_API_KEY": "bench"})
    cache = RequestCache(Path(cache_dir) / f"{http}-{conc}-{time.time_ns()}.sqlite")
    # Limits far above what the loopback can reach, so the buckets run but never bind.
    client = LLMClient(transport, cache, concurrency=conc, rpm=10_000_000, tpm=10_000_000_000,
                       max_cost=1e9, max_requests=10_000_000, timeout=30.0, pricing=Pricing())
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1

    await client.complete_many(requests_for(n, f"{time.time_ns()}"), on_done=tick)
    await client.aclose()
    assert done == n and len(cache) == n, (done, len(cache))
    cache.close()


def measure(row: str, base: str, n: int, conc: int, cache_dir: str) -> float:
    if row == "raw":
        coro = run_raw(base, n, conc)
    elif row == "sdk-bare":
        coro = run_sdk_bare(base, n, conc)
    else:
        coro = run_client(row, base, n, conc, cache_dir)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        t0 = time.perf_counter()
        runner.run(coro)
        return n / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "fake_openai_server.py"), "--port", str(port),
                             "--delay", str(delay)], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}/v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="raw,fast,sdk,sdk-bare")
    ap.add_argument("--levels", default="64,256,1024")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-1024", type=int, default=8000)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--url", help="use a running server instead of starting one")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows = args.rows.split(",")
    server, base = (None, args.url) if args.url else start_server(args.delay)
    table: dict[str, dict[int, float]] = {"ideal": {}}
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            for conc in levels:
                n = args.n_1024 if conc >= 1024 else args.n
                table["ideal"][conc] = conc / args.delay
                for row in rows:
                    best = max(measure(row, base, n, conc, cache_dir) for _ in range(args.repeat))
                    table.setdefault(row, {})[conc] = best
                    print(f"{row:>9} @ {conc:>4} in flight: {best:7.0f} req/s", flush=True)
    finally:
        if server is not None:
            server.terminate()
    print_table(table, levels)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "client_throughput.json").write_text(json.dumps(
        {"cpus": os.cpu_count(), "delay": args.delay, "requests_per_s": table}, indent=2))


def print_table(table: dict[str, dict[int, float]], levels: list[int]) -> None:
    print("\n| row | " + " | ".join(f"{c} in flight" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for row, cells in table.items():
        print(f"| {row} | " + " | ".join(f"{cells.get(c, float('nan')):.0f}" for c in levels) + " |")


if __name__ == "__main__":
    main()

"""Our own cost per request in ``--batch`` mode: encode, record, upload, poll, download, parse, cache.

    python benchmarks/batch_throughput.py                      # 5,000 and 20,000 requests
    python benchmarks/batch_throughput.py --requests 50000 --chars 2000

The provider's own time (hours, at worst) is not ours to measure; what is ours is the work
on this machine around it, which decides whether a 100k-request build waits on the
provider or on us. The server is tests/fakeserver.py's FakeServer (OpenAI Files + Batches,
a real aiohttp server on 127.0.0.1, in a thread of this process; ``batch_delay`` 0, so a
batch ends at its first poll), driven through the official SDK by the real client with a
BatchRunner, into a fresh cache.sqlite. Each request is a chat message of ``--chars``
characters (the judge's prompts are ~13,000). Reported: wall time, requests per second,
the batches (split at OpenAI's 50,000 requests / 200 MB), the lines the server processed
(each exactly once), and the size of cache.sqlite. The server shares the process and its
CPU, so the numbers are an upper bound on our cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import KEY, FakeServer  # noqa: E402

from persrm_gen.llm.batches import make_batch_api  # noqa: E402
from persrm_gen.llm.batches.runner import BatchRunner  # noqa: E402
from persrm_gen.llm.cache import RequestCache  # noqa: E402
from persrm_gen.llm.client import LLMClient  # noqa: E402
from persrm_gen.llm.transports.fast_openai import FastOpenAITransport  # noqa: E402
from persrm_gen.llm.types import LLMRequest, Message  # noqa: E402


def requests(n: int, chars: int) -> list[LLMRequest]:
    filler = ("The quick brown fox jumps over the lazy dog. " * (chars // 45 + 1))[:chars]
    return [LLMRequest(model="gpt-4.1-mini", messages=(Message("user", f"{i}: {filler}"),), seed=i, max_tokens=64)
            for i in range(n)]


async def run_once(server: FakeServer, folder: Path, reqs: list[LLMRequest]) -> tuple[float, LLMClient]:
    api = make_batch_api("openai", server.openai_base, env={"OPENAI_API_KEY": KEY})
    transport = FastOpenAITransport(api_key=KEY, base_url=server.openai_base)
    client = LLMClient(transport, RequestCache(folder / "cache.sqlite"), batch=BatchRunner(api, poll=0.05))
    t0 = time.perf_counter()
    async with client:
        out = await client.complete_many(reqs)
    assert len(out) == len(reqs) and all(o.batch for o in out)
    return time.perf_counter() - t0, client


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", default="5000,20000", help="comma list of request counts")
    ap.add_argument("--chars", type=int, default=2000, help="characters per request")
    args = ap.parse_args()
    print(f"{'requests':>9} {'wall s':>8} {'req/s':>8} {'batches':>8} {'processed':>10} {'cache MB':>9}")
    for n in (int(x) for x in args.requests.split(",")):
        reqs = requests(n, args.chars)
        with FakeServer(batch_delay=0.0) as server, tempfile.TemporaryDirectory() as tmp:
            wall, client = asyncio.run(run_once(server, Path(tmp), reqs))
            size = (Path(tmp) / "cache.sqlite").stat().st_size / 1e6
            processed = sum(server.batch_processed.values())
            assert max(server.batch_processed.values()) == 1
            print(f"{n:>9,} {wall:>8.1f} {n / wall:>8,.0f} {len(server.batches):>8} {processed:>10,} {size:>9.1f}")


if __name__ == "__main__":
    main()

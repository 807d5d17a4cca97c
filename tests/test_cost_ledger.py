"""The ledger matches the invoice: what our client bills equals what the server charged.

Driven through the real transports (aiohttp fast path, AsyncOpenAI, AsyncAnthropic) against
tests/fakeserver.py with prompt caching on and the providers' list prices, so cached reads,
cache writes and the budget are checked against a bill computed independently, server-side.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from fakeserver import MODELS, TRANSPORTS, FakeServer, make_test_transport
from persrm_gen.errors import BudgetExceeded, UsageError
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse, Message
from persrm_gen.llm.usage import DatasetUsage

# List prices (USD per 1M tokens) as the providers publish them, written out independently of
# persrm_gen.llm.pricing: the client bills with its own table, the server with this one.
LIST_PRICES = {
    "gpt-4.1-mini": {"input": 0.40, "cached_input": 0.10, "output": 1.60, "batch_multiplier": 0.5},
    "claude-sonnet-4-5": {"input": 3.0, "cached_input": 0.30, "cache_write": 3.75, "output": 15.0,
                          "batch_multiplier": 0.5},
}
SAMPLES = "# Writing samples by the author\n\n" + " ".join(f"word{i % 97} of the author's sample" for i in range(400))


def requests(kind: str, n: int) -> list[LLMRequest]:
    """``n`` judge-like requests sharing ~2,000 tokens of samples (with a breakpoint after them)."""
    return [LLMRequest(model=MODELS[kind], max_tokens=32, seed=i, messages=(
        Message("system", "You judge style."),
        Message("user", f"{SAMPLES}\n\n# Pair {i}\nResponse A ... Response B ...", cache_prefix=len(SAMPLES)),
    )) for i in range(n)]


def drive(kind, server, tmp_path, batches, **kw):
    """Send each list in ``batches`` in turn (the first warms the prefix); (client, usage, error)."""

    async def main():
        client = LLMClient(make_test_transport(kind, server), RequestCache(tmp_path / "cache.sqlite"),
                           retry_base=0.01, **kw)
        usage = DatasetUsage(client.pricing)
        try:
            for reqs in batches:
                usage.add(reqs, await client.complete_many(reqs))
            return client, usage, None
        except BudgetExceeded as e:
            return client, usage, e
        finally:
            await client.aclose()
            client.cache.close()

    return asyncio.run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_the_ledger_equals_what_the_server_billed_with_prompt_caching(kind, tmp_path):
    reqs = requests(kind, 6)
    with FakeServer(caching=True, prices=LIST_PRICES) as server:
        client, usage, _ = drive(kind, server, tmp_path, [reqs[:1], reqs[1:]])
        billed, sent = server.billed(), [h.usage for h in server.snapshot()]
        # The cache keeps what was billed: a re-run sends nothing and counts the same dataset cost.
        _, usage2, _ = drive(kind, server, tmp_path, [reqs[:1], reqs[1:]])
        assert server.billed() == billed and len(server.snapshot()) == 6
    assert usage2.to_dict() == usage.to_dict()
    t = client.accounting.total()
    assert t.cached_input_tokens >= 5 * 1024  # every request after the first read the samples
    assert t.cost_usd == pytest.approx(billed, rel=1e-9, abs=1e-12)
    assert t.list_cost_usd > t.cost_usd  # the discount shows
    line = client.accounting.summary()  # the live display
    assert f"${t.cost_usd:.4f} (saved ${t.list_cost_usd - t.cost_usd:.4f})" in line and "from prompt cache" in line
    assert usage.to_dict()["total"]["cost_usd"] == pytest.approx(billed, abs=2e-6)
    assert usage.to_dict()["total"]["cached_share"] > 0.5
    if kind == "anthropic":
        assert t.cache_write_tokens > 0  # the first request wrote the samples
        # the whole prompt is input; the SDK reported reads and writes apart from input_tokens
        sent = [h.usage for h in server.snapshot()]
        assert t.input_tokens == sum(u["input_tokens"] + u["cache_read_input_tokens"]
                                     + u["cache_creation_input_tokens"] for u in sent)

        # The cache keeps what was billed: a re-run sends nothing and counts the same dataset cost.
        _, usage2, _ = drive(kind, server, tmp_path, [reqs[:1], reqs[1:]])
        assert server.billed() == billed and len(server.snapshot()) == 6
    assert usage2.to_dict() == usage.to_dict()


def test_prompt_cache_key_reaches_openai_and_breakpoints_reach_anthropic(tmp_path):
    from dataclasses import replace

    with FakeServer() as server:
        drive("sdk", server, tmp_path / "o", [[replace(r, cache_group="author-7") for r in requests("sdk", 1)]])
        drive("anthropic", server, tmp_path / "a", [requests("anthropic", 1)])
        openai_hit, anthropic_hit = server.snapshot()
    assert openai_hit.cache_key == "author-7"
    head, tail = anthropic_hit.body["messages"][0]["content"]
    assert head == {"type": "text", "text": SAMPLES, "cache_control": {"type": "ephemeral"}}
    # and one at the end, which a re-sample of the same prompt reads whole
    assert tail == {"type": "text", "text": "\n\n# Pair 0\nResponse A ... Response B ...",
                    "cache_control": {"type": "ephemeral"}}
    assert anthropic_hit.body["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_max_cost_stops_on_the_billed_cost_not_the_list_price(tmp_path):
    reqs = requests("fast", 20)
    # One at a time, so each request finds the samples cached by the one before.
    with FakeServer(caching=True, prices=LIST_PRICES) as server:
        client, _, _ = drive("fast", server, tmp_path / "a", [reqs], concurrency=1)
    full = client.accounting.total()
    limit = full.cost_usd + 0.003  # room for the worst case of the last request, far below list
    assert full.list_cost_usd > limit

    with FakeServer(caching=True, prices=LIST_PRICES) as server:
        client, _, err = drive("fast", server, tmp_path / "b", [reqs], concurrency=1, max_cost=limit)
        billed = server.billed()
    assert err is None and client.accounting.total().completed == 20  # list-price accounting would have stopped
    assert client.budget.spent_cost == pytest.approx(billed, abs=1e-12)

    with FakeServer(caching=True, prices=LIST_PRICES) as server:
        client, _, err = drive("fast", server, tmp_path / "c", [reqs], concurrency=1, max_cost=full.cost_usd / 2)
        billed = server.billed()
    assert isinstance(err, BudgetExceeded)
    assert 0 < client.accounting.total().completed < 20
    assert client.budget.spent_cost == pytest.approx(billed, abs=1e-12) and billed <= full.cost_usd / 2


def test_bill_applies_cache_prices_and_the_batch_multiplier():
    p = Pricing()
    plain = LLMResponse("x", input_tokens=1_000_000, output_tokens=1_000_000)
    assert p.bill("gpt-4.1-mini-2025-04-14", plain).billed == pytest.approx(0.40 + 1.60)
    cached = LLMResponse("x", input_tokens=1_000_000, output_tokens=0, cached_input_tokens=750_000)
    assert p.bill("gpt-4.1-mini", cached).billed == pytest.approx(0.25 * 0.40 + 0.75 * 0.10)
    assert p.bill("gpt-4.1-mini", cached).list == pytest.approx(0.40)
    batch = LLMResponse("x", input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=1_000_000, batch=True)
    assert p.bill("gpt-4.1-mini", batch).billed == pytest.approx(0.5 * (0.10 + 1.60))  # the discounts stack
    wrote = LLMResponse("x", input_tokens=2_000_000, cache_write_tokens=1_000_000, cached_input_tokens=1_000_000)
    assert p.bill("claude-sonnet-4-5", wrote).billed == pytest.approx(3.75 + 0.30)
    assert p.bill("claude-sonnet-4-5", wrote).saved == pytest.approx(6.0 - 4.05)
    assert p.bill("my-vllm-model", batch).billed == 0.0


def test_config_prices_keep_the_default_discount_shares_unless_given():
    p = Pricing({"gpt-4.1-mini": {"input": 0.2, "output": 1.0},
                 "my-model": {"input": 1, "output": 2, "cached_input": 0.5, "batch_multiplier": 0.4}})
    assert p.price("gpt-4.1-mini").cached_input_per_mtok == pytest.approx(0.05)
    assert p.price("gpt-4.1-mini").batch_multiplier == 0.5
    mine = p.price("my-model")
    assert (mine.cached_input_per_mtok, mine.cache_write_per_mtok, mine.batch_multiplier) == (0.5, None, 0.4)
    with pytest.raises(UsageError, match="cached_input"):
        Pricing({"m": {"input": 1, "output": 2, "cache_reads": 1}})


def test_a_cache_without_the_cost_columns_is_migrated_and_reads_them_as_zero(tmp_path):
    path = tmp_path / "cache.sqlite"
    db = sqlite3.connect(path)
    cols = ("key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, stage TEXT NOT NULL, "
            "request TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
            "output_tokens INTEGER NOT NULL, finish_reason TEXT NOT NULL, created REAL NOT NULL")
    db.execute(f"CREATE TABLE responses ({cols})")
    db.execute(f"CREATE TABLE rejected ({cols.replace(' PRIMARY KEY', '')})")
    db.execute("INSERT INTO responses VALUES ('k', 'openai', 'm', 's', '{}', 'old', 10, 2, 'stop', 0)")
    db.commit()
    db.close()
    with RequestCache(path, read_only=True) as cache:  # a dry run reads it unmigrated
        assert cache.get_many(["k"]) == {"k": LLMResponse("old", 10, 2)}
    new = LLMResponse("new", 10, 2, cached_input_tokens=8, cache_write_tokens=1, batch=True)
    with RequestCache(path) as cache:
        assert cache.get("k") == LLMResponse("old", 10, 2)
        cache.put("k2", "openai", requests("fast", 1)[0], new)
    with RequestCache(path) as cache:
        assert cache.get_many(["k", "k2"]) == {"k": LLMResponse("old", 10, 2), "k2": new}


@pytest.mark.parametrize("kind", ["fast", "anthropic"])
def test_the_dry_run_projects_the_cached_share_and_the_live_and_batch_cost(kind, tmp_path):
    reqs = requests(kind, 10)
    with FakeServer() as server, RequestCache(tmp_path / "cache.sqlite") as cache:
        client = LLMClient(make_test_transport(kind, server), cache)
        est = client.estimate(reqs)
        prefix = client.count_tokens("You judge style.\n" + SAMPLES)
        assert server.snapshot() == []
    # nine of ten requests read the system prompt and samples the first one cached
    assert est.cached_input_tokens == 9 * prefix and 0.7 < est.cached_share < 0.9
    assert est.batch_usd == pytest.approx(est.live_usd / 2)
    assert est.live_usd < est.cost_usd
    assert (est.cache_write_tokens > 0) == (kind == "anthropic")

"""Concurrency, rpm/tpm, budgets and dry-run estimates, measured on the server side."""

from __future__ import annotations

import asyncio

import pytest
from fakeserver import FakeServer, make_test_transport

from persrm_gen.errors import BudgetExceeded, UsageError
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, Message

pytestmark = pytest.mark.timeout(60)


def req(i: int, model: str = "gpt-4.1-mini", stage: str = "judge", max_tokens: int = 32) -> LLMRequest:
    return LLMRequest(model=model, messages=(Message("user", f"question {i:03d}"),), max_tokens=max_tokens,
                      stage=stage)


def drive(server, tmp_path, reqs, *, kind="fast", **kw):
    """Run ``reqs`` through a fresh client; return (client, results or the raised exception)."""

    async def main():
        client = LLMClient(make_test_transport(kind, server), RequestCache(tmp_path / "cache.sqlite"),
                           retry_base=0.01, **kw)
        try:
            return client, await client.complete_many(reqs)
        except Exception as e:  # the tests assert on it
            return client, e
        finally:
            await client.aclose()
            client.cache.close()

    return asyncio.run(main())


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("kind", ["fast", "sdk"])
def test_concurrency_cap_is_reached_and_never_exceeded(kind, tmp_path):
    with FakeServer(delay=0.05) as server:
        client, results = drive(server, tmp_path, [req(i) for i in range(40)], kind=kind, concurrency=5)
        assert server.max_in_flight == 5
    assert len(results) == 40


def test_rpm_limit_holds_server_side(tmp_path):
    # 600 rpm = 10/s, with at most one second of burst.
    with FakeServer() as server:
        _, results = drive(server, tmp_path, [req(i) for i in range(30)], concurrency=30, rpm=600)
        times = sorted(h.t for h in server.snapshot())
    assert len(results) == 30
    assert max_in_window(times, 1.0) <= 21  # burst of 11, then 10 per second
    assert times[-1] - times[0] >= 1.8  # 30 requests at 10/s after the burst
    steady = times[11:]
    assert (len(steady) - 1) / (steady[-1] - steady[0]) <= 10.5


def test_tpm_limit_holds_server_side_and_learns_from_usage(tmp_path):
    # Before any response a request is estimated at ~11 input + 32 (max_tokens) output
    # tokens; the server reports ~23 in all, and the client paces by that once it knows.
    rate = 300  # tokens per second
    n, pessimistic = 30, 43
    with FakeServer() as server:
        client, results = drive(server, tmp_path, [req(i) for i in range(n)], concurrency=4, tpm=60 * rate)
        times = sorted(h.t for h in server.snapshot())
    total = client.accounting.total()
    used = total.input_tokens + total.output_tokens
    per_request = used / n
    duration = times[-1] - times[0]
    assert len(results) == n and per_request < 30
    # Never faster than the limit allows (one second of burst, one request of estimate slack) ...
    assert used <= rate * duration + rate + 2 * pessimistic
    # ... and not paced by the pessimistic pre-call estimate once usage is known.
    assert duration < 0.75 * (n * pessimistic / rate - 1)


def test_max_requests_stops_cleanly_and_resume_sends_only_the_rest(tmp_path):
    reqs = [req(i) for i in range(30)]
    with FakeServer(delay=0.01) as server:
        client, err = drive(server, tmp_path, reqs, concurrency=4, max_requests=10)
        assert isinstance(err, BudgetExceeded) and "--max-requests 10" in str(err)
        assert len(server.snapshot()) == 10
        assert client.accounting.total().completed == 10
        with RequestCache(tmp_path / "cache.sqlite") as cache:
            assert len(cache) == 10
        client, results = drive(server, tmp_path, reqs, concurrency=4)
        assert len(results) == 30 and client.accounting.total().cache_hits == 10
        assert max(server.arrivals().values()) == 1 and len(server.snapshot()) == 30


def test_max_cost_is_never_exceeded(tmp_path):
    # $1000 per million tokens each way: a request's worst case is (~10 + 32) tokens = ~$0.042.
    pricing = Pricing({"pricey": {"input": 1000, "output": 1000}})
    reqs = [req(i, model="pricey") for i in range(30)]
    with FakeServer(delay=0.01) as server:
        client, err = drive(server, tmp_path, reqs, concurrency=8, max_cost=0.25, pricing=pricing)
        sent = len(server.snapshot())
    assert isinstance(err, BudgetExceeded) and "--max-cost" in str(err)
    spent = client.accounting.cost_usd
    assert 0 < spent <= 0.25
    assert 5 <= sent < 30
    assert spent == pytest.approx(sum(
        pricing.cost("pricey", s.input_tokens, s.output_tokens) for s in client.accounting.stages.values()
    ))


def test_max_cost_with_an_unpriced_model_is_refused_before_sending(tmp_path):
    with FakeServer() as server:
        _, err = drive(server, tmp_path, [req(1, model="my-vllm-model")], max_cost=1.0)
        assert isinstance(err, UsageError) and "pricing" in str(err)
        assert server.snapshot() == []


def test_dry_run_estimate_counts_only_uncached_and_sends_nothing(tmp_path):
    pricing = Pricing({"pricey": {"input": 1000, "output": 2000}})
    reqs = [req(i, model="pricey") for i in range(10)]
    with FakeServer() as server:
        drive(server, tmp_path, reqs[:4], pricing=pricing)
        sent_before = len(server.snapshot())

        async def estimate():
            client = LLMClient(make_test_transport("fast", server), RequestCache(tmp_path / "cache.sqlite"),
                               pricing=pricing)
            try:
                return client.estimate(reqs + reqs[:2])  # duplicates count once
            finally:
                await client.aclose()

        est = asyncio.run(estimate())
        assert len(server.snapshot()) == sent_before == 4
    assert (est.requests, est.cached) == (6, 6)
    assert est.output_tokens == 6 * 32
    assert est.input_tokens > 0
    assert est.cost_usd == pytest.approx((est.input_tokens * 1000 + est.output_tokens * 2000) / 1e6)
    assert est.unpriced_models == ()


def test_accounting_is_per_stage_and_totals_add_up(tmp_path):
    pricing = Pricing({"pricey": {"input": 1.0, "output": 2.0}})
    reqs = [req(i, model="pricey", stage="candidates") for i in range(3)]
    reqs += [req(i, model="pricey", stage="judge") for i in range(3, 8)]
    with FakeServer() as server:
        client, _ = drive(server, tmp_path, reqs, pricing=pricing)
    d = client.accounting.to_dict()
    assert set(d["stages"]) == {"candidates", "judge"}
    assert d["stages"]["candidates"]["completed"] == 3 and d["stages"]["judge"]["completed"] == 5
    for key in ("input_tokens", "output_tokens", "requests"):
        assert d["total"][key] == d["stages"]["candidates"][key] + d["stages"]["judge"][key]
    assert d["total"]["cost_usd"] == pytest.approx(
        (d["total"]["input_tokens"] * 1.0 + d["total"]["output_tokens"] * 2.0) / 1e6
    )
    assert "8 sent" in client.accounting.summary()

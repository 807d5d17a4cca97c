"""Every fault a provider throws, through the real SDKs / aiohttp, over real sockets.

The fake server (tests/fakeserver.py) injects faults per request; the counts on the server
side are the ground truth for "retried", "not retried" and "sent once".
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from fakeserver import KEY, MODELS, TRANSPORTS, FakeServer, make_test_transport

from persrm_gen.errors import FatalProviderError, StageFailed, UsageError
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.failure_rate import FailureRate
from persrm_gen.llm.faults import ProviderRejected, TransientError
from persrm_gen.llm.types import LLMRequest, Message, request_key

pytestmark = pytest.mark.timeout(60)

TRANSIENT = ["429", "500", "502", "503", "529", "hang", "reset", "truncated", "cut", "empty", "html", "badutf8"]


def chat(kind: str, text: str, **kw) -> LLMRequest:
    msgs = (Message("system", "You are terse."), Message("user", text))
    return LLMRequest(model=MODELS[kind], messages=msgs, max_tokens=32, **kw)


def run_client(kind, server, tmp_path, coro_fn, *, key=KEY, **client_kw):
    """Build transport+client inside a fresh loop, run ``coro_fn(client)``, close everything."""

    async def main():
        client_kw.setdefault("retry_base", 0.01)
        client_kw.setdefault("timeout", 0.6)
        transport = make_test_transport(kind, server, timeout=client_kw["timeout"], key=key)
        client = LLMClient(transport, RequestCache(tmp_path / "cache.sqlite"), **client_kw)
        try:
            return client, await coro_fn(client)
        finally:
            await client.aclose()
            client.cache.close()

    return asyncio.run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_every_transient_fault_is_recovered(kind, tmp_path):
    plans = [[f] for f in TRANSIENT] + [["500", "reset", "truncated"], ["429", "hang"]]
    texts = [f"item {i} [[fault:{','.join(p)}]]" for i, p in enumerate(plans)]
    with FakeServer(hang_s=2.0, retry_after="0.05") as server:
        client, results = run_client(
            kind, server, tmp_path, lambda c: c.complete_many([chat(kind, t) for t in texts]), concurrency=8
        )
        arrivals, served = server.arrivals(), server.served()
    for text, plan, res in zip(texts, plans, results):
        assert res.text.startswith(f"Thinking about: {text[:40]}")
        assert arrivals[text] == len(plan) + 1, text  # each fault retried exactly once more
        assert served[text] == 1
    total = client.accounting.total()
    n_faults = sum(len(p) for p in plans)
    assert total.retries == n_faults and total.failures == 0
    assert total.requests == sum(arrivals.values()) == n_faults + len(plans)
    assert total.completed == len(plans)
    kinds = total.rate_limited + total.server_errors + total.timeouts + total.connection_errors + total.malformed
    assert kinds == n_faults
    assert total.rate_limited >= 2 and total.timeouts >= 2 and total.malformed >= 3


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("status", ["400", "401", "403", "404"])
def test_client_errors_fail_fast_with_provider_message(kind, status, tmp_path):
    text = f"bad [[fault:{status},{status},{status}]]"
    with FakeServer() as server:
        with pytest.raises(ProviderRejected) as info:
            run_client(kind, server, tmp_path, lambda c: c.complete(chat(kind, text)))
        assert server.arrivals()[text] == 1  # no retry, not even by the SDK
    assert info.value.status == int(status)
    assert f"injected fault {status}" in str(info.value)
    assert KEY not in str(info.value)


# A key the patterns know (sk-...), and one only the environment gives away.
ECHOED_KEYS = {"pattern": {"fast": "sk-proj-" + "Ab3d" * 10, "sdk": "sk-proj-" + "Ab3d" * 10,
                           "anthropic": "sk-ant-api03-" + "Xy9z" * 10},
               "env": {k: "plainsecretwordsonly" for k in TRANSPORTS}}


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("which", sorted(ECHOED_KEYS))
def test_a_401_that_echoes_the_key_is_masked(kind, which, tmp_path, monkeypatch):
    key = ECHOED_KEYS[which][kind]
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(var, key)  # as on the command line, where the key comes from the environment
    with FakeServer(key=key, fault_all="echo_auth") as server:
        with pytest.raises(ProviderRejected) as info:
            run_client(kind, server, tmp_path, lambda c: c.complete(chat(kind, "hello")), key=key)
        assert server.arrivals()["hello"] == 1
    message = str(info.value)
    assert info.value.status == 401 and "Incorrect API key provided" in message
    assert key not in message and key[:12] not in message and key not in repr(info.value.args)
    assert key.encode() not in (tmp_path / "cache.sqlite").read_bytes()


@pytest.mark.parametrize("kind", ["fast", "anthropic"])
def test_repeated_auth_errors_stop_the_run(kind, tmp_path):
    reqs = [chat(kind, f"q{i}") for i in range(40)]
    with FakeServer() as server:
        with pytest.raises(FatalProviderError, match="authentication errors in a row"):
            run_client(kind, server, tmp_path, lambda c: c.complete_many(reqs), key="wrong-key",
                       concurrency=2, max_auth_errors=3)
        sent = len(server.snapshot())
    # Three strikes, plus at most the one other request already in flight.
    assert 3 <= sent <= 4


def test_retry_after_pauses_every_request(tmp_path):
    """A 429 with Retry-After holds back the retried request and everything sent after it."""
    texts = ["first [[fault:429]]"] + [f"next {i}" for i in range(4)]
    with FakeServer(retry_after="0.4") as server:
        run_client("fast", server, tmp_path, lambda c: c.complete_many([chat("fast", t) for t in texts]),
                   concurrency=1)
        hits = server.snapshot()
    t429 = next(h.t for h in hits if h.fault == "429")
    later = [h for h in hits if h.t > t429]
    assert len(later) == 5
    assert min(h.t for h in later) - t429 >= 0.38


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_exhausted_ratelimit_headers_pace_the_next_sends(kind, tmp_path):
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms"}
    with FakeServer(ratelimit_headers=headers) as server:
        run_client(kind, server, tmp_path,
                   lambda c: c.complete_many([chat(kind, f"q{i}") for i in range(4)]), concurrency=1)
        times = sorted(h.t for h in server.snapshot())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.23, gaps


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_invalid_output_is_recorded_retried_once_and_never_bought_again(kind, tmp_path):
    def valid(text: str) -> bool:
        return text.rstrip().endswith("<answer>A</answer>")

    good = chat(kind, "fix me [[fault:badtag]]")
    hopeless = chat(kind, "hopeless [[fault:" + ",".join(["badtag"] * 8) + "]]")

    async def go(c: LLMClient):
        results = await c.complete_many([good, hopeless], validate=valid, return_exceptions=True)
        return results + [c.rejected_replies([good, hopeless])]

    with FakeServer() as server:
        client, (ok, failed, _) = run_client(kind, server, tmp_path, go, max_retries=3)
        # one identical retry for a format failure, not max_retries: the same body fails the same way
        assert server.arrivals() == {good.messages[-1].content: 2, hopeless.messages[-1].content: 2}
        # every paid reply is in the cache, valid or not, so the same run again buys nothing
        again, (ok2, failed2, ledger) = run_client(kind, server, tmp_path, go, max_retries=3)
        assert len(server.snapshot()) == 4
    assert valid(ok.text) and ok2 == ok
    assert isinstance(failed, TransientError) and failed.kind == "invalid_output"
    assert isinstance(failed2, TransientError) and failed2.kind == "invalid_output"
    total = client.accounting.total()
    assert total.invalid_output == 3 and total.failures == 1 and total.requests == 4
    assert total.output_tokens > 0  # bad outputs were paid for: their tokens count
    assert again.accounting.total().requests == 0 and again.accounting.total().failures == 1
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        assert cache.get(request_key(good, client.key_scope)[0]).text == ok.text
        assert cache.get(request_key(hopeless, client.key_scope)[0]) is None  # never served as valid
        rejected = cache.rejected_many([request_key(r, client.key_scope)[0] for r in (good, hopeless)])
    assert [len(v) for v in rejected.values()] == [1, 2]
    assert all(not valid(r.text) and r.output_tokens > 0 for v in rejected.values() for r in v)
    # the ledger counts every paid reply, the rejected ones included
    assert [len(r) for r in ledger] == [1, 2]


def test_a_validator_that_raises_still_records_the_paid_reply(tmp_path):
    def broken(text: str) -> bool:
        raise ZeroDivisionError("bug in a validator")

    reqs = [chat("fast", f"q{i}") for i in range(30)]
    with FakeServer(delay=0.02) as server:
        with pytest.raises(ZeroDivisionError):
            run_client("fast", server, tmp_path, lambda c: c.complete_many(reqs, validate=broken,
                                                                            return_exceptions=True), concurrency=2)
        sent = len(server.snapshot())
    # a programming error stops the run at once: nothing new is sent, in-flight replies finish
    assert 1 <= sent <= 3
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    assert db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0] == sent
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
    db.close()


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("fault", ["html", "badutf8", "huge"])
def test_undecodable_or_oversized_replies_are_faults_that_count(kind, fault, tmp_path):
    text = f"{kind} {fault} [[fault:{fault},{fault}]]"
    with FakeServer(huge_bytes=2_000_000) as server:
        client, (res,) = run_client(kind, server, tmp_path,
                                    lambda c: c.complete_many([chat(kind, text)], return_exceptions=True),
                                    max_retries=1)
        assert server.arrivals()[text] == 2
    assert isinstance(res, TransientError) and res.kind == "malformed", res
    total = client.accounting.total()
    assert total.failures == 1 and total.malformed == 2 and total.completed == 0
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        assert len(cache) == 0


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_reply_within_the_bound_is_read_whole(kind, tmp_path):
    # 2,000 tokens may legitimately take ~10 kB of JSON; the bound scales with max_tokens
    text = f"{kind} big [[fault:huge]]"
    req = LLMRequest(model=MODELS[kind], messages=(Message("user", text),), max_tokens=4000)
    with FakeServer(huge_bytes=100_000) as server:
        _, res = run_client(kind, server, tmp_path, lambda c: c.complete(req))
    assert len(res.text) >= 99_000


@pytest.mark.parametrize("http", ["fast"])
def test_a_base_url_the_client_cannot_send_to_is_a_counted_failure(http, tmp_path):
    from persrm_gen.llm.backends import make_transport

    async def main(base):
        transport = make_transport("openai", "gpt-4.1-mini", base, 5.0, http=http, env={"OPENAI_API_KEY": KEY})
        client = LLMClient(transport, RequestCache(tmp_path / "cache.sqlite"), retry_base=0.01)
        try:
            return client, await client.complete_many([chat("fast", f"q{i}") for i in range(3)],
                                                      return_exceptions=True)
        finally:
            await client.aclose()
            client.cache.close()

    with FakeServer() as server:
        # aiohttp refuses credentials in the URL next to the key's Authorization header
        client, results = asyncio.run(main(server.openai_base.replace("http://", "http://user:pw-secret@")))
        assert server.snapshot() == []
    assert all(isinstance(r, FatalProviderError) for r in results), results
    assert "pw-secret" not in str(results[0]) and "cannot send" in str(results[0])
    assert client.accounting.total().failures == 3
    _, bad_port = asyncio.run(main("http://127.0.0.1:99999/v1"))
    assert all(isinstance(r, FatalProviderError) and "cannot send" in str(r) for r in bad_port), bad_port


def test_failure_rate_stops_the_stage_early_with_the_first_error(tmp_path):
    reqs = [chat("fast", f"page {i} [[fault:html]]") for i in range(60)]
    tally = FailureRate("negatives", max_rate=0.1)

    async def go(c: LLMClient):
        return await c.complete_many(reqs, return_exceptions=True, failures=tally)

    with FakeServer() as server:
        with pytest.raises(StageFailed) as info:
            run_client("fast", server, tmp_path, go, max_retries=0, concurrency=4)
        sent = len(server.snapshot())
    # 7 failures of 60 pass 10%: the stage stops then (and lets the 4 in flight finish), not after all 60
    assert 7 <= sent <= 7 + 4
    msg = str(info.value)
    assert msg.startswith("negatives: ") and "--max-failure-rate" in msg and "invalid JSON body" in msg


def test_failure_rate_within_the_limit_lets_the_stage_finish(tmp_path):
    reqs = [chat("fast", f"item {i}" + (" [[fault:html,html]]" if i < 2 else "")) for i in range(20)]
    tally = FailureRate("negatives", max_rate=0.1)
    with FakeServer() as server:
        _, results = run_client("fast", server, tmp_path, lambda c: c.complete_many(
            reqs, return_exceptions=True, failures=tally), max_retries=1)
    assert sum(isinstance(r, TransientError) for r in results) == 2
    assert tally.failed == 2 and tally.total == 20
    tally.check()  # 10% is not more than 10%
    tally.add("unusable output")
    with pytest.raises(StageFailed, match="3 of 20"):
        tally.check()


@pytest.mark.parametrize("timeout", [0, -1])
def test_nonpositive_timeout_is_refused(timeout, tmp_path):
    from persrm_gen.llm.backends import make_transport

    with pytest.raises(UsageError, match="--timeout"):
        make_transport("openai", "m", "http://127.0.0.1:9/v1", timeout, env={"OPENAI_API_KEY": "k"})
    transport = make_transport("openai", "m", "http://127.0.0.1:9/v1", 5.0, env={"OPENAI_API_KEY": "k"})
    with pytest.raises(UsageError, match="--timeout"):
        LLMClient(transport, RequestCache(":memory:"), timeout=timeout)


def test_the_cache_key_names_the_server(tmp_path):
    """Two servers serving the same model name are two models: nothing is shared between them."""
    req = chat("fast", "same question")
    with FakeServer(answer="A") as one, FakeServer(answer="B") as two:
        _, first = run_client("fast", one, tmp_path, lambda c: c.complete(req))
        _, second = run_client("fast", two, tmp_path, lambda c: c.complete(req))
        assert len(one.snapshot()) == len(two.snapshot()) == 1
    assert first.text.endswith("<answer>A</answer>") and second.text.endswith("<answer>B</answer>")


@pytest.mark.parametrize("kind", ["fast", "sdk"])
def test_raw_prompt_goes_to_completions_endpoint(kind, tmp_path):
    req = LLMRequest(model="my-base-model", prompt="Once upon a time", max_tokens=16, stop=("\n\n",))
    with FakeServer() as server:
        _, res = run_client(kind, server, tmp_path, lambda c: c.complete(req))
        (hit,) = server.snapshot()
    assert hit.path == "/v1/completions"
    assert hit.body["prompt"] == "Once upon a time" and hit.body["max_tokens"] == 16
    assert hit.body["stop"] == ["\n\n"] and hit.body["seed"] == 0
    assert res.text.startswith("Thinking about: Once upon a time") and res.input_tokens > 0


def test_anthropic_splits_the_system_message_and_refuses_raw_prompts(tmp_path):
    with FakeServer() as server:
        _, res = run_client("anthropic", server, tmp_path, lambda c: c.complete(chat("anthropic", "hello")))
        (hit,) = server.snapshot()
        with pytest.raises(FatalProviderError, match="chat messages only"):
            run_client("anthropic", server, tmp_path,
                       lambda c: c.complete(LLMRequest(model="claude-sonnet-4-5", prompt="raw")))
    # a cache breakpoint after the system prompt (prompt caching)
    assert hit.body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    # and one at the end of the prompt (a re-sample reads it whole)
    assert hit.body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]}]
    assert res.input_tokens > 0 and res.output_tokens > 0


def test_identical_requests_in_one_batch_are_sent_once(tmp_path):
    reqs = [chat("fast", "same")] * 5 + [chat("fast", "other")]
    with FakeServer(delay=0.05) as server:
        _, results = run_client("fast", server, tmp_path, lambda c: c.complete_many(reqs))
        assert server.arrivals() == {"same": 1, "other": 1}
    assert len({r.text for r in results[:5]}) == 1


def test_timeout_is_per_request_and_configurable(tmp_path):
    with FakeServer(hang_s=3.0) as server:
        t0 = time.monotonic()
        client, _ = run_client("fast", server, tmp_path,
                               lambda c: c.complete(chat("fast", "slow [[fault:hang,hang]]")), timeout=0.3)
        elapsed = time.monotonic() - t0
    assert client.accounting.total().timeouts == 2
    assert elapsed < 2.0

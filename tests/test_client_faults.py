"""Every fault a provider throws, through the real SDKs / aiohttp, over real sockets.

The fake server (tests/fakeserver.py) injects faults per request; the counts on the server
side are the ground truth for "retried", "not retried" and "sent once".
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fakeserver import KEY, MODELS, TRANSPORTS, FakeServer, make_test_transport

from persrm_gen.errors import FatalProviderError
from persrm_gen.generator.cache import RequestCache
from persrm_gen.generator.client import LLMClient, ProviderRejected, TransientError
from persrm_gen.generator.transport import LLMRequest, Message

pytestmark = pytest.mark.timeout(60)

TRANSIENT = ["429", "500", "502", "503", "529", "hang", "reset", "truncated", "cut", "empty"]


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


def test_exhausted_ratelimit_headers_pace_the_next_sends(tmp_path):
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms"}
    with FakeServer(ratelimit_headers=headers) as server:
        run_client("fast", server, tmp_path,
                   lambda c: c.complete_many([chat("fast", f"q{i}") for i in range(4)]), concurrency=1)
        times = sorted(h.t for h in server.snapshot())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.23, gaps


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_invalid_output_is_retried_counted_and_never_cached(kind, tmp_path):
    def valid(text: str) -> bool:
        return text.rstrip().endswith("<answer>A</answer>")

    good = chat(kind, "fix me [[fault:badtag,badtag]]")
    hopeless = chat(kind, "hopeless [[fault:" + ",".join(["badtag"] * 8) + "]]")

    async def go(c: LLMClient):
        return await c.complete_many([good, hopeless], validate=valid, return_exceptions=True)

    with FakeServer() as server:
        client, (ok, failed) = run_client(kind, server, tmp_path, go, max_retries=3)
        assert server.arrivals()[good.messages[-1].content] == 3
        assert server.arrivals()[hopeless.messages[-1].content] == 4  # 1 + max_retries
    assert valid(ok.text)
    assert isinstance(failed, TransientError) and failed.kind == "invalid_output"
    total = client.accounting.total()
    assert total.invalid_output == 2 + 4 and total.failures == 1
    # Bad outputs were paid for: their tokens count.
    assert total.output_tokens > 0 and total.requests == 7
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        assert cache.get(good.cache_key(client.provider)).text == ok.text
        assert cache.get(hopeless.cache_key(client.provider)) is None


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
    assert hit.body["system"] == "You are terse."
    assert hit.body["messages"] == [{"role": "user", "content": "hello"}]
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

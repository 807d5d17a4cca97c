"""The client's building blocks on their own: headers, buckets, gate, prices, cache, backends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, replace
from email.utils import formatdate
from pathlib import Path

import pytest

from persrm_gen.errors import BudgetExceeded, UsageError
from persrm_gen.llm.backends import make_transport
from persrm_gen.llm.budget import Budget
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.faults import ProviderRejected, TransientError, error_for_status, retry_after_seconds
from persrm_gen.llm.limits import AdaptiveGate, RateLimiter, TokenBucket
from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse, Message, as_dicts, request_key

ROOT = Path(__file__).resolve().parents[1]


# ---- rate-limit headers -----------------------------------------------------------------

def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    http_date = formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_seconds({"Retry-After": http_date}) <= 31
    assert retry_after_seconds({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}) == 360
    assert retry_after_seconds({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1s250ms"}) == 1.25
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20))
    anthropic = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": iso}
    assert 18 <= retry_after_seconds(anthropic) <= 21
    # Windows with room left, or no headers at all, ask for no pause.
    assert retry_after_seconds({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_status_mapping():
    assert error_for_status(429, "slow down", {"Retry-After": "2"}).retry_after == 2
    for status in (408, 409, 500, 502, 503, 529):
        assert isinstance(error_for_status(status, "x"), TransientError)
    for status in (400, 401, 402, 403, 404, 413, 422):
        e = error_for_status(status, "nope")
        assert isinstance(e, ProviderRejected) and e.status == status
    assert error_for_status(401, "x").is_auth and not error_for_status(404, "x").is_auth


# ---- buckets and gate -------------------------------------------------------------------

def test_token_bucket_allows_one_second_of_burst_then_the_rate():
    bucket = TokenBucket(per_minute=600)  # 10/s
    now = time.monotonic()
    starts = [bucket.reserve(1) - now for _ in range(31)]
    assert max(starts[:11]) < 0.01  # the burst
    assert starts[30] == pytest.approx(2.0, abs=0.02)  # then 10 per second


def test_token_bucket_correction_refunds_overestimates():
    bucket = TokenBucket(per_minute=6000)  # 100 tokens/s
    now = time.monotonic()
    bucket.reserve(300)
    bucket.correct(-250)  # the response used 50, not 300
    assert bucket.reserve(100) - now < 0.05


def test_rate_limiter_pause_holds_everyone():
    async def main():
        limiter = RateLimiter()
        limiter.pause(0.2)
        t0 = time.monotonic()
        await asyncio.gather(limiter.acquire(1), limiter.acquire(1))
        return time.monotonic() - t0

    assert asyncio.run(main()) >= 0.19


def test_adaptive_gate_halves_on_429_and_recovers():
    async def main():
        gate = AdaptiveGate(8)
        for _ in range(8):
            await gate.acquire()
        waiter = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        gate.on_rate_limited(cooldown=10)
        gate.on_rate_limited(cooldown=10)  # one burst of 429s is one signal
        assert gate.limit == 4
        for _ in range(4):
            gate.release()
        await asyncio.sleep(0)
        assert not waiter.done()  # 4 in flight, limit 4: no room
        gate.release()
        await asyncio.sleep(0)
        assert waiter.done() and gate.in_flight == 4
        for _ in range(100):
            gate.on_success()
        assert gate.limit == 8

    asyncio.run(main())


# ---- budget and prices --------------------------------------------------------------------

def test_budget_counts_in_flight_reservations():
    b = Budget(max_cost=1.0, max_requests=3)
    r1, r2 = b.reserve(0.4), b.reserve(0.4)
    with pytest.raises(BudgetExceeded, match="max-cost"):
        b.reserve(0.4)  # 0.8 held + 0.4 > 1.0, though nothing is spent yet
    b.settle(r1, 0.1)
    b.settle(r2, 0.1)
    b.reserve(0.4)
    with pytest.raises(BudgetExceeded, match="max-requests 3"):
        b.reserve(0.0)


def test_pricing_prefix_match_and_overrides():
    p = Pricing({"my-model": {"input": 1, "output": 2}, "gpt-4.1-mini": {"input": 9, "output": 9}})
    assert p.price("gpt-4.1-nano-2025-04-14").input_per_mtok == 0.10
    assert p.price("gpt-4.1-mini").input_per_mtok == 9  # the override wins
    assert p.price("gpt-4.1-2025-04-14").output_per_mtok == 8.0
    assert p.price("gpt-5.4-mini") is None  # not gpt-5: a dot is not a dash
    assert p.cost("my-model", 1_000_000, 500_000) == pytest.approx(2.0)
    assert p.cost("unknown", 10, 10) == 0.0
    with pytest.raises(UsageError, match="unknown"):
        p.require("unknown")
    with pytest.raises(UsageError, match="numeric"):
        Pricing({"bad": {"input": "cheap"}})


# ---- cache ----------------------------------------------------------------------------------

REQS = [
    LLMRequest(model="m", messages=(Message("system", "sé \"q\" ü"), Message("user", "hi")), stop=("a",),
               template_hashes=("t1", "t2"), attempt=3, temperature=0.7),
    LLMRequest(model="m", prompt="p\n", top_p=1.0, stage="candidates"),
]


@pytest.mark.parametrize("req", REQS)
def test_request_key_is_the_cache_key_and_names_the_provider(req):
    key, blob = request_key(req, "openai")
    assert key == req.cache_key("openai") == hashlib.sha256(blob.encode("utf-8")).hexdigest()
    assert json.loads(blob)["provider"] == "openai"
    assert key != request_key(req, "anthropic")[0]


# Keys that caches on disk already hold: a change here makes every existing cache miss.
PINNED_KEYS = [
    ("b628d681c60af39748dfcb57a1bd9052f60c25d0eb23aa2579370960258f641c",
     "9f2f9b2727697032bb3c115d038e3de459e6cb4c4a37e887c43e403eec91b452"),
    ("a6bc10e73850cc4334ad2ad13f4f449f8eb57fbef61f0a66074c71cdf34bbf86",
     "bc530d932cf47476d7051701cd106c970cd3e70f48e28c979c7f226a5ffb81bd"),
]


@pytest.mark.parametrize(("req", "keys"), list(zip(REQS, PINNED_KEYS)))
def test_request_keys_stay_what_existing_caches_hold(req, keys):
    own, other_server = keys
    assert req.cache_key("openai") == own
    assert req.cache_key("openai@http://127.0.0.1:8000/v1") == other_server
    # the definition: SHA-256 of the request's fields plus the scope, as canonical JSON; the
    # routing hints added later (cache_group, a message's cache_prefix) are left out
    d = asdict(req)
    del d["cache_group"]
    if d["messages"] is not None:
        d["messages"] = [{"role": m["role"], "content": m["content"]} for m in d["messages"]]
    blob = json.dumps({**d, "provider": "openai"}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert own == hashlib.sha256(blob.encode("utf-8")).hexdigest()
    # hints change nothing: the same key with a group and a samples breakpoint
    hinted = replace(req, cache_group="author-1", messages=None if req.messages is None else tuple(
        replace(m, cache_prefix=1) for m in req.messages))
    assert hinted.cache_key("openai") == own


def test_messages_go_on_the_wire_as_role_content_dicts_in_order():
    msgs = REQS[0].messages
    assert as_dicts(msgs) == [{"role": "system", "content": 'sé "q" ü'}, {"role": "user", "content": "hi"}]
    assert [list(d) for d in as_dicts(msgs)] == [["role", "content"]] * 2  # key order: bodies stay byte-identical
    assert as_dicts(()) == []


def test_cache_is_wal_durable_and_group_commits(tmp_path):
    path = tmp_path / "out" / "cache.sqlite"
    resp = LLMResponse("text", 3, 4, "length")

    async def main():
        cache = RequestCache(path)
        cache.put_soon("k1", "openai", REQS[0], resp)
        assert cache.get("k1") == resp  # visible before the flush
        other = RequestCache(path)
        assert other.get("k1") is None  # not committed yet ...
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert other.get("k1") == resp  # ... committed on the next loop turn
        other.close()
        cache.close()

    asyncio.run(main())
    with RequestCache(path) as cache:
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cache.put("k2", "openai", REQS[1], resp)
        assert set(cache.get_many(["k1", "k2", "k3"])) == {"k1", "k2"}
        assert "k2" in cache and len(cache) == 2


# ---- backends ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,var", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_missing_key_is_a_clear_usage_error(backend, var):
    with pytest.raises(UsageError, match=var):
        make_transport(backend, "some-model", env={})
    with pytest.raises(UsageError, match=var):
        make_transport(backend, "some-model", "http://127.0.0.1:9/v1", env={var: "  "})


def test_backend_choices_are_checked():
    with pytest.raises(UsageError, match="unknown --backend"):
        make_transport("bedrock", "m", env={})
    with pytest.raises(UsageError, match="needs --model"):
        make_transport("openai", None, env={"OPENAI_API_KEY": "k"})
    with pytest.raises(UsageError, match="--base-url needs --backend openai"):
        make_transport("local", None, "http://127.0.0.1:9/v1")


@pytest.mark.parametrize("http", ["fast", "sdk"])
def test_transports_keep_the_key_out_of_their_repr(http):
    secret = "sk-secret-123"
    t = make_transport("openai", "m", "http://127.0.0.1:9/v1", env={"OPENAI_API_KEY": secret}, http=http)
    assert secret not in repr(t) and secret not in str(vars(t).get("base_url", ""))
    assert t.provider == "openai" and t.supports_prompt and t.supports_chat


def test_api_backends_never_import_torch():
    code = (
        "import sys; from persrm_gen.llm.backends import make_transport;"
        "make_transport('openai', 'm', env={'OPENAI_API_KEY': 'k'});"
        "make_transport('anthropic', 'm', env={'ANTHROPIC_API_KEY': 'k'});"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# ---- cache: an unusable file is one line that says how to recover ---------------------------

def _real_cache(path: Path) -> Path:
    with RequestCache(path) as cache:
        for i in range(50):
            cache.put(f"k{i}", "openai", REQS[0], LLMResponse("text " * 50, 3, 4))
    return path


def _corrupt_schema(path: Path) -> None:
    raw = bytearray(_real_cache(path).read_bytes())
    raw[100:600] = b"\xa5" * 500  # page 1 after the header: the schema
    path.write_bytes(bytes(raw))


def _corrupt_table_root(path: Path) -> None:
    raw = bytearray(_real_cache(path).read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    raw[page : page + 200] = b"\x5a" * 200  # page 2: the root of the responses table
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(b"this is not a database, just some text\n" * 100),
    lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84),
    _corrupt_schema,
    _corrupt_table_root,
])
def test_a_corrupt_cache_is_a_usage_error_that_says_how_to_recover(tmp_path, damage):
    path = tmp_path / "out dir" / "cache.sqlite"
    path.parent.mkdir()
    damage(path)
    before = path.read_bytes()
    with pytest.raises(UsageError) as info:
        RequestCache(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert f"mv '{path}' '{path}.bad'" in msg and "--new-cache" in msg
    assert path.read_bytes() == before  # never touched


def test_a_read_only_cache_is_a_usage_error(tmp_path):
    path = _real_cache(tmp_path / "cache.sqlite")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(UsageError) as info:
            RequestCache(path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    msg = str(info.value)
    assert "read-only" in msg and "chmod u+w" in msg and "--new-cache" in msg and "\n" not in msg


def test_an_old_cache_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "cache.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, "
               "stage TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
               "output_tokens INTEGER NOT NULL, finish_reason TEXT NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO responses VALUES ('k', 'openai', 'm', 's', '{}', 'old text', 1, 2, 'stop', 0)")
    db.commit()
    db.close()
    resp = LLMResponse("bad", 5, 6)
    with RequestCache(path) as cache:
        assert cache.get("k") == LLMResponse("old text", 1, 2)
        cache.put_rejected("k2", "openai", REQS[0], resp)
        cache.put_rejected("k2", "openai", REQS[0], resp)
    with RequestCache(path) as cache:
        assert cache.rejected_many(["k", "k2"]) == {"k2": [resp, resp]}
        assert cache.get("k2") is None and len(cache) == 1


# ---- cache key: the server is part of the model ---------------------------------------------

@pytest.mark.parametrize("backend,url,scope", [
    ("openai", None, "openai"),
    ("openai", "https://api.openai.com/v1", "openai"),
    ("openai", "https://api.openai.com/v1/", "openai"),
    ("openai", "http://127.0.0.1:8000/v1", "openai@http://127.0.0.1:8000/v1"),
    ("openai", "http://user:secret@127.0.0.1:8000/v1/", "openai@http://127.0.0.1:8000/v1"),
    ("anthropic", None, "anthropic"),
    ("anthropic", "https://api.anthropic.com", "anthropic"),
    ("anthropic", "http://LocalHost:9/", "anthropic@http://localhost:9"),
])
@pytest.mark.parametrize("http", ["fast", "sdk"])
def test_key_scope_is_the_provider_for_default_endpoints_and_names_any_other_server(backend, url, scope, http,
                                                                                     monkeypatch):
    from persrm_gen.llm.client import LLMClient

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    t = make_transport(backend, "m", url, env={"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, http=http)
    client = LLMClient(t, RequestCache(":memory:"))
    assert client.key_scope == scope
    # keys made for the default endpoints before the server was part of the key stay valid
    if scope == backend:
        assert request_key(REQS[0], client.key_scope)[0] == REQS[0].cache_key(backend)


# --base-url is for the openai backend (credentials in it are refused up front); the
# anthropic SDK is pointed elsewhere by ANTHROPIC_BASE_URL.
@pytest.mark.parametrize("backend,url,env_url", [("openai", None, None), ("openai", "http://127.0.0.1:8000/v1/", None),
                                                 ("anthropic", None, None), ("anthropic", None, "http://127.0.0.1:9")])
def test_a_dry_run_keys_requests_like_the_build(backend, url, env_url, monkeypatch, tmp_path):
    from persrm_gen.pipeline.backend import describe_backend
    from persrm_gen.pipeline.options import BuildOptions

    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    if env_url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", env_url)
    real = make_transport(backend, "m", url, env={"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
                                                  **({"ANTHROPIC_BASE_URL": env_url} if env_url else {})})
    dry, _ = describe_backend(BuildOptions(authors=tmp_path / "a.jsonl", backend=backend, model="m", base_url=url))
    assert dry.endpoint == getattr(real, "endpoint", None)

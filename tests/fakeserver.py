"""A real HTTP server on 127.0.0.1 speaking OpenAI chat/completions and Anthropic messages.

It runs in a background thread (its own event loop), so tests drive it with the real SDKs
and our client through real sockets. Faults are injected by schedule, per request: the
request's identity (``rid``, a hash of its JSON body, stable across retries) maps to a
list of faults for its 1st, 2nd, ... arrival. A request can also carry its own schedule
in its text: ``[[fault:429,500]]`` fails the first two arrivals. Every arrival is logged
(time, rid, fault, status), which is how the tests count requests server-side.

Faults: 400 401 403 404 429 500 502 503 529, ``hang`` (sleep past the client timeout),
``reset`` (drop the connection), ``truncated`` (200 with half a JSON body), ``cut``
(Content-Length promised, half sent, connection dropped), ``empty`` (no choices/content),
``badtag`` (a valid response whose answer tag is wrong), ``echo_auth`` (a 401 whose body
repeats the credential header the client sent, as some servers and proxies do), ``html``
(200 with an HTML page), ``badutf8`` (200, a JSON body with bytes that are not UTF-8),
``huge`` (200, a valid reply of ``huge_bytes`` sent chunked, without Content-Length).

Prompt caching (``caching=True``; section "prompt caching and the bill" below). Tokens are
counted as characters // 4 of the prompt serialised block by block (role markers included),
and a prefix is cached when the request that sent it has been answered, so identical
prefixes sent at the same moment all miss, as on the real services. Entries never expire.

- OpenAI (``/v1/chat/completions``, ``/v1/completions``): automatic prefix caching. A prompt
  of at least 1,024 tokens (``min_cached_tokens``) reads the longest prefix, in steps of 128
  tokens from 1,024 on,
  that an answered request sent before; ``usage.prompt_tokens_details.cached_tokens`` says
  how many (a subset of ``prompt_tokens``). ``prompt_cache_key`` is recorded per hit
  (``Hit.cache_key``) but changes nothing here: it only routes on the real service.
- Anthropic (``/v1/messages``): explicit ``cache_control`` breakpoints on system or message
  text blocks. The longest breakpoint prefix already cached is read
  (``cache_read_input_tokens``); the prefix up to the last breakpoint, when it is at least
  ``min_cached_tokens``, is written beyond what was read (``cache_creation_input_tokens``);
  ``input_tokens`` counts only the rest, as the real API does (it excludes reads and writes).

The bill (``prices={model: {input, output, cached_input, cache_write, batch_multiplier}}`` in
USD per 1M tokens, list prices): every 200 reply that carries usage (normal, ``badtag``) is
charged from the usage it reports, cached reads at ``cached_input`` and writes at
``cache_write`` (each defaults to ``input``), a batch line at ``batch_multiplier`` times that
(default 1); ``Hit.billed_usd`` per request, :meth:`FakeServer.billed` in total. Both the
live handlers and batch line processing settle a reply through
:meth:`FakeServer.settle_reply` (cache, usage, bill).
Errors and broken bodies are not charged (the client could not have counted them either).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

KEY = "test-key"
_MARKER = re.compile(r"\[\[fault:([\w,]+)\]\]")


@dataclass
class Hit:
    t: float
    path: str
    rid: str
    text: str
    fault: str | None
    body: dict = field(default_factory=dict, repr=False)
    status: int = 200
    cache_key: str | None = None  # the request's prompt_cache_key (OpenAI)
    billed_usd: float = 0.0  # what the server charged for this reply (0 unless ``prices`` has the model)
    usage: dict = field(default_factory=dict, repr=False)  # the usage block of the reply sent
    cached: CacheLookup | None = field(default=None, repr=False)  # its prompt-cache lookup (caching on)


@dataclass
class FakeServer:
    delay: float = 0.0  # seconds before each normal reply
    retry_after: str | None = "0.2"  # Retry-After sent with 429/503 (None: no header)
    hang_s: float = 5.0
    answer: str = "A"
    schedule: dict[str, list[str | None]] = field(default_factory=dict)  # rid -> faults by arrival
    ratelimit_headers: dict[str, str] = field(default_factory=dict)  # added to every 200
    hits: list[Hit] = field(default_factory=list)
    max_in_flight: int = 0
    huge_bytes: int = 10_000_000  # size of a ``huge`` reply
    # body, text -> reply text; None: a fixed trace ending in <answer>{answer}</answer>
    reply: Callable[[dict, str], str] | None = None
    key: str = KEY  # the API key the server accepts
    fault_all: str | None = None  # a fault for every arrival no schedule names (e.g. "echo_auth")
    caching: bool = False  # prompt caching, as the module docstring describes
    # Count input tokens as caching does (serialised prompt // 4) even with caching off, so a
    # benchmark compares the same token counts with and without a cache.
    exact_usage: bool = False
    min_cached_tokens: int = 1024  # shortest prefix cached (lower it to cache a tiny test corpus)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> list prices: the bill

    def __post_init__(self) -> None:
        self._cache = PromptCache(self.min_cached_tokens)
        self._arrivals: Counter[str] = Counter()
        self._in_flight = 0
        self._lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> FakeServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        await self._runner.cleanup()
        # Handlers still sleeping (hang faults) are cancelled, not left to warn at exit.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    # ---- what the tests read ------------------------------------------------------

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def arrivals(self) -> Counter[str]:
        """How many times each request (by text) reached the server."""
        return Counter(h.text for h in self.snapshot())

    def billed(self) -> float:
        """USD the server charged in total (the invoice the client's ledger must match)."""
        return sum(h.billed_usd for h in self.snapshot())

    def served(self) -> Counter[str]:
        """How many successful (200, non-faulty) replies each request (by text) got."""
        return Counter(h.text for h in self.snapshot() if h.fault is None and h.status == 200)

    # ---- handlers -------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        authed = request.headers.get("Authorization") == f"Bearer {self.key}"
        return await self._handle(request, "openai", authed)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        # Older SDKs send x-api-key, newer ones a bearer token; accept either.
        authed = self.key in (request.headers.get("x-api-key"), request.headers.get("Authorization", "")[7:])
        return await self._handle(request, "anthropic", authed)

    async def _handle(self, request: web.Request, flavour: str, authed: bool) -> web.StreamResponse:
        body = await request.json()
        text = _text_of(body)
        rid = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        fault = None if authed else "401"
        with self._lock:
            n = self._arrivals[rid]
            self._arrivals[rid] += 1
            if fault is None:
                fault = self._fault_for(rid, text, n)
            hit = Hit(time.monotonic(), request.path, rid, text, fault, body, cache_key=body.get("prompt_cache_key"))
            if (self.caching or self.exact_usage) and fault in (None, "badtag"):
                hit.cached = self._cache.lookup(flavour, body, enabled=self.caching)
            self.hits.append(hit)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            resp = await self._reply(request, flavour, body, text, fault, hit)
            hit.status = resp.status if isinstance(resp, web.Response) else 200
            return resp
        finally:
            with self._lock:
                self._in_flight -= 1

    def settle_reply(self, hit: Hit, flavour: str, body: dict, payload: dict, *, batch: bool = False) -> None:
        """One answered request: its prompt-cache reads and writes go into ``payload``'s usage
        and the cache, and it is billed (``batch``: at the price's ``batch_multiplier``). The
        live handlers look the cache up on arrival (``hit.cached``); a batch line, processed
        at once, looks it up here, so later lines of a batch read what earlier ones cached."""
        usage = payload.get("usage")
        if not usage:
            return
        if hit.cached is None and (self.caching or self.exact_usage):
            hit.cached = self._cache.lookup(flavour, body, enabled=self.caching)
        if hit.cached is not None:
            self._cache.commit(hit.cached, usage)
        hit.usage = dict(usage)
        price = self.prices.get(str(body.get("model")))
        if price is not None:
            hit.billed_usd = _charge(flavour, hit.usage, price, batch=batch)

    def _fault_for(self, rid: str, text: str, n: int) -> str | None:
        plan = self.schedule.get(rid)
        if plan is None and (m := _MARKER.search(text)):
            plan = m.group(1).split(",")
        if plan is None:
            return self.fault_all
        return plan[n] if n < len(plan) else None

    async def _reply(self, request: web.Request, flavour: str, body: dict, text: str,
                     fault: str | None, hit: Hit) -> web.StreamResponse:
        if fault is not None and fault.isdigit():
            return _error(flavour, int(fault), self.retry_after)
        if fault == "echo_auth":
            return _echo_auth(request, flavour)
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
        if fault == "reset":
            request.transport.abort()  # type: ignore[union-attr]
            raise asyncio.CancelledError  # nothing more to say on a dropped connection
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = "C" if fault == "badtag" else self.answer
        reply = self.reply(body, text) if self.reply is not None and fault != "badtag" else None
        payload = _ok_body(flavour, request.path, body, text, answer, empty=fault == "empty", reply=reply)
        if fault in (None, "badtag"):
            self.settle_reply(hit, flavour, body, payload)
        raw = json.dumps(payload).encode()
        if fault == "html":
            return web.Response(body=b"<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html")
        if fault == "badutf8":
            return web.Response(body=raw.replace(b"Thinking", b"Think\xff\xfeing", 1), content_type="application/json")
        if fault == "huge":
            return await _huge(request, flavour, body, text, self.huge_bytes)
        if fault == "truncated":
            return web.Response(body=raw[: len(raw) // 2], content_type="application/json")
        if fault == "cut":
            return await _cut(request, raw)
        return web.Response(body=raw, content_type="application/json", headers=self.ratelimit_headers)


def _text_of(body: dict) -> str:
    if "prompt" in body:
        return str(body["prompt"])
    msgs = body.get("messages") or []
    return _plain(msgs[-1]["content"]) if msgs else ""


def _plain(content: object) -> str:
    """A message's text: a string, or the text of its content blocks (Anthropic) joined."""
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def _usage_in(body: dict, text: str) -> int:
    return sum(len(_plain(m.get("content", ""))) for m in body.get("messages", [])) // 4 + len(text) // 4 + 5


def _ok_body(flavour: str, path: str, body: dict, text: str, answer: str, *, empty: bool, reply: str | None = None) -> dict:
    reply = reply or f"Thinking about: {text[:60]}. <answer>{answer}</answer>"
    tin, tout = _usage_in(body, text), len(reply) // 4 + 1
    if flavour == "anthropic":
        return {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [] if empty else [{"type": "text", "text": reply}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": tin, "output_tokens": tout},
        }
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}
        obj = "text_completion"
    return {
        "id": "cmpl-fake", "object": obj, "created": int(time.time()), "model": body.get("model"),
        "choices": [] if empty else [choice],
        "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
    }


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}


def _error(flavour: str, status: int, retry_after: str | None) -> web.Response:
    message = f"injected fault {status}"
    headers = {"Retry-After": retry_after} if retry_after and status in (429, 503) else {}
    if flavour == "anthropic":
        body = {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}
    else:
        body = {"error": {"message": message, "type": "fake_error", "code": status}}
    return web.json_response(body, status=status, headers=headers)


def _echo_auth(request: web.Request, flavour: str) -> web.Response:
    sent = request.headers.get("Authorization") or f"x-api-key {request.headers.get('x-api-key', '')}"
    message = f"Incorrect API key provided. You sent: {sent}"
    if flavour == "anthropic":
        body = {"type": "error", "error": {"type": "authentication_error", "message": message}}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    return web.json_response(body, status=401)


async def _cut(request: web.Request, raw: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(raw)
    await resp.prepare(request)
    await resp.write(raw[: len(raw) // 2])
    request.transport.abort()  # type: ignore[union-attr]
    return resp


async def _huge(request: web.Request, flavour: str, body: dict, text: str, size: int) -> web.StreamResponse:
    """A well-formed reply of about ``size`` bytes, streamed in chunks with no Content-Length."""
    filler = "word " * (size // 5)
    raw = json.dumps(_ok_body(flavour, request.path, body, text, "A", empty=False, reply=filler)).encode()
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        for i in range(0, len(raw), 1 << 16):
            await resp.write(raw[i : i + (1 << 16)])
        await resp.write_eof()
    except ConnectionError:  # the client stopped reading: what a bounded reader does
        pass
    return resp


# ---- prompt caching and the bill (see the module docstring) ------------------------------

MIN_CACHED_TOKENS = 1024  # shortest prefix either provider caches
OPENAI_CACHE_STEP = 128  # OpenAI's cache hits grow in steps of this many tokens


def _blocks(body: dict) -> list[tuple[str, bool]]:
    """The prompt as (serialised text, breakpoint after it?) blocks, in the provider's order:
    system, then each message's content blocks. A prompt (completions) is one block."""
    if "prompt" in body:
        return [(str(body["prompt"]), False)]
    out: list[tuple[str, bool]] = []
    system = body.get("system")
    for b in system if isinstance(system, list) else ([{"text": system}] if system else []):
        out.append((f"<system>{b.get('text', '')}", bool(b.get("cache_control"))))
    for m in body.get("messages") or []:
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        for i, b in enumerate(parts):
            marker = f"<{m.get('role')}>" if i == 0 else ""
            out.append((marker + str(b.get("text", "")), bool(b.get("cache_control"))))
    return out


@dataclass
class CacheLookup:
    """What one request found in the prompt cache on arrival; stored when it is answered."""

    flavour: str
    text: str
    prefixes: list[int]  # character lengths of the prefixes it may read and will cache
    read: int  # tokens read from the cache

    @property
    def total(self) -> int:
        return len(self.text) // 4


class PromptCache:
    """Prefixes (by hash of their text) that answered requests have cached."""

    def __init__(self, min_tokens: int = MIN_CACHED_TOKENS) -> None:
        self.min_tokens = min_tokens
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def lookup(self, flavour: str, body: dict, *, enabled: bool = True) -> CacheLookup:
        """On arrival: the longest cached prefix this request reads (none when not ``enabled``)."""
        text, breaks = "", []
        for chunk, brk in _blocks(body):
            text += chunk
            if brk:
                breaks.append(len(text))
        if flavour == "anthropic":
            prefixes = [n for n in breaks if n // 4 >= self.min_tokens]
        else:
            prefixes = [n * 4 for n in range(self.min_tokens, len(text) // 4 + 1, OPENAI_CACHE_STEP)]
        if not enabled:
            prefixes = []
        with self._lock:
            read = max((n for n in prefixes if _h(text[:n]) in self._seen), default=0) // 4
        return CacheLookup(flavour, text, prefixes, read)

    def commit(self, found: CacheLookup, usage: dict) -> None:
        """On answering: rewrite ``usage`` as the provider reports it, and cache the prefixes."""
        with self._lock:
            self._seen.update(_h(found.text[:n]) for n in found.prefixes)
        if found.flavour == "anthropic":
            written = max(0, max(found.prefixes, default=0) // 4 - found.read)
            usage["cache_read_input_tokens"] = found.read
            usage["cache_creation_input_tokens"] = written
            usage["input_tokens"] = found.total - found.read - written
        else:
            usage["prompt_tokens"] = found.total
            usage["total_tokens"] = found.total + usage["completion_tokens"]
            usage["prompt_tokens_details"] = {"cached_tokens": found.read}


def _h(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _charge(flavour: str, usage: dict, price: dict[str, float], *, batch: bool = False) -> float:
    """USD for one reply's usage at ``price`` (USD per 1M tokens; ``batch``: times its
    ``batch_multiplier``, default 1)."""
    inp = price["input"]
    read_p, write_p = price.get("cached_input", inp), price.get("cache_write", inp)
    if flavour == "anthropic":
        read = usage.get("cache_read_input_tokens", 0)
        write = usage.get("cache_creation_input_tokens", 0)
        plain, out = usage["input_tokens"], usage["output_tokens"]
    else:
        read = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        write = 0
        plain, out = usage["prompt_tokens"] - read, usage["completion_tokens"]
    usd = (plain * inp + read * read_p + write * write_p + out * price["output"]) / 1e6
    return usd * (price.get("batch_multiplier", 1.0) if batch else 1.0)


# ---- helpers the client tests share ----------------------------------------------------

TRANSPORTS = ("fast", "sdk", "anthropic")  # aiohttp fast path, AsyncOpenAI, AsyncAnthropic
MODELS = {"fast": "gpt-4.1-mini", "sdk": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-5"}


def make_test_transport(kind: str, server: FakeServer, timeout: float = 5.0, key: str = KEY):
    """A real transport of ``kind`` pointed at ``server`` (built where the client runs)."""
    from persrm_gen.llm.backends import make_transport

    backend = "anthropic" if kind == "anthropic" else "openai"
    base = server.url if kind == "anthropic" else server.openai_base
    env = {"OPENAI_API_KEY": key, "ANTHROPIC_API_KEY": key}
    return make_transport(backend, MODELS[kind], base, timeout, http="sdk" if kind == "sdk" else "fast", env=env)

"""The local backend on a tiny random model built offline, plus one slow test on the real model."""

from __future__ import annotations

import asyncio
import json
import random
import signal

import pytest
import torch

from persrm_gen.errors import InputError, RunInterrupted
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.transports.local import LocalTransport
from persrm_gen.llm.transports.local_model import resolve_model
from persrm_gen.llm.types import LLMRequest, Message
from persrm_gen.trainers.tiny import build_random_model

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a proposal to add a new module to the standard library",
    "we the people of the united states in order to form a more perfect union",
    "readability counts and explicit is better than implicit",
    "four score and seven years ago our fathers brought forth on this continent",
    "simple is better than complex and complex is better than complicated",
]
PROMPTS = [
    "the quick brown fox",
    "a proposal to add a new module to the standard library because readability counts",
    "we the people",
    "simple is better than complex and explicit is better than implicit so the fox jumps",
    "four score",
    "readability counts",
]


def _build_tiny_model(folder) -> None:
    """A 2-layer model that can never emit its end token: rows run to max_tokens unless a
    stop rule of ours ends them. A 256-token context for the too-long test; peaked logits,
    as near-ties would make the greedy tests fragile; untied embeddings, as tied ones make a
    random model repeat its last word whatever the seed."""
    build_random_model(folder, SENTENCES, can_end=False, max_position_embeddings=256, initializer_range=0.2,
                       tie_word_embeddings=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    _build_tiny_model(folder)
    return folder


@pytest.fixture(scope="module")
def transport(model_dir):
    t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=8, max_wait_ms=50)
    yield t
    asyncio.run(t.aclose())


def _req(prompt: str, **kw) -> LLMRequest:
    return LLMRequest(model="tiny", prompt=prompt, **{"max_tokens": 12, **kw})


async def _each_alone(t: LocalTransport, requests):
    return [await t.send(r) for r in requests]


async def _together(t: LocalTransport, requests):
    return await asyncio.gather(*(t.send(r) for r in requests))


def test_concurrent_requests_are_batched(model_dir):
    t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=4, max_wait_ms=200)
    assert t.model is None  # loads lazily
    out = asyncio.run(_together(t, [_req(p) for p in PROMPTS + PROMPTS[:2]]))
    assert t.batches_run == 2  # 8 requests, 4 per batch
    assert all(r.output_tokens == 12 and r.finish_reason == "length" for r in out)
    asyncio.run(t.aclose())
    assert t.model is None


def test_waiting_requests_are_batched_with_others_of_similar_length(model_dir):
    t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=2, max_wait_ms=200)
    seen: list[list[str]] = []
    generate = t._generate_batch

    def recording(requests):  # the real generation, with the batch's make-up noted
        seen.append([r.prompt for r in requests])
        return generate(requests)

    t._generate_batch = recording
    short, long = "four score", "simple is better than complex and explicit is better than implicit so"
    prompts = [f"{short} {i}" if i % 2 == 0 else f"{long} {i}" for i in range(6)]  # short, long, short, ...
    out = asyncio.run(_together(t, [_req(p) for p in prompts]))
    asyncio.run(t.aclose())
    assert [r.output_tokens for r in out] == [12] * 6  # every caller got its own answer
    # The oldest waiting request leads each batch, joined by the one closest to it in length.
    assert seen == [[prompts[0], prompts[2]], [prompts[1], prompts[3]], [prompts[4], prompts[5]]]


@pytest.mark.parametrize("params", [
    {"temperature": 0.0},
    {"temperature": 1.0, "top_p": 1.0},
    {"temperature": 0.9, "top_p": 0.8},
])
def test_same_request_same_text_alone_or_with_any_neighbours(transport, params):
    requests = [_req(p, seed=7, **params) for p in PROMPTS]
    alone = asyncio.run(_each_alone(transport, requests))
    batched = asyncio.run(_together(transport, requests))
    # Different neighbours, different order, different padding.
    neighbours = [_req(p + " the dog", seed=99, temperature=1.0) for p in PROMPTS[:3]]
    mixed = asyncio.run(_together(transport, neighbours + requests[::-1]))[3:][::-1]
    assert [r.text for r in alone] == [r.text for r in batched] == [r.text for r in mixed]
    assert [r.output_tokens for r in alone] == [r.output_tokens for r in mixed]


def test_seed_and_attempt_change_sampled_text(transport):
    base = _req(PROMPTS[0], temperature=1.0, max_tokens=20)
    variants = [base, _req(PROMPTS[0], temperature=1.0, max_tokens=20, seed=1),
                _req(PROMPTS[0], temperature=1.0, max_tokens=20, attempt=1)]
    texts = [r.text for r in asyncio.run(_together(transport, variants))]
    assert len(set(texts)) == 3


def test_max_tokens_and_token_accounting(transport, model_dir):
    long, short = _req(PROMPTS[1], temperature=0, max_tokens=20), _req(PROMPTS[1], temperature=0, max_tokens=5)
    r_long, r_short = asyncio.run(_together(transport, [long, short]))
    prompt_tokens = len(transport.tokenizer(PROMPTS[1])["input_ids"])
    assert (r_long.input_tokens, r_long.output_tokens, r_long.finish_reason) == (prompt_tokens, 20, "length")
    assert (r_short.input_tokens, r_short.output_tokens, r_short.finish_reason) == (prompt_tokens, 5, "length")
    assert r_long.text.startswith(r_short.text) and len(r_short.text) < len(r_long.text)


def test_stop_string_cuts_text_and_ends_row_early(transport):
    free = asyncio.run(_together(transport, [_req(PROMPTS[2], temperature=0, max_tokens=30)]))[0]
    stop = free.text[len(free.text) // 2 : len(free.text) // 2 + 3]
    cut_at = free.text.find(stop)
    assert len(stop) == 3 and cut_at > 0
    stopping = _req(PROMPTS[2], temperature=0, max_tokens=30, stop=("never-appears", stop))
    neighbour = _req(PROMPTS[3], temperature=0, max_tokens=30)
    got, other = asyncio.run(_together(transport, [stopping, neighbour]))
    assert got.text == free.text[:cut_at]
    assert got.finish_reason == "stop"
    assert got.output_tokens < 30  # generation ended early, not just the text
    assert (other.output_tokens, other.finish_reason) == (30, "length")  # neighbour unaffected


def test_eos_token_ends_generation(model_dir, tmp_path):
    """A model whose end token is one it emits stops there with finish_reason 'stop'."""
    t = LocalTransport(model_dir, device="cpu", num_threads=1)
    request = _req(PROMPTS[0], temperature=0, max_tokens=12)
    asyncio.run(_together(t, [request]))
    ids = t.tokenizer(PROMPTS[0])["input_ids"]
    out = t.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    position = next(i for i, tok in enumerate(out) if tok not in out[:i] and i >= 2)
    asyncio.run(t.aclose())
    # Same weights, but generation_config says that token ends a sequence.
    copy = tmp_path / "eos-model"
    copy.mkdir()
    for f in model_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "generation_config.json").write_text(json.dumps({"eos_token_id": out[position]}))
    t2 = LocalTransport(copy, device="cpu", num_threads=1)
    got = asyncio.run(_together(t2, [request]))[0]
    assert (got.output_tokens, got.finish_reason) == (position + 1, "stop")
    assert got.text == t2.tokenizer.decode(out[:position], skip_special_tokens=True)
    asyncio.run(t2.aclose())


def test_base_model_refuses_chat_messages_and_chat_model_accepts_them(model_dir, tmp_path, transport):
    chat = LLMRequest(model="tiny", messages=(Message("user", "the quick brown fox"),), max_tokens=4)
    assert transport.supports_chat is False and transport.supports_prompt is True
    with pytest.raises(ValueError, match="chat template"):
        asyncio.run(transport.send(chat))
    # The same folder with a chat template is a chat model.
    copy = tmp_path / "chat-model"
    copy.mkdir()
    for f in model_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m.role }} {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant{% endif %}"
    )
    t = LocalTransport(copy, device="cpu", num_threads=1)
    assert t.supports_chat is True
    got = asyncio.run(t.send(chat))
    templated = "user the quick brown fox assistant"
    assert got.input_tokens == len(t.tokenizer(templated, add_special_tokens=False)["input_ids"])
    assert got.output_tokens == 4
    asyncio.run(t.aclose())


def test_aclose_fails_waiting_requests_instead_of_hanging(model_dir):
    async def run():
        t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=1)
        tasks = [asyncio.create_task(t.send(_req(p))) for p in PROMPTS]
        await asyncio.sleep(0.01)  # requests queued, the first batch running
        await t.aclose()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)

    results = asyncio.run(run())
    closed = [r for r in results if isinstance(r, RuntimeError) and "closed" in str(r)]
    assert len(closed) >= len(PROMPTS) - 1  # at most the running batch may have finished


def test_through_client_with_cache_second_call_is_a_hit(transport, tmp_path):
    async def run():
        cache = RequestCache(tmp_path / "cache.sqlite")
        client = LLMClient(transport, cache, concurrency=4)
        requests = [_req(p, seed=3, stage="candidates") for p in PROMPTS[:4]]
        first = await client.complete_many(requests)
        batches = transport.batches_run
        second = await client.complete_many(requests)
        cache.close()
        return client, first, second, batches

    client, first, second, batches = asyncio.run(run())
    assert transport.batches_run == batches  # no model call the second time
    assert [r.text for r in first] == [r.text for r in second]
    usage = client.accounting.stages["candidates"]
    assert (usage.requests, usage.cache_hits) == (4, 4)
    assert usage.output_tokens == sum(r.output_tokens for r in first)


def test_resolve_model_accepts_local_folders_only(model_dir, tmp_path):
    folder, name = resolve_model(str(model_dir))
    assert folder == model_dir.resolve() and name == str(model_dir.resolve())
    for bad in ["google/gemma-3-270m", str(tmp_path / "missing"), str(tmp_path)]:
        with pytest.raises(InputError, match="--model must be a local Hugging Face model folder"):
            resolve_model(bad)


@pytest.mark.slow
def test_embedded_model_continues_a_few_shot_prompt():
    folder, name = resolve_model(None)
    assert (folder / "model.safetensors").is_file() and "gemma-3-270m" in name
    t = LocalTransport(folder, device="cpu", batch_size=4)
    assert t.supports_chat is False
    prompt = "Monday, Tuesday, Wednesday,"
    requests = [
        LLMRequest(model=name, prompt=prompt, max_tokens=16, temperature=0, stop=(",",)),
        LLMRequest(model=name, prompt="Author: Guido\nText: Readability counts.\n\nAuthor: Barry\nText:",
                   max_tokens=24, temperature=0.8, seed=random.Random(0).randrange(100), stop=("\n",)),
    ]
    greedy, sampled = asyncio.run(_together(t, requests))
    assert greedy.text.strip() == "Thursday" and greedy.finish_reason == "stop"
    assert sampled.text.strip() and "\n" not in sampled.text and sampled.output_tokens <= 24
    asyncio.run(t.aclose())


def test_sampler_draws_from_the_tempered_nucleus_and_ignores_rounding_noise():
    from persrm_gen.llm.transports.local import _Row

    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -8.0])
    row = _Row(_req("x", temperature=0.5, top_p=1.0, seed=1), 1)
    draws = torch.tensor([row.pick(logits) for _ in range(20000)])
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = torch.softmax(logits / 0.5, dim=-1)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)

    # top_p 0.9 keeps tokens 0 and 1 (0.865 + 0.117 of the tempered mass), renormalised.
    row = _Row(_req("x", temperature=0.5, top_p=0.9, seed=1), 1)
    draws = torch.tensor([row.pick(logits) for _ in range(20000)])
    assert set(draws.tolist()) == {0, 1}
    assert abs((draws == 0).float().mean() - 0.865 / (0.865 + 0.117)) < 0.01

    # A nearly flat distribution, perturbed at float-rounding scale, samples the same tokens.
    flat = torch.randn(1500, generator=torch.Generator().manual_seed(0)) * 1e-2
    jitter = flat + torch.randn(1500, generator=torch.Generator().manual_seed(1)) * 1e-6
    rows = [_Row(_req("x", temperature=1.0, top_p=0.95, seed=3), 1) for _ in range(2)]
    a = [rows[0].pick(flat) for _ in range(200)]
    b = [rows[1].pick(jitter) for _ in range(200)]
    assert sum(x != y for x, y in zip(a, b)) <= 1


def _signal_during_first_batch(model_dir, tmp_path, *sigs: int):
    """Three requests, one per batch, through the client with its signal handlers; ``sigs``
    reach this process from the 5th forward pass of the first batch on, one per pass.
    Returns (what complete_many raised, forward passes run, batches finished, the cache's rows)."""
    import os
    import sqlite3

    t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=1, max_wait_ms=0)
    t.load()
    forwards = []

    def count(_module, _args, _output) -> None:
        forwards.append(1)
        if 5 <= len(forwards) < 5 + len(sigs):
            os.kill(os.getpid(), sigs[len(forwards) - 5])

    t.model.register_forward_hook(count)

    async def run():
        client = LLMClient(t, RequestCache(tmp_path / "cache.sqlite"), concurrency=3)
        client.handle_signals()
        try:
            await client.complete_many([_req(p, max_tokens=200, stage="candidates") for p in PROMPTS[:3]])
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - returned for the test to check
            return exc
        finally:
            await client.aclose()
            client.cache.close()

    raised = asyncio.run(run())
    rows = sqlite3.connect(tmp_path / "cache.sqlite").execute(
        "SELECT output_tokens, finish_reason FROM responses UNION ALL SELECT output_tokens, finish_reason FROM rejected"
    ).fetchall()
    return raised, len(forwards), t.batches_run, rows


def test_sigterm_abandons_the_generation_in_progress_and_caches_nothing(model_dir, tmp_path):
    """A scheduler's SIGTERM (SIGKILL follows within 30 s) must not wait for a CPU batch:
    generation stops within a token and no cut-off reply reaches the cache."""
    raised, forwards, batches, rows = _signal_during_first_batch(model_dir, tmp_path, signal.SIGTERM)
    assert isinstance(raised, RunInterrupted), raised
    assert forwards < 50  # the 200 tokens asked for were not generated (signal delivery may take a few)
    assert batches == 0 and rows == []  # nothing partial recorded, nothing queued was started


def test_first_sigint_finishes_the_batch_in_progress_and_starts_no_other(model_dir, tmp_path):
    raised, forwards, batches, rows = _signal_during_first_batch(model_dir, tmp_path, signal.SIGINT)
    assert isinstance(raised, RunInterrupted), raised
    assert batches == 1 and forwards == 200  # the running batch ran to the end: every token of it
    assert rows == [(200, "length")]  # and was cached whole; the queued two were never generated


def test_second_sigint_abandons_the_batch_the_first_let_finish(model_dir, tmp_path):
    raised, forwards, batches, rows = _signal_during_first_batch(model_dir, tmp_path, signal.SIGINT, signal.SIGINT)
    assert isinstance(raised, asyncio.CancelledError), raised  # which the CLI turns into exit 130 (below)
    assert forwards < 50 and batches == 0 and rows == []


def test_a_cancelled_run_exits_130_with_one_line_not_a_traceback(capsys):
    from persrm_gen.exitcodes import run_cli

    def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(SystemExit) as exit_:
        run_cli(cancelled)
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and len(err.strip().splitlines()) == 1 and "re-run the same command" in err.lower()


@pytest.mark.parametrize("raised", ["client stop", "local model", "batch wait", "cancelled", "keyboard"])
def test_an_interrupted_run_gives_its_resume_hint_once(raised, transport, tmp_path, capsys):
    """The client's stop reason already says how to resume; the exit path must not add it again."""
    from persrm_gen.exitcodes import run_cli
    from persrm_gen.llm.transports.local import GenerationInterrupted

    def interrupted() -> None:
        if raised == "client stop":  # the message a build really ends with after Ctrl-C/SIGTERM
            client = LLMClient(transport, RequestCache(tmp_path / "cache.sqlite"))
            client.request_stop()
            raise client.stopped
        raise {"local model": GenerationInterrupted("interrupted: the local model starts no new generation"),
               "batch wait": RunInterrupted("batch wait interrupted"),
               "cancelled": asyncio.CancelledError(), "keyboard": KeyboardInterrupt()}[raised]

    with pytest.raises(SystemExit) as exit_:
        run_cli(interrupted)
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and len(err.strip().splitlines()) == 1, err
    assert err.lower().count("re-run the same command") == 1, err


@pytest.mark.parametrize("first", ["interrupted", "finished"])
def test_a_signal_while_the_loop_winds_down_exits_130_with_one_line(first, model_dir, tmp_path, capsys):
    """A second Ctrl-C after the client gave its handlers back, while the loop still closes
    (the transport stopping, the runner joining its threads), must not break the shutdown:
    it broke uvloop's ("Event loop is closed", exit 1). Also when it is the first signal and
    the run had just finished: the run then ends as interrupted. Python's defaults are back after."""
    import os

    from persrm_gen.exitcodes import run_cli
    from persrm_gen.llm.client import run as client_run

    t = LocalTransport(model_dir, device="cpu", num_threads=1, batch_size=1, max_wait_ms=0)
    t.load()
    capsys.readouterr()  # the loading bar
    forwards = []

    def count(_module, _args, _output) -> None:
        forwards.append(1)
        if first == "interrupted" and len(forwards) == 5:
            os.kill(os.getpid(), signal.SIGINT)

    t.model.register_forward_hook(count)
    close = t.aclose

    async def close_signalled() -> None:  # the client's own handlers are gone by now
        os.kill(os.getpid(), signal.SIGINT)
        await close()

    t.aclose = close_signalled

    async def main() -> None:
        client = LLMClient(t, RequestCache(tmp_path / "cache.sqlite"), concurrency=3)
        client.handle_signals()
        try:
            await client.complete_many([_req(p, max_tokens=40, stage="candidates") for p in PROMPTS[:3]])
        finally:
            await client.aclose()
            client.cache.close()

    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: client_run(main()))
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.lower().count("re-run the same command") == 1, err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_signal_after_the_client_closed_is_noted_until_the_loop_closed(model_dir, tmp_path):
    """The order that makes the exit above safe: once the client gave its handlers back, a
    SIGINT raises nothing inside the still running loop (the coroutine runs to its end);
    ``client.run`` raises it as KeyboardInterrupt once the loop is closed, defaults back."""
    from persrm_gen.llm.client import run as client_run

    reached = []

    async def main() -> None:
        client = LLMClient(LocalTransport(model_dir, device="cpu"), RequestCache(tmp_path / "cache.sqlite"))
        client.handle_signals()
        await client.aclose()
        client.cache.close()
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
        reached.append(True)

    with pytest.raises(KeyboardInterrupt):
        client_run(main())
    assert reached == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

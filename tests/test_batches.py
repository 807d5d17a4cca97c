"""``--batch``: the providers' batch APIs through the official SDKs, against tests/fakeserver.py.

Client level (fast): splitting within limits, errored/expired lines sent again and counted,
a failed batch reported with the provider's (masked) message, a batch created before a kill
found again by its tag. CLI level (a subprocess): a batch build equals the live build row
for row; SIGKILL while a batch is pending, then the same command re-attaches and no body is
submitted or processed twice; ``batches OUT`` lists and ``--cancel`` cancels.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from example_corpus import write_example_slice
from fakeserver import MODELS, FakeServer, make_test_transport
from test_build_api import args, data_digests, env, persona, run
from test_cost_ledger import LIST_PRICES
from persrm_gen.errors import BudgetExceeded, FatalProviderError
from persrm_gen.llm.batches import make_batch_api
from persrm_gen.llm.batches.runner import BatchRunner
from persrm_gen.llm.batches.store import BatchStore
from persrm_gen.llm.cache import RequestCache
from persrm_gen.llm.client import LLMClient
from persrm_gen.llm.types import LLMRequest, Message

BATCH = ("--batch", "--batch-poll", "0.05")
SMALL = ("--swap-check", "--max-targets-per-author", "1")  # every stage, on a small build


def client_for(kind: str, server: FakeServer, cache_path: Path, **limits: int) -> LLMClient:
    backend = "anthropic" if kind == "anthropic" else "openai"
    base = server.url if kind == "anthropic" else server.openai_base
    api = make_batch_api(backend, base, env={"OPENAI_API_KEY": server.key, "ANTHROPIC_API_KEY": server.key}, **limits)
    transport = make_test_transport(kind, server, key=server.key)
    return LLMClient(transport, RequestCache(cache_path), batch=BatchRunner(api, poll=0.05))


def chat(kind: str, texts: list[str]) -> list[LLMRequest]:
    return [LLMRequest(model=MODELS[kind], messages=(Message("user", t),), seed=i) for i, t in enumerate(texts)]


def submitted_bodies(server: FakeServer) -> Counter:
    """How often each request body was put into a batch, over every batch the server got."""
    bodies = [line.get("body") or line.get("params") for b in server.batches.values() for line in b["_lines"]]
    return Counter(json.dumps(body, sort_keys=True) for body in bodies)


@pytest.mark.parametrize("kind", ["sdk", "anthropic"])
def test_lines_are_split_within_limits_and_faulty_lines_go_again(tmp_path, kind):
    texts = [f"question {i}" for i in range(7)]
    texts[1] += " [[batch:error]]"  # errored once, then fine
    texts[2] += " [[batch:expired,error]]"  # expired, errored, then fine
    texts[3] += " [[batch:refused]]"  # a 400: never sent again
    with FakeServer(batch_delay=0.05) as server:
        client = client_for(kind, server, tmp_path / "cache.sqlite", max_requests=3)

        async def go():
            async with client:
                return await client.complete_many(chat(kind, texts), return_exceptions=True)

        out = asyncio.run(go())
        processed = Counter(h.text for h in server.snapshot() if h.path.startswith("batch:"))
        first_round = [b for b in server.batches.values() if len(b["_lines"]) == 3]
    assert [isinstance(o, FatalProviderError) for o in out] == [False, False, False, True, False, False, False]
    assert all(o.batch and "<answer>" in o.text for i, o in enumerate(out) if i != 3)
    assert processed[texts[1]] == 2 and processed[texts[2]] == 3 and processed[texts[3]] == 1
    assert all(processed[t] == 1 for i, t in enumerate(texts) if i not in (1, 2, 3))
    assert len(first_round) == 2  # 7 lines within 3 a batch: 3 + 3 + 1, then the retries
    usage = client.accounting.total()
    assert (usage.retries, usage.server_errors, usage.timeouts, usage.failures) == (3, 2, 1, 1)
    assert usage.requests == 7 + 3  # every processed line, retries included
    assert "batches:" in client.accounting.summary()


def test_byte_limit_splits_batches(tmp_path):
    with FakeServer(batch_delay=0.0) as server:
        client = client_for("sdk", server, tmp_path / "cache.sqlite", max_bytes=600)

        async def go():
            async with client:
                return await client.complete_many(chat("sdk", ["x" * 200 for _ in range(4)]))

        assert all(o.batch for o in asyncio.run(go()))
        sizes = [len(server.files[b["input_file_id"]]) for b in server.batches.values()]
    assert len(sizes) >= 2 and all(s <= 600 for s in sizes)


def test_a_failed_batch_stops_with_the_providers_message_masked(tmp_path):
    key = "sk-proj-Abc123def456ghi789jkl012"  # what a real key looks like, so the mask knows it
    with FakeServer(batch_delay=0.0, batch_fail=1, key=key) as server:
        client = client_for("sdk", server, tmp_path / "cache.sqlite")

        async def go():
            async with client:
                return await client.complete_many(chat("sdk", ["a", "b"]), return_exceptions=True)

        out = asyncio.run(go())
    assert all(isinstance(o, FatalProviderError) for o in out)
    message = str(out[0])
    assert "injected batch failure" in message and "batch_000001 failed" in message
    assert key not in message and "Bearer ***" in message


def test_a_batch_created_but_never_recorded_is_found_by_its_tag(tmp_path):
    """A kill between ``batches.create`` and recording its id: the tag in its metadata finds it."""
    reqs = chat("sdk", ["one", "two"])
    with FakeServer(batch_delay=0.0) as server:
        client = client_for("sdk", server, tmp_path / "cache.sqlite")
        keys = [r.cache_key(client.key_scope) for r in reqs]
        runner = client.batch
        lines = [runner.api.encode(f"c{i}", r) for i, r in enumerate(reqs)]

        async def crash_after_create():  # what a run killed right after the create call leaves
            BatchStore(client.cache, client.key_scope).intend("persrm-tag1", "openai", runner.api.endpoint, 0,
                                                              [("c0", keys[0]), ("c1", keys[1])])
            await runner.api.submit(lines[0][0], [line for _, line in lines], "persrm-tag1")

        async def rerun():
            await crash_after_create()
            async with client:
                return await client.complete_many(reqs)

        out = asyncio.run(rerun())
        assert len(server.batches) == 1 and max(server.batch_processed.values()) == 1
    assert [o.text for o in out] == [f"Thinking about: {t}. <answer>A</answer>" for t in ("one", "two")]


def test_max_requests_in_batch_mode_sends_what_fits_then_a_rerun_sends_the_rest(tmp_path):
    reqs = chat("sdk", [f"q{i}" for i in range(5)])
    with FakeServer(batch_delay=0.05) as server:
        async def go(limit):
            client = client_for("sdk", server, tmp_path / "cache.sqlite")
            client.budget.max_requests = limit
            async with client:
                return await client.complete_many(reqs, return_exceptions=True)

        with pytest.raises(BudgetExceeded):
            asyncio.run(go(3))
        assert sum(server.batch_processed.values()) == 3  # the admitted lines were awaited and cached
        out = asyncio.run(go(None))
        assert [o.text for o in out] == [f"Thinking about: q{i}. <answer>A</answer>" for i in range(5)]
        assert sum(server.batch_processed.values()) == 5 and max(server.batch_processed.values()) == 1


def test_a_batch_the_provider_lost_is_sent_again(tmp_path):
    reqs = chat("sdk", ["lost one", "lost two"])
    with FakeServer(batch_delay=0.5) as server:
        client = client_for("sdk", server, tmp_path / "cache.sqlite")

        async def go():
            async def forget():
                while not server.batches:
                    await asyncio.sleep(0.01)
                server.batches.clear()  # a 404 from now on for that batch

            async with client:
                results, _ = await asyncio.gather(client.complete_many(reqs), forget())
                return results

        out = asyncio.run(go())
        assert len(server.batches) == 1  # the new one; the lost one never ran
    assert [o.text for o in out] == [f"Thinking about: {t}. <answer>A</answer>" for t in ("lost one", "lost two")]
    assert client.accounting.total().retries == 2


# ---- the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=3, last=2, samples=4)


@pytest.fixture(scope="module")
def live(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("live") / "out"
    with FakeServer(reply=persona) as server:
        run(args(corpus, out, server, *SMALL), server)
    return out


def test_a_batch_build_equals_the_live_build(tmp_path, corpus, live):
    out = tmp_path / "out"
    with FakeServer(reply=persona, batch_delay=0.05, prices=LIST_PRICES) as server:
        run(args(corpus, out, server, *SMALL, *BATCH), server)
        live_hits = [h for h in server.snapshot() if not h.path.startswith("batch:")]
        assert not live_hits  # every request went through a batch
        assert max(submitted_bodies(server).values()) == 1
        assert {b["endpoint"] for b in server.batches.values()} == {"/v1/chat/completions"}
        billed = server.billed()
        first = (out / "manifest.json").read_text()
        run(args(corpus, out, server, *SMALL, *BATCH), server)  # from the cache: the same bill
        assert server.billed() == billed and (out / "manifest.json").read_text() == first
    assert data_digests(out) == data_digests(live)
    live_usage = json.loads((live / "manifest.json").read_text())["usage"]["total"]
    usage = json.loads(first)["usage"]["total"]
    assert (usage["requests"], usage["input_tokens"]) == (live_usage["requests"], live_usage["input_tokens"])
    assert usage["cost_usd"] == pytest.approx(billed, abs=1e-5)  # the ledger is the server's bill
    assert usage["cost_usd"] == pytest.approx(live_usage["cost_usd"] / 2, abs=1e-5)  # at the batch price
    assert usage["list_cost_usd"] == pytest.approx(live_usage["cost_usd"], abs=1e-6)
    listed = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(out)], capture_output=True,
                            text=True, env=env(server))
    assert listed.returncode == 0 and listed.stdout.count("downloaded") == len(server.batches) >= 3


def kill_once_a_batch_is_pending(cmd: list[str], server) -> None:
    """Start the build, wait until it has submitted one batch and polls it, then SIGKILL it."""
    proc = subprocess.Popen(cmd, env=env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not server.batches and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # the build now polls the batch it submitted
    assert proc.poll() is None and len(server.batches) == 1, "the batch should be pending"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_while_a_batch_is_pending_then_the_same_command_reattaches(tmp_path, corpus, live):
    out = tmp_path / "out"
    with FakeServer(reply=persona, batch_delay=60.0) as server:
        cmd = args(corpus, out, server, *SMALL, *BATCH)
        kill_once_a_batch_is_pending(cmd, server)
        listed = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(out)], capture_output=True,
                                text=True, env=env(server))
        assert "batch_000001" in listed.stdout and "pending" in listed.stdout
        server.batch_delay = 0.05
        run(cmd, server)
        assert max(submitted_bodies(server).values()) == 1  # nothing submitted twice
        assert max(server.batch_processed.values()) == 1  # nor processed twice
    assert data_digests(out) == data_digests(live)


def test_batches_cancel_cancels_the_pending_ones_and_a_rebuild_finishes(tmp_path, corpus, live):
    out = tmp_path / "out"
    with FakeServer(reply=persona, batch_delay=60.0) as server:
        cmd = args(corpus, out, server, *SMALL, *BATCH)
        kill_once_a_batch_is_pending(cmd, server)
        cancelled = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(out), "--cancel"],
                                   capture_output=True, text=True, env=env(server))
        assert cancelled.returncode == 0, cancelled.stderr
        assert "batch_000001: cancel requested (now cancelling)" in cancelled.stdout
        assert server.batches["batch_000001"]["status"] == "cancelling"
        server.batch_delay = 0.05
        run(cmd, server)  # the cancelled batch's lines are sent again in a new batch
        assert server.batches["batch_000001"]["status"] == "cancelled"
        assert max(server.batch_processed.values()) == 1
        again = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(out), "--cancel"],
                               capture_output=True, text=True, env=env(server))
    assert "nothing to cancel" in again.stdout
    assert data_digests(out) == data_digests(live)


def test_batch_with_the_local_backend_is_refused_in_one_line(tmp_path, corpus):
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(corpus), "--out",
                           str(tmp_path / "out"), "--batch"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "batch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_anthropic_message_batches_build_equals_the_live_build(tmp_path, corpus):
    live_out, batch_out = tmp_path / "live", tmp_path / "batch"
    with FakeServer(reply=persona) as server:
        run(args(corpus, live_out, server, *SMALL, backend="anthropic"), server)
    with FakeServer(reply=persona, batch_delay=0.05) as server:
        run(args(corpus, batch_out, server, *SMALL, *BATCH, backend="anthropic"), server)
        assert server.batches and all(h.path.startswith("batch:") for h in server.snapshot())
        assert all(b["id"].startswith("msgbatch_") for b in server.batches.values())
    assert data_digests(batch_out) == data_digests(live_out)


def test_ctrl_c_while_waiting_stops_at_once_with_a_resume_hint(tmp_path, corpus):
    out = tmp_path / "out"
    with FakeServer(reply=persona, batch_delay=60.0) as server:
        cmd = args(corpus, out, server, *SMALL, "--batch", "--batch-poll", "30")
        proc = subprocess.Popen(cmd, env=env(server), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not server.batches and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - sent < 10  # not after the 30 s poll interval
        assert proc.returncode == 130 and "re-run the same command" in err
        # the batch stays recorded as pending: the same command re-attaches (as after SIGKILL, above);
        # a build without --batch says it would pay for those requests again
        listed = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(out)], capture_output=True, text=True)
        assert "batch_000001" in listed.stdout and "pending" in listed.stdout
        live_run = run(args(corpus, out, server, *SMALL, "--max-requests", "0"), server, check=False)
    assert "provider batches not collected yet" in live_run.stderr and "--batch" in live_run.stderr


def test_batches_of_a_folder_without_a_cache_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "batches", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cache.sqlite" in proc.stderr

"""Cost in a whole build: the manifest's ledger equals the server's bill with prompt caching,
the cached share and the savings show, and ``--trace-hint`` marks the traces it writes.

Builds run the CLI against tests/fakeserver.py (prompt caching on, list prices) with the
deterministic persona model of test_build_api.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from example_corpus import write_example_slice
from fakeserver import FakeServer
from test_build_api import args, persona, run
from test_cost_ledger import LIST_PRICES

from persrm_gen.generator.rationales import warm_first
from persrm_gen.records import Pair


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=3, last=2, samples=4)


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_the_manifest_bills_what_the_server_billed_and_shows_the_cached_share(tmp_path, authors, backend):
    out = tmp_path / "out"
    # The example slice's prompts are short: cache prefixes from 128 tokens on.
    with FakeServer(reply=persona, caching=True, min_cached_tokens=128, prices=LIST_PRICES) as server:
        run(args(authors, out, server, backend=backend), server)
        billed = server.billed()
        hits = server.snapshot()
    manifest = json.loads((out / "manifest.json").read_text())
    total = manifest["usage"]["total"]
    assert total["cost_usd"] == pytest.approx(billed, abs=1e-5)  # per-stage rounding to 6 decimals
    assert total["cached_input_tokens"] > 0 and 0 < total["cached_share"] < 1
    # three roundings to 6 decimals (saved, list, cost: each within 5e-7) lie between the two sides
    assert total["saved_usd"] == pytest.approx(total["list_cost_usd"] - total["cost_usd"], abs=2e-6)
    assert manifest["usage"]["stages"]["rationale"]["cached_input_tokens"] > 0  # the second wave read the first's
    judge = manifest["usage"]["judge_requests_by_strategy"]
    assert judge["all"]["requests"] == manifest["usage"]["stages"]["rationale"]["requests"]
    assert judge["all"]["requests_per_kept_trace"] >= 1
    if backend == "openai":
        assert total["saved_usd"] > 0
        assert {h.cache_key[:2] for h in hits if h.path.endswith("/chat/completions")} == {"a-"}
    else:
        assert total["cache_write_tokens"] > 0
    card = (out / "README.md").read_text()
    assert "cached_share" in card  # the card shows the ledger
    assert f"Cost: ${total['cost_usd']:.4f} billed by the provider (${total['list_cost_usd']:.4f} at list price" in card


def test_trace_hint_writes_marked_traces_for_pairs_the_blind_judge_missed(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        run(args(authors, out, server, "--max-attempts", "1", "--trace-hint"), server)
    manifest = json.loads((out / "manifest.json").read_text())
    splits = datasets.load_dataset(str(out), "pairs")
    pairs = [r for split in splits.values() for r in split]
    hinted = [r for r in pairs if r["rationale_source"] == "llm-hinted"]
    assert hinted and all(r["rationale_ok"] and r["rationale"].endswith(f"<answer>{r['label']}</answer>")
                          for r in hinted)
    judge = manifest["usage"]["judge_requests_by_strategy"]["all"]
    assert judge["kept_hinted"] == len(hinted) and judge["hinted_requests"] >= len(hinted)
    assert manifest["rejections"].get("trace_dropped_after_max_attempts", 0) < judge["hinted_requests"]
    assert manifest["trace_hint"] is True
    stats = subprocess.run([sys.executable, "-m", "persrm_gen.cli", "stats", str(out), "--json"], capture_output=True,
                           text=True, check=True)
    per_trace = json.loads(stats.stdout)["judge_requests_per_kept_trace"]
    assert per_trace["all"] == judge["requests_per_kept_trace"] and "mimic" in per_trace


def _pair(pid: str, author: str, sample: str) -> Pair:
    return Pair(pid, author, "g", "q", ["c"], "x", "y", "author", "gen", "x", "y", "A", "", 0.0, "train",
                sample_id=sample)


def test_warm_first_sends_one_pair_per_target_before_the_rest():
    pairs = [_pair("1", "a", "s1"), _pair("2", "a", "s1"), _pair("3", "a", "s2"), _pair("4", "b", "s1"),
             _pair("5", "a", "s1")]
    first, rest = warm_first(pairs)
    assert [p.id for p in first] == ["1", "3", "4"] and [p.id for p in rest] == ["2", "5"]
    assert warm_first(pairs[:1]) == [pairs[:1]]

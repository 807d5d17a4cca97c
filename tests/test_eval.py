"""Evaluation metrics, baselines, the cached API judge and behaviour tagging."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persrm_gen.answer import make_trace
from persrm_gen.cli.app import app
from persrm_gen.errors import InputError, UsageError
from persrm_gen.llm.types import LLMRequest, LLMResponse
from persrm_gen.options_file import load_options
from persrm_gen.trainers.behaviours import behaviour_report, compare_behaviours, tag_trace
from persrm_gen.trainers.evaluate import ApiJudge, EvalOptions, Judgment, evaluate, load_items, score
from trainers_data import write_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("eval") / "data",
                         {"train": 2, "test_seen_authors": 4, "test_unseen_authors": 6})  # fmt: skip


def test_every_pair_is_judged_in_both_orders(data):
    items = load_items(data, ["test_seen_authors"])
    assert len(items) == 8
    ab, ba = items[0], items[1]
    assert (ab.order, ba.order) == ("ab", "ba") and ab.pair_id == ba.pair_id
    assert (ba.response_a, ba.response_b) == (ab.response_b, ab.response_a)
    assert {ab.label, ba.label} == {"A", "B"}
    assert [i.order for i in load_items(data, ["test_unseen_authors"], limit=2)] == ["ab", "ba"] * 2


def test_score_separates_position_bias_from_skill(data):
    items = load_items(data, ["test_seen_authors"])  # 4 pairs, 8 items, labels balanced
    always_a = score(items, [Judgment("A") for _ in items])
    assert always_a["accuracy"] == 0.5 and always_a["position_bias"] == 0.5
    assert always_a["order_consistency"] == 0.0 and always_a["pair_accuracy"] == 0.0
    oracle = score(items, [Judgment(i.label, make_trace("two words", i.label)) for i in items])
    assert oracle["accuracy"] == 1.0 and oracle["order_consistency"] == 1.0 and oracle["position_bias"] == 0.0
    assert oracle["mean_reasoning_words"] == 2.0
    # Parse failures count as wrong and are reported.
    half = score(items, [Judgment(i.label if k % 2 else None) for k, i in enumerate(items)])
    assert half["accuracy"] == 0.5 and half["parse_failure_rate"] == 0.5 and half["order_consistency"] == 0.0
    assert set(half["by_author"]) == {"loud", "quiet"} and half["by_genre"]["essay"]["n"] == 8
    # A forced verdict fills a parse failure for accuracy_forced only; strict metrics ignore it.
    forced = score(items, [Judgment(None, "<think>\nfour words then cut", forced=i.label) if k % 2 == 0
                           else Judgment(i.label, make_trace("x", i.label)) for k, i in enumerate(items)])  # fmt: skip
    assert forced["accuracy"] == 0.5 and forced["accuracy_forced"] == 1.0
    assert forced["order_consistency"] == 0.0 and forced["order_consistency_forced"] == 1.0
    assert forced["mean_reasoning_words"] == (4 + 1) / 2  # an unclosed trace's words count too
    assert oracle["accuracy_forced"] == 1.0 and always_a["order_consistency_forced"] == 0.0


class ScriptedProvider:
    """A stand-in for a hosted API: answers by the casing of response A, counts calls."""

    provider = "openai"
    supports_chat, supports_prompt = True, False

    def __init__(self):
        self.calls = 0

    async def send(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        user = request.messages[-1].content
        a = user.split("# Response A")[1].split("# Response B")[0]
        verdict = "A" if a.strip().isupper() else "B"
        return LLMResponse(text=f"<think>\nFirst, let me check the capitals; then the punctuation.\n</think>\n"
                                f"<answer>{verdict}</answer>", input_tokens=10, output_tokens=5)  # fmt: skip

    async def aclose(self):
        pass


def test_api_judge_is_cached_and_scored(data, tmp_path):
    items = load_items(data, ["test_seen_authors"])
    provider = ScriptedProvider()
    judgments = ApiJudge(provider, tmp_path / "cache.sqlite", "gpt-x").judge(items)
    assert provider.calls == 8
    expected = ["A" if i.response_a.strip().isupper() else "B" for i in items]
    assert [j.verdict for j in judgments] == expected
    again = ScriptedProvider()
    assert [j.verdict for j in ApiJudge(again, tmp_path / "cache.sqlite", "gpt-x").judge(items)] == expected
    assert again.calls == 0  # every answer came from the cache


def test_baselines_only_run_writes_report_and_plot(data, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", "--data", str(data), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"] is None and report["splits"] == ["test_seen_authors", "test_unseen_authors"]
    assert set(report["judges"]) == {"random", "stylometric"}
    # The synthetic authors differ in case and punctuation: the stylometric judge must see it.
    assert report["judges"]["stylometric"]["accuracy"] >= 0.9
    assert report["judges"]["stylometric"]["by_split"]["test_unseen_authors"]["n"] == 12
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 20


def test_eval_options_come_from_a_config_file_with_cli_overrides(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(data.parent))  # the report must not spell out the home folder
    config = tmp_path / "eval.yaml"
    config.write_text("baselines: [random, stylometric]\nlimit: 1\nsplits: [test_unseen_authors]\nseed: 3\n")
    out = tmp_path / "report"
    args = ["eval", "--data", str(data), "--out", str(out), "--config", str(config)]
    result = runner.invoke(app, [*args, "--baselines", "stylometric", "--limit", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["judges"]) == {"stylometric"}  # the CLI's --baselines won over the file
    assert report["n_pairs"] == {"test_unseen_authors": 2}  # --limit from the CLI, the split from the file
    assert report["options"]["seed"] == 3
    assert report["data"] == report["options"]["data"] == "~/data"
    assert "accuracy_forced" in report["judges"]["stylometric"]

    config.write_text("baselines: [random]\nmax_tokens: 9\n")
    (out / "report.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "eval.yaml" in proc.stdout + proc.stderr and "max_tokens" in proc.stdout + proc.stderr
    assert not (out / "report.json").exists()

    config.write_text("limit: 2\nsplits: [test_unseen_authors,\n")  # an unclosed list
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and "eval.yaml:3: cannot parse" in lines[0], lines


def test_eval_with_an_extra_judge_tags_behaviours(data, tmp_path):
    provider = ScriptedProvider()
    api = ApiJudge(provider, tmp_path / "c.sqlite", "gpt-x")
    opts = EvalOptions(data=str(data), out=str(tmp_path / "r"), baselines=["random"], behaviours=True)
    report = evaluate(opts, extra_judges=[api])
    rates = report["behaviours"]["api:gpt-x"]["rates"]
    assert rates["verification"] == 1.0 and rates["subgoal_setting"] == 1.0 and rates["backtracking"] == 0.0
    assert rates["criterion:punctuation"] == 1.0


def test_eval_refuses_to_guess_where_to_write(data):
    with pytest.raises(UsageError, match="--out"):
        evaluate(EvalOptions(data=str(data)))
    with pytest.raises(UsageError, match="unknown baseline"):
        evaluate(EvalOptions(data=str(data), out="unused-never-written", baselines=["oracle"]))


def test_behaviour_tags_and_comparison():
    trace = make_trace(
        "First, I compare sentence length. Wait, actually the punctuation matters more. "
        "Let me check the commas again. If the author wrote B, it would need semicolons.", "A")  # fmt: skip
    tags = tag_trace(trace)
    assert tags["subgoal_setting"] == 1 and tags["backtracking"] == 2 and tags["verification"] == 1
    assert tags["backward_chaining"] >= 1
    assert tags["criterion:length"] >= 1 and tags["criterion:punctuation"] >= 2 and tags["criterion:tone"] == 0
    plain = make_trace("B looks right.", "B")
    before, after = behaviour_report([plain, plain]), behaviour_report([trace, plain])
    assert before["rates"]["backtracking"] == 0.0 and after["rates"]["backtracking"] == 0.5
    assert compare_behaviours(before, after)["backtracking"] == 0.5


def test_bad_eval_inputs_fail_before_anything_is_written(data, tmp_path):
    out = tmp_path / "report"
    (tmp_path / "file").write_text("x")
    cases = [
        ({"splits": ["nope"]}, r"pairs/nope-\*\.parquet: missing: .*pairs splits: test_seen_authors, test_unseen_authors"),
        ({"compare_to": str(tmp_path / "before.json")}, "--compare-to: .*before.json"),
        ({"compare_to": str(tmp_path / "file")}, "--compare-to: .*not a readable JSON report"),
        ({"data": str(tmp_path / "nope")}, "--data: .* does not exist"),
        ({"model": str(tmp_path)}, "--model: .* is not a model folder"),
        ({"out": str(tmp_path / "file")}, "--out: .* is a file"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            evaluate(EvalOptions(**{"data": str(data), "out": str(out), **kwargs}))
    assert not out.exists()
    config = tmp_path / "eval.yaml"
    config.write_text("seed: 1\nlimit: many\nsplits: test_seen_authors\n")
    with pytest.raises(InputError) as caught:
        load_options(EvalOptions, config, {"data": str(data), "max_new_tokens": 0})
    assert [str(i) for i in caught.value.issues] == [
        "--max-new-tokens: input should be greater than or equal to 1 (got 0)",
        f"{config}:2: limit: input should be a valid integer (got 'many')",
        f"{config}:3: splits: input should be a valid list (got 'test_seen_authors')",
    ]

"""train sft -> train rft -> eval, end to end on CPU, through the CLI, on a tiny offline model."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from persrm_gen.cli.app import app
from persrm_gen.errors import InputError, UsageError
from persrm_gen.options_file import load_options
from persrm_gen.trainers.rft import RFTOptions, train_rft
from persrm_gen.trainers.sft import SFTOptions, train_sft
from trainers_data import trainer_workspace, write_dataset

runner = CliRunner()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict) -> list[str]:
    """Names of the tensors that differ (embeddings compared on the rows both have)."""
    out = []
    for name, t in before.items():
        u = after[name]
        rows = min(t.shape[0], u.shape[0])
        if not torch.equal(t[:rows], u[:rows]):
            out.append(name)
    return out


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return trainer_workspace(tmp_path_factory.mktemp("trainers"))


@pytest.fixture(scope="module")
def sft_ckpt(work) -> Path:
    config = work / "sft.yaml"
    # The file sets the batch and a learning rate the CLI then overrides.
    config.write_text("batch_size: 4\nlearning_rate: 1.0e-4\nlogging_steps: 5\nmax_length: 1024\n")
    out = work / "sft"
    invoke("train", "sft", "--data", work / "data", "--model", work / "tiny", "--out", out,
           "--config", config, "--max-steps", 30, "--lr", 2e-2)  # fmt: skip
    return out


def test_sft_learns_the_trace_format_and_writes_a_plain_model_folder(work, sft_ckpt):
    info = json.loads((sft_ckpt / "persrm_train.json").read_text())
    assert info["options"]["learning_rate"] == 2e-2  # CLI beat the config file
    assert info["options"]["batch_size"] == 4  # the config file beat the default
    assert info["global_step"] == 30 and info["stage"] == "sft"
    losses = [h["loss"] for h in info["log_history"] if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0] / 2
    # The template-less base model got Gemma's turn format, and its end marker is the EOS.
    tok = json.loads((sft_ckpt / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == "<end_of_turn>"
    assert (sft_ckpt / "chat_template.jinja").read_text().count("<start_of_turn>") >= 1
    assert changed(weights(work / "tiny"), weights(sft_ckpt))
    card = (sft_ckpt / "README.md").read_text()
    for section in ("## Model", "## Data", "## Training", "## Intended use", "## Personal data"):
        assert section in card
    assert str(work / "tiny") in card and "Not evaluated yet" in card


def test_rft_rewards_move_the_weights(work, sft_ckpt):
    config = work / "rft.json"
    # A gentle rate: four GRPO steps at 1e-3 could unlearn the SFT format, and whether they
    # did depended on float reduction order (thread count, earlier tests), failing the eval
    # test below when this file ran alone.
    config.write_text(json.dumps({"logging_steps": 1, "temperature": 0.7, "learning_rate": 1e-4}))
    out = work / "rft"
    invoke("train", "rft", "--data", work / "data", "--model", sft_ckpt, "--out", out, "--config", config,
           "--max-steps", 4, "--num-generations", 4, "--max-completion-length", 32, "--beta", 0.0,
           "--length-penalty", 0.1, "--length-target", 8)  # fmt: skip
    info = json.loads((out / "persrm_train.json").read_text())
    steps = [h for h in info["log_history"] if "reward" in h]
    assert len(steps) == 4
    for key in ("rewards/format_reward/mean", "rewards/accuracy_reward/mean", "rewards/length_penalty/mean"):
        assert all(key in h for h in steps)
    # After SFT the sampled judgments differ within a group, so some steps have signal...
    assert any(h["reward_std"] > 0 for h in steps)
    assert max(h["rewards/format_reward/mean"] for h in steps) > 0
    # ...and the policy moved.
    assert changed(weights(sft_ckpt), weights(out))
    assert "(RFT)" in (out / "README.md").read_text()


def test_rft_without_reward_spread_warns_and_learns_nothing(work, caplog):
    # The untrained tiny model never writes a well-formed answer: every reward is 0.
    out = work / "rft-flat"
    with caplog.at_level(logging.WARNING, logger="persrm_gen.trainers"):
        info = train_rft(RFTOptions(data=str(work / "data"), out=str(out), model=str(work / "tiny"), max_steps=1,
                                    num_generations=2, max_completion_length=8, logging_steps=1))  # fmt: skip
    assert info["zero_spread_steps"] == [1]
    assert any("no spread" in r.getMessage() for r in caplog.records)
    assert info["log_history"][0]["loss"] == 0.0
    assert not changed(weights(work / "tiny"), weights(out))


def test_eval_on_the_rft_checkpoint_writes_report_plot_and_card(work, sft_ckpt):
    rft = work / "rft"
    if not rft.exists():
        pytest.skip("needs test_rft_rewards_move_the_weights")
    result = invoke("eval", "--model", rft, "--data", work / "data", "--split", "test_unseen_authors",
                    "--max-new-tokens", 24, "--behaviours")  # fmt: skip
    assert "stylometric" in result.output
    report = json.loads((rft / "report.json").read_text())
    assert report["splits"] == ["test_unseen_authors"] and report["n_pairs"] == {"test_unseen_authors": 4}
    assert set(report["judges"]) == {"model", "random", "stylometric"}
    model = report["judges"]["model"]
    assert model["n"] == 8  # 4 pairs, both orders
    assert 0.0 <= model["parse_failure_rate"] < 1.0  # the trained model writes parsable answers
    assert model["mean_reasoning_words"] > 0
    assert set(model["by_author"]) == {"loud-new", "quiet-new"}
    assert report["behaviours"]["model"]["n_traces"] == 8
    assert (rft / "accuracy.png").stat().st_size > 1000
    card = (rft / "README.md").read_text()
    assert "## Evaluation" in card and "| model |" in card and "Not evaluated yet" not in card


def test_bad_inputs_fail_before_training(work, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-4\nbatch_sise: 4\n")
    with pytest.raises(InputError, match="batch_sise"):
        runner.invoke(app, ["train", "sft", "--data", str(work / "data"), "--out", str(tmp_path / "o"),
                            "--config", str(bad)], catch_exceptions=False)  # fmt: skip
    with pytest.raises(InputError, match="not a built persrm-gen dataset"):
        train_sft(SFTOptions(data=str(tmp_path), out=str(tmp_path / "o2"), model=str(work / "tiny")))
    with pytest.raises(UsageError, match="multiple of --num-generations"):
        train_rft(RFTOptions(data=str(work / "data"), out=str(tmp_path / "o3"), model=str(work / "tiny"),
                             batch_size=3, num_generations=2))  # fmt: skip
    with pytest.raises(UsageError, match="not empty"):
        train_sft(SFTOptions(data=str(work / "data"), out=str(work / "tiny"), model=str(work / "tiny")))
    assert not (tmp_path / "o").exists() and not (tmp_path / "o3").exists()


def test_forced_verdicts_read_the_models_own_odds(work, sft_ckpt, tmp_path):
    from persrm_gen.trainers.evaluate import ModelJudge, load_items

    judge = ModelJudge(sft_ckpt, batch_size=3, max_new_tokens=2)  # 2 tokens: never a complete answer
    items = load_items(work / "data", ["test_unseen_authors", "test_seen_authors"])
    judgments = judge.judge(items)
    assert all(j.verdict is None and j.forced in ("A", "B") for j in judgments)
    # Batched with left padding, the forced verdict is what each context alone gives.
    tok, model = judge.tokenizer, judge.model
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    gaps = []
    for item, j in zip(items, judgments):
        ids = tok(judge._prompt(item) + j.text + judge.FORCE_SUFFIX, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            last = model(**ids).logits[0, -1]
        assert j.forced == ("A" if last[a] >= last[b] else "B")
        gaps.append(float(last[a] - last[b]))
    assert len({round(g, 4) for g in gaps}) > 1  # the odds depend on the pair, not a constant

    out = tmp_path / "report"
    invoke("eval", "--model", sft_ckpt, "--data", work / "data", "--split", "test_unseen_authors",
           "--out", out, "--max-new-tokens", 2, "--baselines", "")  # fmt: skip
    report = json.loads((out / "report.json").read_text())["judges"]["model"]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert report["parse_failure_rate"] == 1.0 and report["accuracy"] == 0.0
    assert report["accuracy_forced"] == sum(p["forced"] == p["label"] for p in predictions) / len(predictions)


def test_generation_stops_per_row_after_the_answer_tag(work):
    from transformers import AutoTokenizer

    from persrm_gen.trainers.evaluate import _StopAfterAnswer

    tok = AutoTokenizer.from_pretrained(str(work / "tiny"))
    tok.padding_side = "left"
    prompt = "<answer>A</answer> the prompt quotes the format"
    rows = [prompt + " <think> loud </think> <answer>B</answer>", prompt + " <think> loud and quiet"]
    ids = tok(rows, return_tensors="pt", padding=True)["input_ids"]
    prompt_len = ids.shape[1] - (len(tok(rows[0])["input_ids"]) - len(tok(prompt)["input_ids"]))
    assert _StopAfterAnswer(tok, prompt_len)(ids, None).tolist() == [True, False]


@pytest.mark.parametrize(("text", "expected"), [
    ("batch_size: four\n", "sft.yaml:1: batch_size: input should be a valid integer (got 'four')"),
    ("epochs: 2\nmax_length: 0\n", "sft.yaml:2: max_length: input should be greater than or equal to 1 (got 0)"),
    ("lora: maybe\n", "sft.yaml:1: lora: input should be a valid boolean (got 'maybe')"),
    ("batch_size: \"4\"\n", "sft.yaml:1: batch_size: input should be a valid integer (got '4')"),
    ("seed: 1\nbatch_size: null\n", "sft.yaml:2: batch_size: input should be a valid integer"),
    ("learning_rate: 0\n", "sft.yaml:1: learning_rate: input should be greater than 0 (got 0)"),
    ("trl_args: [warmup_ratio]\n", "sft.yaml:1: trl_args: input should be a valid dictionary"),
    ("learning_rate: 1e-4\nbatch_sise: 4\n", "sft.yaml:2: batch_sise: unknown option (did you mean 'batch_size'?)"),
])  # fmt: skip
def test_config_file_errors_name_the_file_line_and_key(tmp_path, text, expected):
    config = tmp_path / "sft.yaml"
    config.write_text(text)
    with pytest.raises(InputError) as caught:
        load_options(SFTOptions, config, {})
    assert [str(i) for i in caught.value.issues] == [f"{tmp_path}/{expected}"]


def test_option_values_are_checked_and_yaml_exponents_read_as_numbers(tmp_path):
    config = tmp_path / "rft.yaml"
    config.write_text("learning_rate: 1e-4\nnum_generations: 4\n")
    opts = load_options(RFTOptions, config, {"max_length": 300})
    assert (opts.learning_rate, opts.num_generations, opts.max_length) == (1e-4, 4, 300)
    with pytest.raises(InputError) as caught:
        load_options(RFTOptions, config, {"batch_size": 0, "num_generations": 1})
    assert [str(i) for i in caught.value.issues] == [
        "--batch-size: input should be greater than or equal to 1 (got 0)",
        "--num-generations: input should be greater than or equal to 2 (got 1)",
    ]


def test_a_config_error_is_one_line_with_exit_2_through_the_cli(work, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("epochs: 1\nbatch_size: four\n")
    out = tmp_path / "o"
    args = ["train", "sft", "--data", str(work / "data"), "--out", str(out), "--config", str(config)]
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.cli", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    expected = f"error: {config}:2: batch_size: input should be a valid integer (got 'four')"
    assert proc.stderr.strip().splitlines() == [expected]
    assert not out.exists()


def test_bad_data_model_and_trl_args_fail_before_anything_is_written(work, tmp_path):
    out = tmp_path / "o"
    defaults = {"data": str(work / "data"), "out": str(out), "model": str(work / "tiny")}
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    pairs_only = write_dataset(tmp_path / "pairs-only", {"train": 2})
    shutil.rmtree(pairs_only / "data" / "sft")
    no_rows = write_dataset(tmp_path / "no-rows", {"train": 0})
    corrupt = write_dataset(tmp_path / "corrupt", {"train": 2})
    (corrupt / "data" / "sft" / "train.parquet").write_text("not parquet")
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    cases = [
        ({"data": str(tmp_path / "nope")}, "--data: .* does not exist"),
        ({"data": str(tmp_path / "file")}, "--data: .* is a file, not a folder"),
        ({"data": str(tmp_path / "empty")}, "empty: not a built persrm-gen dataset"),
        ({"data": str(pairs_only)}, r"sft/train-\*\.parquet: missing: .*no sft config here"),
        ({"data": str(no_rows)}, "sft/train.parquet: has no rows"),
        ({"data": str(corrupt)}, "sft/train.parquet: not a readable parquet file"),
        ({"model": str(tmp_path / "nope")}, "--model: .*nope does not exist"),
        ({"model": str(no_config)}, "--model: .*no-config is not a model folder"),
        ({"model": str(broken)}, "--model: .*broken cannot be loaded"),
        ({"trl_args": {"warmup_ratioo": 0.1}}, "trl_args: warmup_ratioo is not a SFTConfig field"),
        ({"trl_args": {"max_length": 8}}, "trl_args: max_length is set by persrm-gen"),
        ({"out": str(tmp_path / "file")}, "--out: .* is a file"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            train_sft(SFTOptions(**{**defaults, **kwargs}))
    assert not out.exists()

"""Rows longer than --max-length: the writing samples are trimmed first (equally, at sentence
or word ends), a row is dropped only when it does not fit without them, and a run with
nothing left stops with one line. SFT, RFT and eval, on a tiny offline model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from persrm_gen.cli.app import app
from persrm_gen.errors import UsageError
from persrm_gen.prompts.judge import judge_messages
from persrm_gen.trainers import common, fitting
from persrm_gen.trainers.evaluate import EvalOptions, evaluate, load_items
from persrm_gen.trainers.rft import RFTOptions, train_rft
from trainers_data import trainer_workspace

runner = CliRunner()
SENTENCE_TOKENS = 14  # one synthetic sentence: six words, their spaces and the end mark


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    # Two writing samples of ten sentences each: 570-610 tokens a row with the tiny tokenizer,
    # about 290 without the samples.
    return trainer_workspace(tmp_path_factory.mktemp("fitting"), context_sentences=10,
                             sizes={"train": 8, "test_unseen_authors": 4})  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(work):
    return common.load_model_and_tokenizer(work / "tiny")[1]


def rows(work: Path, config: str, split: str = "train") -> list[dict]:
    return pq.read_table(work / "data" / "data" / config / f"{split}.parquet").to_pylist()


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "persrm_gen.cli", *map(str, args)], capture_output=True, text=True,
                          check=False)


def sft_lengths(tokenizer, fitted: list[dict]) -> list[int]:
    return fitting.chat_lengths(tokenizer, [r["prompt"] + r["completion"] for r in fitted], generation_prompt=False)


def test_rows_that_fit_are_kept_as_stored(work, tokenizer):
    stored = rows(work, "sft")
    fitted, report = fitting.fit_rows(stored, lambda: pytest.fail("pairs loaded for rows that fit"), tokenizer,
                              max_length=4096, completion="completion")  # fmt: skip
    assert fitted == stored and all(a is b for a, b in zip(fitted, stored))
    assert report.as_dict() == {"max_length": 4096, "budget": 4096, "rows": 8, "kept": 8, "trimmed": 0,
                                "dropped": 0, "dropped_no_pairs_row": 0}  # fmt: skip


def test_long_rows_lose_writing_samples_equally_at_sentence_ends_and_nothing_else(work, tokenizer):
    stored, pairs = rows(work, "sft"), rows(work, "pairs")
    fitted, report = fitting.fit_rows(stored, lambda: pairs, tokenizer, max_length=400, completion="completion")
    assert (report.kept, report.trimmed, report.dropped) == (0, 8, 0)
    lengths = sft_lengths(tokenizer, fitted)
    assert max(lengths) <= 400
    # Not cut more than needed: one more sentence per sample would not have fit.
    assert min(lengths) > 400 - 2 * SENTENCE_TOKENS
    for row, pair, new in zip(stored, pairs, fitted, strict=True):
        assert new["completion"] == row["completion"]
        user = new["prompt"][-1]["content"]
        context = [s.split("\n", 1)[1].strip() for s in user.split("# Writing task")[0].split("## Sample ")[1:]]
        assert new["prompt"] == judge_messages(context, pair["query"], pair["response_a"], pair["response_b"])
        assert len(context) == 2
        for short, full in zip(context, pair["context"], strict=True):
            assert full.startswith(short) and len(short) < len(full) and short.endswith(("!", "..."))
        # Equal shares: the two samples differ by less than one sentence.
        sizes = [len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in context]
        assert abs(sizes[0] - sizes[1]) < SENTENCE_TOKENS


def sample(text: str, tokenizer, budget: int = 1000):
    return fitting._samples([text], tokenizer, budget)[0]


def test_a_sample_without_sentence_ends_is_cut_at_a_word_end(tokenizer):
    text = "river stone light wind road field house tree cloud rain " * 8
    cut = sample(text.strip(), tokenizer).prefix(25)
    assert text.startswith(cut) and text[len(cut)] == " " and 0 < len(tokenizer(cut)["input_ids"]) <= 25
    # A sentence end far before the limit would waste the share: a word end wins then.
    text = "RIVER ! " + text
    cut = sample(text.strip(), tokenizer).prefix(60)
    assert len(cut) > len("RIVER !") * 4 and not cut.endswith("!")
    assert sample("STONE ROAD ! " * 10, tokenizer).prefix(30).endswith("!")


def test_a_huge_sample_is_tokenized_only_as_far_as_the_budget_reaches(tokenizer):
    huge = sample("river stone " * 500_000, tokenizer, budget=50)  # 6 MB, no sentence end
    assert not huge.whole and len(huge.ends) < 1000 and huge.tokens > 50
    cut = huge.prefix(40)
    assert cut.endswith(("river", "stone")) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 40


def test_shares_are_equal_and_a_short_sample_passes_on_what_it_does_not_use():
    assert fitting.share_equally([100, 100, 100], 90) == [30, 30, 30]
    assert fitting.share_equally([10, 100, 100], 90) == [10, 40, 40]
    assert fitting.share_equally([10, 20], 500) == [10, 20]
    assert fitting.share_equally([10, 20], -5) == [0, 0]


def test_rows_too_long_without_samples_are_dropped_and_prompts_without_pairs_rows_are_counted(work, tokenizer):
    stored, pairs = rows(work, "sft"), rows(work, "pairs")
    fitted, report = fitting.fit_rows(stored, lambda: pairs, tokenizer, max_length=200, completion="completion")
    assert fitted == [] and (report.dropped, report.dropped_no_pairs_row) == (8, 0)
    with pytest.raises(UsageError, match="pass a larger --max-length"):
        report.require_rows("training row")
    # A prompt that no pairs row renders (a custom judge template): it cannot be trimmed.
    fitted, report = fitting.fit_rows(stored, lambda: pairs[:4], tokenizer, max_length=400, completion="completion")
    assert (report.trimmed, report.dropped, report.dropped_no_pairs_row) == (4, 4, 4)
    assert "another judge template" in report.summary()


def test_sft_trims_writing_samples_to_fit_max_length(work, tmp_path):
    out = tmp_path / "sft"
    result = runner.invoke(app, ["train", "sft", "--data", str(work / "data"), "--model", str(work / "tiny"),
                                 "--out", str(out), "--max-steps", "2", "--max-length", "400"],
                           catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8 rows (8 with shortened writing samples, 0 dropped: --max-length)" in result.output
    info = json.loads((out / "persrm_train.json").read_text())
    assert info["fitting"] == {"max_length": 400, "budget": 400, "rows": 8, "kept": 0, "trimmed": 8, "dropped": 0,
                               "dropped_no_pairs_row": 0}  # fmt: skip
    assert info["train_rows"] == 8 and info["global_step"] == 2
    card = (out / "README.md").read_text()
    assert "- Rows fitted to 400 tokens (`--max-length`): 0 as built, 8 with shortened writing samples, 0 dropped" in card


def test_sft_with_nothing_that_fits_stops_with_one_line_and_writes_nothing(work, tmp_path):
    out = tmp_path / "sft"
    proc = cli("train", "sft", "--data", work / "data", "--model", work / "tiny", "--out", out, "--max-length", 200)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "--max-length 200" in errors[0] and "all 8 were dropped" in errors[0] and "larger --max-length" in errors[0]
    assert not out.exists()


def test_rft_fits_prompts_beside_the_completion(work, tmp_path):
    out = tmp_path / "rft"
    info = train_rft(RFTOptions(data=str(work / "data"), out=str(out), model=str(work / "tiny"), max_steps=1,
                                num_generations=2, max_completion_length=8, max_length=400))  # fmt: skip
    assert info["fitting"] == {"max_length": 400, "budget": 392, "rows": 8, "kept": 0, "trimmed": 8, "dropped": 0,
                               "dropped_no_pairs_row": 0}  # fmt: skip
    with pytest.raises(UsageError, match="must be larger than --max-completion-length"):
        train_rft(RFTOptions(data=str(work / "data"), out=str(tmp_path / "r2"), model=str(work / "tiny"),
                             max_completion_length=512, max_length=512))  # fmt: skip
    proc = cli("train", "rft", "--data", work / "data", "--model", work / "tiny", "--out", tmp_path / "r3",
               "--max-length", 220, "--max-completion-length", 8, "--num-generations", 2)  # fmt: skip
    assert proc.returncode == 2 and "no training prompt fits in --max-length 220" in proc.stderr, proc.stderr
    assert not (tmp_path / "r3").exists() and not (tmp_path / "r2").exists()


def test_eval_judges_both_orders_with_the_same_trimmed_samples(work, tmp_path, tokenizer):
    opts = EvalOptions(data=str(work / "data"), model=str(work / "tiny"), out=str(tmp_path / "report"),
                       max_new_tokens=2, max_length=380, baselines=["stylometric"])  # fmt: skip
    report = evaluate(opts)
    assert report["fitting"] == {"max_length": 380, "budget": 378, "rows": 4, "kept": 0, "trimmed": 4, "dropped": 0,
                                 "dropped_no_pairs_row": 0}  # fmt: skip
    assert report["n_pairs"] == {"test_unseen_authors": 4} and report["judges"]["model"]["n"] == 8
    items = load_items(work / "data", ["test_unseen_authors"])
    items, fit = fitting.fit_pairs(items, tokenizer, max_length=380, budget=378)
    assert fit.trimmed == 4 and len(items) == 8
    for ab, ba in zip(items[::2], items[1::2], strict=True):
        assert ab.pair_id == ba.pair_id and ab.context == ba.context and (ab.order, ba.order) == ("ab", "ba")
    with pytest.raises(UsageError, match="no test pair fits in --max-length 250"):
        evaluate(EvalOptions(**{**opts.__dict__, "max_length": 250, "out": str(tmp_path / "none")}))
    assert not (tmp_path / "none").exists()


def test_the_prompt_budget_leaves_room_for_what_is_generated(tmp_path):
    from persrm_gen.trainers.evaluate import _max_length
    from persrm_gen.trainers.rft import prompt_budget

    assert prompt_budget(RFTOptions(max_length=400, max_completion_length=8)) == 392
    assert prompt_budget(RFTOptions(max_length=400, max_completion_length=8, max_prompt_length=300)) == 300
    # eval defaults to the --max-length the checkpoint was trained with.
    assert _max_length(EvalOptions(data="d"), tmp_path) == 2048
    (tmp_path / "persrm_train.json").write_text(json.dumps({"options": {"max_length": 1024}}))
    assert _max_length(EvalOptions(data="d"), tmp_path) == 1024
    assert _max_length(EvalOptions(data="d", max_length=512), tmp_path) == 512

"""Length-controlled evaluation: accuracy by length ratio, and how often a judge picks the longer response."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from persrm_gen.cli.app import app
from persrm_gen.trainers.length_control import (
    BUCKETS,
    Judged,
    bucket_of,
    length_report,
    pick_longer_reference,
)

runner = CliRunner()


def words(n: int) -> str:
    return " ".join(["word"] * n)


# (chosen words, rejected words): ratios spread over every bucket, the chosen side longer in some.
PAIRS = [(10, 10), (10, 11), (11, 10), (10, 14), (13, 10), (10, 15), (18, 10), (10, 19),
         (20, 10), (10, 25), (30, 10), (3, 0)]  # fmt: skip


def both_orders(pairs, pick) -> list[Judged]:
    """Each (chosen, rejected) pair presented as A/B and as B/A, judged by ``pick(a_words, b_words)``."""
    out = []
    for chosen, rejected in pairs:
        for a, b, label in ((chosen, rejected, "A"), (rejected, chosen, "B")):
            out.append(Judged(words(a), words(b), label, pick(a, b)))
    return out


def longer(a: int, b: int) -> str:
    return "B" if b > a else "A"  # a tie goes to A, so over both orders it is right half the time


def shorter(a: int, b: int) -> str:
    return "A" if a < b else "B"


def test_buckets_cover_every_ratio_with_documented_edges():
    assert [b.label for b in BUCKETS] == ["[1.0, 1.2)", "[1.2, 1.5)", "[1.5, 2.0)", "[2.0, inf)"]
    assert [bucket_of(words(a), words(b)) for a, b in [(10, 10), (10, 11), (5, 6), (6, 5), (9, 12), (2, 3),
                                                          (10, 20), (1, 0), (0, 0)]] == [
        "[1.0, 1.2)", "[1.0, 1.2)", "[1.2, 1.5)", "[1.2, 1.5)", "[1.2, 1.5)", "[1.5, 2.0)",
        "[2.0, inf)", "[2.0, inf)", "[1.0, 1.2)"]  # fmt: skip


def test_a_judge_that_picks_the_longer_scores_exactly_the_share_where_the_chosen_is_longer():
    judged = both_orders(PAIRS, longer)
    report = length_report(judged)
    reference = pick_longer_reference(judged)
    assert report["longer_pick_rate"] == 1.0
    assert set(report["by_ratio"]) == {b.label for b in BUCKETS}
    for label, cell in report["by_ratio"].items():
        assert cell["n"] == reference["by_ratio"][label]["n"]
        assert cell["accuracy"] == reference["by_ratio"][label]["accuracy"], label
        assert cell["longer_pick_rate"] == (1.0 if cell["n"] else None)
    # Hand-counted: [1.0, 1.2) holds a tie (half right), 10/11 (wrong), 11/10 (right): 1.5 of 3 pairs.
    assert report["by_ratio"]["[1.0, 1.2)"] == {"n": 6, "accuracy": 0.5, "longer_pick_rate": 1.0}
    assert report["by_ratio"]["[1.2, 1.5)"]["accuracy"] == 0.5  # 10/14 wrong, 13/10 right
    assert report["by_ratio"]["[1.5, 2.0)"]["accuracy"] == 1 / 3  # 10/15 and 10/19 wrong, 18/10 right
    assert report["by_ratio"]["[2.0, inf)"]["accuracy"] == 0.75  # 10/25 wrong; 20/10, 30/10, 3/0 right
    by_side = report["by_chosen_length"]
    assert by_side["chosen_longer"] == {"n": 12, "accuracy": 1.0}
    assert by_side["chosen_shorter"] == {"n": 10, "accuracy": 0.0}
    assert by_side["same_length"] == {"n": 2, "accuracy": 0.5}
    assert report["accuracy"] == reference["accuracy"] == 13 / 24  # 12 chosen-longer + half of the tie's 2


def test_a_judge_that_picks_the_shorter_is_the_mirror_image():
    report = length_report(both_orders(PAIRS, shorter))
    assert report["longer_pick_rate"] == 0.0
    assert report["by_chosen_length"]["chosen_shorter"]["accuracy"] == 1.0
    assert report["by_chosen_length"]["chosen_longer"]["accuracy"] == 0.0


def test_ties_and_parse_failures():
    # A tie has no longer response: it counts for accuracy, never for the longer-pick rate.
    ties = length_report(both_orders([(5, 5), (7, 7)], lambda a, b: "A"))
    assert ties["longer_pick_rate"] is None and ties["n_unequal"] == 0
    assert ties["by_ratio"]["[2.0, inf)"] == {"n": 0, "accuracy": None, "longer_pick_rate": None}
    # A parse failure is wrong (as in the overall accuracy) and picks no side.
    judged = both_orders([(10, 30)], longer)
    judged[0] = judged[0]._replace(verdict=None)
    report = length_report(judged)
    assert report["by_ratio"]["[2.0, inf)"] == {"n": 2, "accuracy": 0.0, "longer_pick_rate": 1.0}
    assert report["n_unequal"] == 2


def test_eval_reports_length_control_for_every_judge_on_the_tiny_model(tmp_path):
    from trainers_data import trainer_workspace

    work = trainer_workspace(tmp_path, sizes={"train": 2, "test_unseen_authors": 4})
    # Lengthen one side of some pairs so that the ratio buckets and both chosen sides are populated.
    path = work / "data" / "data" / "pairs" / "test_unseen_authors.parquet"
    rows = pq.read_table(path).to_pylist()
    for k, row in enumerate(rows):
        side = ("response_a", "response_b")[k % 2]
        row[side] = " ".join([row[side]] * (k + 1))
    pq.write_table(pa.Table.from_pylist(rows), path)
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", "--model", str(work / "tiny"), "--data", str(work / "data"),
                                 "--out", str(out), "--max-new-tokens", "2"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["length"]["buckets"] == [b.label for b in BUCKETS]
    assert sum(c["n"] for c in report["length"]["by_ratio"].values()) == 8  # 4 pairs, both orders
    for name in ("model", "random", "stylometric"):
        length = report["judges"][name]["length"]
        assert sum(c["n"] for c in length["by_ratio"].values()) == 8, name
        assert set(length["by_chosen_length"]) == {"chosen_shorter", "chosen_longer", "same_length"}
        assert length["longer_pick_rate"] is None or 0.0 <= length["longer_pick_rate"] <= 1.0
    assert "longer-pick" in result.output and "[2.0, inf)" in result.output


@pytest.mark.parametrize("with_report", [True, False])
def test_the_card_shows_length_control_beside_the_accuracy(tmp_path, with_report):
    from persrm_gen.cards.model_card import render_card

    if with_report:
        judged = both_orders(PAIRS, longer)
        report = {"data": "d", "length": pick_longer_reference(judged),
                  "judges": {"model": {"status": "ok", "accuracy": 0.5, "accuracy_forced": 0.5,
                                       "order_consistency": 1.0, "parse_failure_rate": 0.0,
                                       "by_split": {}, "length": length_report(judged)}}}  # fmt: skip
        (tmp_path / "report.json").write_text(json.dumps(report))
    card = render_card(tmp_path)
    if not with_report:
        assert "Length control" not in card
        return
    assert "### Length control" in card and "| pick the longer |" in card
    assert "| n (judgments) | 6 | 4 | 6 | 8 | 10 | 12 |  |" in card
    rows = [line for line in card.splitlines() if line.startswith("| model |")]
    assert len(rows) == 2 and rows[1].endswith("| 1.000 |")  # the length table's last column: longer-pick rate

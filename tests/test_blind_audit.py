"""The context-blind audit catches a planted length shortcut, and the validator removes it."""

import random

import numpy as np
import pytest

from persrm_gen.cards.dataset_card import render_dataset_card
from persrm_gen.dataset.blind_audit import audit, confident_shortcuts, fit, pair_features, wilson_interval
from persrm_gen.dataset.stats import compute_stats
from persrm_gen.dataset.validators import ValidatorConfig, validate_pairs
from tests.test_validators import make_row

SENTENCE = "the parser reads {} tokens before it stops, and then it writes a tree."


def text(rng: random.Random, sentences: int) -> str:
    return " ".join(SENTENCE.format(rng.choice(["many", "few", "odd", "all"])).capitalize() for _ in range(sentences)) + f" Note {rng.random():.6f}."


def planted(seed: int = 3) -> list[dict]:
    """Ten authors, eight in train. ``planted`` pairs: the chosen is always about four times
    longer; ``fair`` pairs: both lengths drawn from one range, so length says nothing."""
    rng = random.Random(seed)
    rows = []
    for a in range(10):
        split = "train" if a < 8 else "test_unseen_authors"
        for j in range(8):
            strategy = "planted" if j % 2 == 0 else "fair"
            if strategy == "planted":
                chosen, rejected = text(rng, rng.randint(7, 9)), text(rng, rng.randint(1, 2))
            else:
                chosen, rejected = text(rng, rng.randint(2, 8)), text(rng, rng.randint(2, 8))
            rows.append(make_row(len(rows), chosen=chosen, rejected=rejected, label="AB"[len(rows) % 2],
                                 strategy=strategy, author_id=f"a{a}", split=split, rejected_source="other-author"))
    return rows


def test_the_audit_catches_a_planted_length_shortcut():
    report = audit(planted())
    planted_row, fair_row = report["by_strategy"]["planted"], report["by_strategy"]["fair"]
    assert planted_row["longer_chosen"] == 1.0
    assert planted_row["accuracy"] == 1.0 and planted_row["cv_accuracy"] >= 0.95
    assert 0.3 <= fair_row["cv_accuracy"] <= 0.7  # no signal there: near chance
    assert report["by_split"]["test_unseen_authors"]["accuracy"] >= 0.7
    assert report["weights"]["log_words"] > 0  # it learned "longer wins"


def test_the_validator_drops_the_shortcut_pairs_and_counts_them():
    rows = planted()
    result = validate_pairs(rows, ValidatorConfig(max_blind_confidence=0.8))
    dropped = {r.pair_id for r in result.rejected if r.reason == "blind_shortcut"}
    assert result.counts()["blind_shortcut"] == len(dropped) > 0
    planted_ids = {r["id"] for r in rows if r["strategy"] == "planted"}
    assert planted_ids <= dropped  # every shortcut pair goes
    kept_fair = [r for r in result.kept if r["strategy"] == "fair"]
    assert len(kept_fair) >= 0.5 * sum(r["strategy"] == "fair" for r in rows)  # the fair ones mostly stay
    after = audit(result.kept)
    assert abs(after["cv_accuracy"] - 0.5) <= 0.15
    assert abs(after["longer_chosen"] - 0.5) <= 0.15
    assert validate_pairs(result.kept, ValidatorConfig(max_blind_confidence=0.8)).rejected == []  # settled


def test_the_validator_is_off_by_default():
    assert validate_pairs(planted()).counts()["blind_shortcut"] == 0


def test_the_judge_ignores_placement_and_is_symmetric():
    rows = planted()
    x = pair_features([r["chosen"] for r in rows], [r["rejected"] for r in rows])
    judge = fit(x)
    np.testing.assert_allclose(judge.confidence(x) + judge.confidence(-x), 1.0)
    swapped = [dict(r, label="B" if r["label"] == "A" else "A", response_a=r["response_b"], response_b=r["response_a"]) for r in rows]
    assert audit(swapped) == audit(rows)


def test_the_interval_narrows_with_the_pairs_and_holds_its_point():
    for p in (0.0, 0.3, 0.5, 0.61, 1.0):
        small, large = wilson_interval(p, 10), wilson_interval(p, 1000)
        assert small[0] <= p <= small[1] and large[0] <= p <= large[1]
        assert large[1] - large[0] < small[1] - small[0]
    lo, hi = wilson_interval(0.61, 18)  # randomize in the quality benchmark: 0.61 on 18 pairs
    assert lo < 0.5 < hi and abs(lo - 0.39) < 0.01 and abs(hi - 0.80) < 0.01


def test_too_few_train_pairs_means_no_audit_and_no_drops():
    rows = [dict(r, split="test_unseen_authors") for r in planted()]
    assert audit(rows) is None
    assert confident_shortcuts(rows, 0.6) == {}


@pytest.mark.parametrize("with_rows", [True, False])
def test_stats_and_card_report_the_audit_beside_the_baseline(with_rows):
    rows = planted() if with_rows else planted()[:3]
    stats = compute_stats(rows, {})
    card = render_dataset_card({"counts": {}}, stats)
    assert "## Shortcuts" in card
    assert card.index("## Shortcuts") < card.index("## Statistics")
    if with_rows:
        assert stats["blind_audit"]["by_strategy"]["planted"]["accuracy"] == 1.0
        assert "| planted | 40 | 1.000 (8) |" in card
        assert "stylometric" in card
        # the planted shortcut's whole interval lies far from chance: cv 1.0 on 40 pairs
        cv = stats["blind_audit"]["by_strategy"]["planted"]["cv_accuracy"]
        lo, hi = wilson_interval(cv, 40)
        assert lo > 0.8 and f"| {lo:.2f}-{hi:.2f} |" in card
    else:
        assert "Not measured" in card


def test_a_build_reports_the_audit_and_counts_blind_drops(tmp_path, monkeypatch):
    import json

    from example_corpus import write_example_slice
    from fakeserver import KEY, FakeServer
    from test_build_api import persona

    from persrm_gen.pipeline.build import run_build
    from persrm_gen.pipeline.options import BuildOptions

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    authors = write_example_slice(tmp_path / "authors.jsonl", first=3, last=2, samples=4)
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        opts = BuildOptions(authors=authors, out=out, backend="openai", model="gpt-4.1-mini", base_url=server.openai_base,
                            context_size=2, test_authors="1", timeout=5, max_blind_confidence=0.9)
        result = run_build(opts, quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["max_blind_confidence"] == 0.9
    assert manifest["rejections"]["blind_shortcut"] == result.rejections["blind_shortcut"] > 0
    audit_after = manifest["shortcuts"]["blind_audit"]  # measured on the pairs kept
    assert sum(v["n"] for v in audit_after["by_strategy"].values()) == sum(result.counts["pairs"].values())
    assert audit_after["by_split"]["test_unseen_authors"]["n"] == result.counts["pairs"]["test_unseen_authors"]
    assert "test_unseen_authors" in manifest["shortcuts"]["stylometric_baseline"]["by_split"]
    card = (out / "README.md").read_text()
    assert "## Shortcuts (read before training)" in card and "| blind_shortcut |" in card
    # `persrm-gen stats` prints each strategy's cv accuracy with its 95 % interval, as the card does
    from persrm_gen.dataset.stats_report import show_stats
    from persrm_gen.progress import console

    with console.capture() as captured:
        show_stats(out)
    name, row = sorted(audit_after["by_strategy"].items())[0]
    lo, hi = wilson_interval(row["cv_accuracy"], row["n"])
    assert "cv 95 %" in captured.get() and f"{lo:.2f}-{hi:.2f}" in captured.get()


def test_the_config_key_reaches_the_validator(tmp_path):
    from persrm_gen.pipeline.options import load_build_options

    config = tmp_path / "build.yaml"
    config.write_text("max_blind_confidence: 0.85\n")
    opts = load_build_options({"authors": tmp_path / "authors.jsonl"}, config)
    assert opts.validator_config().max_blind_confidence == 0.85
    assert load_build_options({"authors": tmp_path / "a.jsonl"}, None).validator_config().max_blind_confidence is None


def test_the_audits_clean_end_is_the_candidates_clean_end():
    # the trim that makes negatives end like the positive, and the feature that checks it, agree
    from persrm_gen.dataset.blind_audit import FEATURES, text_features
    from persrm_gen.generator.form import ends_clean

    endings = ["It stops.", 'He said "go."', "(An aside.)", "Really?!  ", "A list:", "a clause;", "see (below)",
               "a quote'", "It trails…", "no end at all", "The end.\n"]
    audit_says = [text_features("Some words here. " + e)[FEATURES.index("clean_end")] == 1.0 for e in endings]
    assert audit_says == [ends_clean("Some words here. " + e) for e in endings]
    assert audit_says.count(True) == 5


def _mirrored_fit(x: np.ndarray, l2: float = 3.0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The judge as first written: every pair also seen mirrored (-x, label 0), Newton on [x; -x]."""
    from persrm_gen.dataset.blind_audit import _sigmoid

    scale = np.sqrt((x ** 2).mean(axis=0))
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.vstack([x, -x]) / scale
    y = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = _sigmoid(z @ w)
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z + l2 * np.eye(len(w)), z.T @ (p - y) + l2 * w)
        w = w - step
        if np.abs(step).max() < 1e-8:
            break
    return w, scale


@pytest.mark.parametrize("n, d, chunk", [(5, 13, None), (300, 13, None), (300, 13, 7), (2000, 14, 256), (40, 3, 1)])
def test_the_fit_without_the_mirrored_copy_is_the_mirrored_fit(n, d, chunk):
    # the mirrored rows add the same gradient and Hessian terms as the originals: the fit on x
    # alone with doubled data terms is the same judge, in one piece or in row chunks
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.01, 5, size=d) + rng.normal(size=d) * 0.3  # a signal to learn
    x[:, 1] = 0.0  # a constant column (scale 1)
    w_ref, scale_ref = _mirrored_fit(x)
    judge = fit(x) if chunk is None else fit(x, chunk=chunk)
    np.testing.assert_array_equal(judge.scale, scale_ref)
    np.testing.assert_allclose(judge.weights, w_ref, rtol=1e-10, atol=1e-12)
    held_out = rng.normal(size=(50, d))
    np.testing.assert_allclose(judge.confidence(held_out), 1 / (1 + np.exp(-(held_out / scale_ref) @ w_ref)),
                               rtol=1e-10, atol=1e-13)


def test_the_stats_baseline_rates_are_the_means_of_the_per_pair_calls():
    # compute_stats counts right calls instead of keeping a bool per pair: same rates, to the bit
    rows = planted() * 7  # 560 pairs: rates that are not short decimals
    rng = random.Random(5)
    predicted = {r["id"]: rng.choice("AB") for r in rows}
    stats = compute_stats(rows, {}, predicted=predicted)
    hits = [predicted[r["id"]] == r["label"] for r in rows]
    for key, field, stat in (("split", "train", "baseline_accuracy"), ("strategy", "fair", "baseline_by_strategy")):
        mine = [h for h, r in zip(hits, rows) if r[key] == field]
        assert stats[stat][field] == round(float(np.mean(mine)), 4)
    assert stats["baseline_accuracy"]["all"] == round(float(np.mean(hits)), 4)
    assert sorted(stats["baseline_accuracy"]) == ["all", "test_unseen_authors", "train"]

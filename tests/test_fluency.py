"""The fluency cue of the blind audit: one forward pass per text, padding never changes a score."""

from __future__ import annotations

import pytest

from persrm_gen.dataset.blind_audit import audit
from persrm_gen.llm.fluency import FluencyScorer
from persrm_gen.trainers.tiny import build_random_model
from tests.test_blind_audit import planted

TEXTS = ["the quick brown fox jumps over the lazy dog", "a proposal", "readability counts and explicit is better than implicit"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-fluency")
    build_random_model(folder, TEXTS)
    return str(folder)


@pytest.fixture(scope="module")
def scorer(folder):
    return FluencyScorer(folder, batch_size=3)


def test_a_score_is_the_same_alone_or_batched_with_longer_texts(folder, scorer):
    scorer.prime(TEXTS)  # one batch, padded to the longest
    alone = FluencyScorer(folder, batch_size=1)
    for t in TEXTS:
        assert scorer(t)[0] == pytest.approx(alone(t)[0], abs=1e-4)
        assert scorer(t)[0] < 0  # a mean log-probability


def test_the_audit_takes_the_cue_as_one_more_named_feature(scorer):
    report = audit(planted()[:24], scorer)
    assert "fluency" in report["weights"]

"""A huge sample with no sentence punctuation must not go whole into request bodies:
context samples, targets and other-author texts are capped by words after sentences."""

from __future__ import annotations

import json
import random

from persrm_gen.pipeline.dryrun import plan_requests
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.textutil import cap_words, word_count

TEXT = ("One plain sentence opens the sample here. Another plain sentence follows it. "
        "The rest of the sample goes on for a while, long enough to be a target that the build can use, "
        "with more plain words in a third sentence. And a fourth sentence ends it.")


def unpunctuated(n_bytes: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["river", "stone", "light", "wind", "road", "field", "house", "tree", "cloud", "rain"]
    out, size = [], 0
    while size < n_bytes:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def test_cap_words_cuts_text_without_sentence_boundaries():
    text = unpunctuated(200_000)
    capped = cap_words(text, 50)
    assert word_count(capped) == 50 and text.startswith(capped)


def test_cap_words_keeps_whole_sentences_when_it_can():
    text = "First sentence has five words. Second sentence is here too. Third one."
    assert cap_words(text, 5) == "First sentence has five words."
    assert cap_words(text, 10) == "First sentence has five words. Second sentence is here too."
    assert cap_words(text, 100) == text
    assert cap_words("Line one\nkeeps  its   spacing and goes on", 4) == "Line one\nkeeps  its"


def test_request_bodies_stay_bounded_with_a_5_mb_unpunctuated_sample(tmp_path):
    huge = unpunctuated(5_000_000)
    authors = [
        {"author_id": "a", "samples": [{"text": TEXT}] * 3 + [{"text": huge}]},  # huge: a context sample
        {"author_id": "b", "samples": [{"text": TEXT}] * 3 + [{"text": huge, "prompt": "Describe the land."}]},  # a target
        *({"author_id": aid, "samples": [{"text": TEXT}] * 4} for aid in "cdef"),
    ]
    path = tmp_path / "authors.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in authors))
    opts = BuildOptions(authors=path, out=tmp_path / "out", backend="openai", model="gpt-4.1-mini",
                        context_size=3, test_authors="0", test_fraction=0.0)
    requests, _, _ = plan_requests(opts)
    sizes = [len(json.dumps([m.content for m in r.messages])) for r in requests]
    assert len(requests) > 20
    # 3 context samples of <= 220 words, a query, two responses of <= 160 words, the templates
    assert max(sizes) < 30_000, sorted(sizes)[-5:]
    assert not any(huge[:2000] in m.content for r in requests for m in r.messages)
    assert any(huge[:500] in m.content for r in requests for m in r.messages)  # it is used, capped

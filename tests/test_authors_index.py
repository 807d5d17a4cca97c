"""index_authors: the build's authors without their texts in memory, read back by offset."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import pytest

from persrm_gen.authors.reader import AuthorRef, index_authors, load_all, load_authors
from persrm_gen.errors import InputError
from persrm_gen.pipeline.options import BuildOptions
from persrm_gen.pipeline.prepare import prepare

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"


def test_refs_read_back_the_authors_load_authors_gives(tmp_path):
    # a BOM-free file with blank lines, escapes and non-ASCII text: offsets must still land
    path = tmp_path / "a.jsonl"
    lines = [{"author_id": "a", "samples": [{"text": "caf\u00e9 \\u00e9 \"q\"", "genre": "essay"}, {"text": "two"}]},
             {}, {"author_id": "b", "profile": "p", "samples": [{"id": "x", "text": "\u2603 snow", "meta": {"k": 1}}]}]
    path.write_text("\n".join(json.dumps(o, ensure_ascii=i == 0) if o else "" for i, o in enumerate(lines)) + "\n",
                    encoding="utf-8")
    refs = index_authors(path)
    assert all(isinstance(r, AuthorRef) for r in refs)
    assert load_all(refs) == load_authors(path)
    assert [(r.author_id, s.id, s.genre, s.text) for r in refs for s in r.samples] == [
        (a.author_id, s.id, s.genre, s.text) for a in load_authors(path) for s in a.samples]


def test_example_corpus_round_trips():
    assert load_all(index_authors(EXAMPLES)) == load_authors(EXAMPLES)


def test_a_file_changed_during_the_build_stops_it(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"author_id": "a", "samples": [{"text": "one"}, {"text": "two"}]}) + "\n")
    (ref,) = index_authors(path)
    path.write_text(json.dumps({"author_id": "a", "samples": [{"text": "uno"}, {"text": "two"}]}) + "\n")
    with pytest.raises(InputError, match="changed during the build"):
        ref.samples[0].text
    with pytest.raises(InputError, match="changed during the build"):
        ref.load()


def test_prepare_holds_no_sample_text(tmp_path):
    # 200 authors x 10 samples of ~4 KB: 8 MB of text; prepare (splits, corpus index) keeps
    # ids, genres and offsets, under a quarter of it (templates included); texts held in memory would be all of it
    path = tmp_path / "big.jsonl"
    with path.open("w") as fh:
        for a in range(200):
            samples = [{"text": " ".join(f"Author {a} wrote sentence {j} of sample {i} with a few more words in it."
                                          for j in range(60)), "genre": "essay"} for i in range(10)]
            fh.write(json.dumps({"author_id": f"a{a:03d}", "samples": samples}) + "\n")
    size = path.stat().st_size
    gc.collect()
    tracemalloc.start()
    try:
        prepared = prepare(BuildOptions(authors=path, context_size=2), tasks=False)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < size / 4, (held, size)
    # and the corpus still draws real texts
    (task,) = [t for t in prepare(BuildOptions(authors=path, context_size=2, max_targets_per_author=1))[3]][:1]
    assert "wrote sentence" in prepared.corpus.random_style_samples(task, 1)[0]

"""load_authors: valid files load with defaults; every defect is reported as FILE:LINE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persrm_gen.authors.reader import Author, Sample, iter_samples, load_authors
from persrm_gen.errors import InputError

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SECRET = "PRIVATE-SENTENCE-DO-NOT-LEAK"


def line(author_id="a", texts=("one", "two"), **extra) -> bytes:
    obj = {"author_id": author_id, "samples": [{"text": t} for t in texts], **extra}
    return json.dumps(obj).encode()


def write(tmp_path: Path, *lines: bytes, sep: bytes = b"\n") -> Path:
    path = tmp_path / "authors.jsonl"
    path.write_bytes(sep.join(lines) + sep)
    return path


def issues(path: Path, **kwargs) -> list[str]:
    with pytest.raises(InputError) as exc:
        load_authors(path, **kwargs)
    return [str(issue) for issue in exc.value.issues]


def only(path: Path, **kwargs) -> str:
    found = issues(path, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --- valid files --------------------------------------------------------------------


def test_valid_file_loads_with_defaults(tmp_path):
    full = {
        "author_id": "b",
        "name": "Bee",
        "profile": {"tone": "dry"},
        "samples": [{"id": "x1", "text": "hello", "genre": "essay", "prompt": "Write.", "meta": {"k": 1}}],
    }
    path = write(tmp_path, line("a", ("one", "two")), b"", json.dumps(full).encode())
    authors = load_authors(path)
    assert [a.author_id for a in authors] == ["a", "b"]
    a, b = authors
    assert [s.id for s in a.samples] == ["a-0", "a-1"]
    assert {s.genre for s in a.samples} == {"unknown"}
    assert a.name is None and a.profile is None and a.samples[0].prompt is None and a.samples[0].meta == {}
    assert b.name == "Bee" and b.profile == {"tone": "dry"}
    assert (b.samples[0].id, b.samples[0].genre, b.samples[0].prompt) == ("x1", "essay", "Write.")
    assert [(au.author_id, s.id) for au, s in iter_samples(authors)] == [("a", "a-0"), ("a", "a-1"), ("b", "x1")]


def test_unknown_keys_are_ignored_and_profile_may_be_text(tmp_path):
    obj = {"author_id": "a", "future": 1, "profile": "terse", "samples": [{"text": "t", "new_field": [1]}]}
    (author,) = load_authors(write(tmp_path, json.dumps(obj).encode()))
    assert author.profile == "terse" and isinstance(author.samples[0], Sample)


def test_models_default_ids_when_built_directly():
    author = Author.model_validate({"author_id": "z", "samples": [{"text": "a"}, {"text": "b", "id": "own"}]})
    assert [s.id for s in author.samples] == ["z-0", "own"]


@pytest.mark.parametrize("name", ["peps.jsonl", "speeches.jsonl"])
def test_shipped_corpora_load(name):
    path = CORPORA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    authors = load_authors(path, min_samples=4)
    assert len(authors) == {"peps.jsonl": 26, "speeches.jsonl": 10}[name]
    ids = [s.id for _, s in iter_samples(authors)]
    assert len(ids) == len(set(ids))


# --- file level -----------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    assert only(path) == f"{path}: file not found"


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "authors.jsonl"
    path.write_bytes(content)
    assert only(path) == f"{path}: no authors (the file is empty)"


def test_bom(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + line("a"), line("b"))
    assert only(path) == f"{path}:1: file starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM"


def test_crlf_reported_once_at_first_line(tmp_path):
    path = tmp_path / "authors.jsonl"
    path.write_bytes(line("a") + b"\n" + line("b") + b"\r\n" + line("c") + b"\r\n")
    assert only(path) == f"{path}:2: Windows (CRLF) line ending; convert to LF"


def test_non_utf8_gives_line_and_byte_offset(tmp_path):
    first = line("a")
    bad = b'{"author_id": "b", "samples": [{"text": "caf\xe9"}]}'
    path = write(tmp_path, first, bad)
    offset = len(first) + 1 + bad.index(b"\xe9")
    message = only(path)
    assert message.startswith(f"{path}:2: not valid UTF-8: byte 0xe9 at byte offset {offset} ")


def test_invalid_json_says_what_json_said(tmp_path):
    path = write(tmp_path, line("a"), b'{"author_id": "b", "samples": [}')
    message = only(path)
    assert message.startswith(f"{path}:2: invalid JSON: Expecting value (column ")


def test_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path, b'["a", "b"]', b'"text"')
    assert issues(path) == [
        f"{path}:1: expected one JSON object per line, got list",
        f"{path}:2: expected one JSON object per line, got string",
    ]


# --- fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"samples": [{"text": "t"}]}, "author_id is missing"),
        ({"author_id": "  ", "samples": [{"text": "t"}]}, "author_id is empty"),
        ({"author_id": 7, "samples": [{"text": "t"}]}, "author_id must be a string, got int"),
        ({"author_id": "a"}, "samples is missing"),
        ({"author_id": "a", "samples": []}, "samples is empty; give at least one sample"),
        ({"author_id": "a", "samples": {"text": "t"}}, "samples must be a list, got object"),
        ({"author_id": "a", "samples": ["just text"]}, "samples[0] must be an object, got string"),
        ({"author_id": "a", "samples": [{"text": "t"}, {}, {"text": "t"}, {"genre": "x"}]}, "samples[1].text is missing"),
        ({"author_id": "a", "samples": [{"text": " \n "}]}, "samples[0].text is empty"),
        ({"author_id": "a", "samples": [{"text": 5}]}, "samples[0].text must be a string, got int"),
        ({"author_id": "a", "samples": [{"text": "t", "genre": 3}]}, "samples[0].genre must be a string, got int"),
        ({"author_id": "a", "samples": [{"text": "t", "genre": None}]}, "samples[0].genre must be a string, got null"),
        ({"author_id": "a", "samples": [{"text": "t", "id": 12}]}, "samples[0].id must be a string, got int"),
        ({"author_id": "a", "samples": [{"text": "t", "prompt": True}]}, "samples[0].prompt must be a string, got bool"),
        ({"author_id": "a", "samples": [{"text": "t", "meta": "x"}]}, "samples[0].meta must be an object, got string"),
        ({"author_id": "a", "name": 1.5, "samples": [{"text": "t"}]}, "name must be a string, got float"),
        ({"author_id": "a", "profile": [1], "samples": [{"text": "t"}]}, "profile must be an object, a string or null, got list"),
    ],
)
def test_field_defects(tmp_path, obj, message):
    path = write(tmp_path, line("ok"), json.dumps(obj).encode())
    found = issues(path)
    assert f"{path}:2: {message}" in found
    if "[1].text is missing" in message:  # every missing text is named, not only the first
        assert f"{path}:2: samples[3].text is missing" in found


def test_duplicate_author_points_at_second_line_and_mentions_first(tmp_path):
    path = write(tmp_path, line("a"), line("b", ("x",)), line("a", ("y",)))
    assert only(path) == f"{path}:3: duplicate author_id 'a' (first on line 1)"


def test_duplicate_sample_id_within_author(tmp_path):
    obj = {"author_id": "a", "samples": [{"text": "t", "id": "s"}, {"text": "u", "id": "s"}]}
    path = write(tmp_path, json.dumps(obj).encode())
    assert only(path) == f"{path}:1: duplicate sample id 's' at samples[1] (first at samples[0])"


def test_duplicate_sample_id_within_author_including_defaults(tmp_path):
    # samples[1]'s default id "a-1" collides with samples[0]'s explicit one.
    obj = {"author_id": "a", "samples": [{"text": "t", "id": "a-1"}, {"text": "u"}]}
    path = write(tmp_path, json.dumps(obj).encode())
    assert only(path) == f"{path}:1: duplicate sample id 'a-1' at samples[1] (first at samples[0])"


def test_sample_ids_are_unique_per_author_only(tmp_path):
    # Corpora number samples per author: a row is identified by (author_id, id).
    numbered = [{"author_id": aid, "samples": [{"text": f"{aid} {i}", "id": str(i)} for i in (1, 2, 3)]} for aid in "ab"]
    other = {"author_id": "c", "samples": [{"text": "t", "id": "a-1"}]}  # a's default-style id, another author
    path = write(tmp_path, *(json.dumps(o).encode() for o in numbered), json.dumps(other).encode())
    authors = load_authors(path)
    assert [(au.author_id, s.id) for au, s in iter_samples(authors)] == [
        ("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("b", "2"), ("b", "3"), ("c", "a-1")]


def test_min_samples_with_reason(tmp_path):
    path = write(tmp_path, line("x", ("1", "2")), line("y", ("1", "2", "3", "4")))
    reason = "1 target + 3 context, see --context-size"
    assert only(path, min_samples=4, min_samples_reason=reason) == (
        f"{path}:1: author 'x' has 2 samples; needs at least 4 (1 target + 3 context, see --context-size)"
    )
    assert only(path, min_samples=3) == f"{path}:1: author 'x' has 2 samples; needs at least 3"
    assert len(load_authors(path, min_samples=2)) == 2


def test_all_defects_reported_together_in_line_order(tmp_path):
    path = write(
        tmp_path,
        b"\xef\xbb\xbf" + line("a"),
        b"{oops",
        b"",
        json.dumps({"author_id": "b", "samples": [{"text": 1}, {"genre": "g"}]}).encode(),
        line("a", ("z",)),
        b'{"author_id": "c", "samples": [{"text": "\xff"}]}',
        line("d", ("only",)),
    )
    found = issues(path, min_samples=2)
    prefixes = [m.split(": ", 1)[0] for m in found]
    assert prefixes == [f"{path}:{n}" for n in (1, 2, 4, 4, 5, 5, 6, 7)]
    joined = "\n".join(found)
    for gist in ("byte-order mark", "invalid JSON", "samples[0].text must be a string", "samples[1].text is missing",
                 "duplicate author_id 'a' (first on line 1)", "author 'a' has 1 sample;", "not valid UTF-8",
                 "author 'd' has 1 sample; needs at least 2"):
        assert gist in joined


def test_messages_never_quote_sample_text(tmp_path):
    samples = [{"text": SECRET, "genre": 1}, {"text": SECRET, "meta": SECRET}, {"text": SECRET, "id": 5}]
    path = write(
        tmp_path,
        json.dumps({"author_id": "a", "profile": 3, "samples": samples}).encode(),
        b'{"author_id": "b", "samples": [{"text": "' + SECRET.encode() + b'"',  # truncated JSON
        b'["' + SECRET.encode() + b'"]',
    )
    found = issues(path, min_samples=9)
    assert len(found) >= 5
    assert not any(SECRET[:8] in m for m in found)


def test_issue_flood_is_capped(tmp_path):
    path = write(tmp_path, *[b"[]"] * 150)
    found = issues(path)
    assert len(found) == 101
    assert found[-1] == f"{path}: 50 more problems not shown"

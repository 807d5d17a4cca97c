"""import_authors: three layouts in, contract authors.jsonl out, errors as FILE:LINE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persrm_gen.authors.reader import load_authors
from persrm_gen.errors import InputError
from persrm_gen.authors.importers import ImportResult, import_authors, slugify

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def messages(src: Path, out: Path, **kwargs) -> list[str]:
    with pytest.raises(InputError) as exc:
        import_authors(src, out, **kwargs)
    assert not out.exists(), "nothing may be written when the input has errors"
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temp file left behind"
    return [str(issue) for issue in exc.value.issues]


def c50_tree(root: Path) -> Path:
    """A tiny Reuters-C50-like tree: C50train/<Author>/<id>newsML.txt."""
    train = root / "C50train"
    files = {
        "AaronPressman/106247newsML.txt": "Regulators said on Tuesday.\r\nSecond line.",
        "AaronPressman/102552newsML.txt": "\ufeffAnother story.",
        "Alan Crosby/1.txt": "Prague shares rose.",
        "Alan Crosby/2.txt": "   ",  # empty after strip: skipped, counted
        "Alan Crosby/notes.md": "not a sample",
    }
    for rel, text in files.items():
        (train / rel).parent.mkdir(parents=True, exist_ok=True)
        (train / rel).write_text(text, encoding="utf-8", newline="")
    return train


# --- folder layout ---------------------------------------------------------------------


def test_folder_layout(tmp_path):
    out = tmp_path / "out" / "authors.jsonl"
    result = import_authors(c50_tree(tmp_path), out, genre="news")
    assert result == ImportResult(n_authors=2, n_samples=3, n_skipped=1, skipped_authors=[])
    authors = load_authors(out)
    assert [(a.author_id, a.name) for a in authors] == [("aaronpressman", "AaronPressman"), ("alan-crosby", "Alan Crosby")]
    first = authors[0].samples
    # Files sorted by name; ids from the stem; BOM dropped and CRLF normalised.
    assert [s.id for s in first] == ["aaronpressman-102552newsML", "aaronpressman-106247newsML"]
    assert [s.text for s in first] == ["Another story.", "Regulators said on Tuesday.\nSecond line."]
    assert {s.genre for a in authors for s in a.samples} == {"news"}
    assert first[0].meta == {"file": "AaronPressman/102552newsML.txt"}


def test_folder_layout_is_deterministic_and_genre_defaults(tmp_path):
    src = c50_tree(tmp_path)
    import_authors(src, tmp_path / "a.jsonl")
    import_authors(src, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert {s.genre for a in load_authors(tmp_path / "a.jsonl") for s in a.samples} == {"unknown"}


def test_folder_non_utf8_file_is_named(tmp_path):
    src = c50_tree(tmp_path)
    bad = src / "Alan Crosby" / "3.txt"
    bad.write_bytes(b"line one\nPra\xe9gue\n")
    found = messages(src, tmp_path / "authors.jsonl")
    assert found == [f"{bad}:2: not valid UTF-8 (byte offset 12); convert the file to UTF-8"]


def test_folder_one_level_too_high(tmp_path):
    c50_tree(tmp_path)
    found = messages(tmp_path, tmp_path / "x" / "authors.jsonl")
    assert found == [
        f"{tmp_path}: folder 'C50train' has no .txt files; point at the folder that holds one folder per author"
    ]


def test_min_chars_skips_short_samples_and_drops_empty_authors(tmp_path):
    out = tmp_path / "authors.jsonl"
    result = import_authors(c50_tree(tmp_path), out, min_chars=20)
    assert result == ImportResult(n_authors=1, n_samples=1, n_skipped=3, skipped_authors=["alan-crosby"])
    assert [a.author_id for a in load_authors(out)] == ["aaronpressman"]


def test_slugify():
    assert slugify("Aaron Pressman") == "aaron-pressman"
    assert slugify("  J.R.R. Tolkien!! ") == "j-r-r-tolkien"
    assert slugify("KevinDrawbaugh") == "kevindrawbaugh"


# --- CSV -------------------------------------------------------------------------------


def test_csv_layout(tmp_path):
    src = tmp_path / "corpus.csv"
    src.write_text(
        "author,text,genre,prompt,id\n"
        'Jane Doe,"First essay,\nwith a newline",essay,,\n'
        "John Roe,Hello there,,Say hi,jr-1\n"
        "Jane Doe,Second essay,,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "authors.jsonl"
    assert import_authors(src, out, genre="blog") == ImportResult(2, 3)
    jane, john = load_authors(out)
    assert (jane.author_id, jane.name) == ("jane-doe", "Jane Doe")
    assert [(s.id, s.genre, s.prompt) for s in jane.samples] == [("jane-doe-0", "essay", None), ("jane-doe-1", "blog", None)]
    assert jane.samples[0].text == "First essay,\nwith a newline"
    assert [(s.id, s.prompt) for s in john.samples] == [("jr-1", "Say hi")]


def test_csv_author_id_column_and_bom(tmp_path):
    src = tmp_path / "c.csv"
    src.write_bytes("\ufeffauthor_id,author,text\r\nx7,Ex Seven,hi\r\n".encode())
    out = tmp_path / "authors.jsonl"
    import_authors(src, out)
    (author,) = load_authors(out)
    assert (author.author_id, author.name, author.samples[0].text) == ("x7", "Ex Seven", "hi")


def test_csv_errors_name_file_and_line(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text(
        "author,text\n"  # 1
        'Ann,"a quoted\nmulti-line text"\n'  # 2-3
        ",orphan text\n"  # 4
        "Ann,too,many\n"  # 5
        "Ann B,ok\n"  # 6
        "Ann-B,clash\n",  # 7
        encoding="utf-8",
    )
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{src}:4: author is missing (give author or author_id)",
        f"{src}:5: row has 3 fields; the header has 2",
        f"{src}:7: authors 'Ann B' on line 6 and 'Ann-B' both become author_id 'ann-b'",
    ]


def test_csv_header_without_text_column(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("writer,body\nAnn,hello\n", encoding="utf-8")
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{src}:1: header lacks column author (or author_id) and text; found: writer, body"
    ]


def test_csv_not_utf8(tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes("author,text\nAnn,ok\nZoë,café\n".encode("latin-1"))
    assert messages(src, tmp_path / "authors.jsonl") == [f"{src}:3: not valid UTF-8; export the CSV as UTF-8"]


# --- flat JSONL ------------------------------------------------------------------------


def test_flat_jsonl_groups_in_first_seen_order(tmp_path):
    rows = [
        {"author": "Zed", "text": "z one"},
        {"author_id": "amy", "name": "Amy", "text": "a one", "genre": "poem", "meta": {"src": "x"}},
        {"author": "Zed", "text": "z two", "id": "z-special", "prompt": "Go"},
    ]
    src = tmp_path / "flat.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    out = tmp_path / "authors.jsonl"
    assert import_authors(src, out, genre="misc") == ImportResult(2, 3)
    zed, amy = load_authors(out)
    assert [s.id for s in zed.samples] == ["zed-0", "z-special"]
    assert zed.samples[1].prompt == "Go" and zed.samples[0].genre == "misc"
    assert (amy.author_id, amy.name, amy.samples[0].genre) == ("amy", "Amy", "poem")
    assert amy.samples[0].meta["src"] == "x"


def test_flat_jsonl_errors_with_lines(tmp_path):
    src = tmp_path / "flat.jsonl"
    src.write_bytes(
        b'{"author": "A", "text": "fine"}\n'  # 1
        b'{"author": "A", "text": 3}\n'  # 2
        b"\n"  # 3
        b'{"author": "A", "text": "dup", "id": "a-0"}\n'  # 4
        b'{"text": "nobody"}\n'  # 5
        b"{nope\n"  # 6
        b'{"author_id": "c", "samples": [{"text": "t"}]}\n'  # 7
        b'{"author": "D", "text": "\xff"}\n'  # 8
    )
    found = messages(src, tmp_path / "authors.jsonl")
    assert [m.split(": ", 1)[0] for m in found] == [f"{src}:{n}" for n in (2, 4, 5, 6, 7, 8)]
    assert found[0].endswith("text must be a string, got int")
    assert found[1].endswith("duplicate sample id 'a-0' of author 'a' (first on line 1)")
    assert found[2].endswith("author is missing (give author or author_id)")
    assert "invalid JSON" in found[3]
    assert "looks like authors.jsonl already" in found[4]
    assert "not valid UTF-8" in found[5]


def test_sample_ids_numbered_per_author_import(tmp_path):
    src = tmp_path / "flat.csv"
    src.write_text("author,id,text\nAmy,1,amy one\nAmy,2,amy two\nZed,1,zed one\nZed,2,zed two\n", encoding="utf-8")
    out = tmp_path / "authors.jsonl"
    assert import_authors(src, out) == ImportResult(2, 4)
    assert [(a.author_id, s.id, s.text) for a in load_authors(out) for s in a.samples] == [
        ("amy", "1", "amy one"), ("amy", "2", "amy two"), ("zed", "1", "zed one"), ("zed", "2", "zed two")]


@pytest.mark.parametrize("field", ["author_id", "id", "genre"])
def test_control_characters_in_ids_are_reported(tmp_path, field):
    src = tmp_path / "flat.jsonl"
    row = {"author_id": "amy", "text": "fine", field: "x\x1b[2Jy"}
    src.write_text(json.dumps({"author_id": "amy", "text": "ok"}) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{src}:2: {field} contains a control character (U+001B); use printable text"]


def test_folder_file_name_with_control_character(tmp_path):
    src = c50_tree(tmp_path)
    bad = src / "Alan Crosby" / "x\x1by.txt"
    bad.write_text("Some text.", encoding="utf-8")
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{bad}: file name has a control character (U+001B); rename the file"]


def test_lone_surrogate_in_flat_jsonl(tmp_path):
    src = tmp_path / "flat.jsonl"
    src.write_text('{"author": "A", "text": "ok"}\n{"author": "A", "text": "bad \\udc00 text"}\n', encoding="utf-8")
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{src}:2: text contains a lone surrogate (a \\ud800-\\udfff escape without its pair)"]


# --- kinds, paths, atomic write --------------------------------------------------------


def test_unknown_input_kind(tmp_path):
    src = tmp_path / "corpus.xlsx"
    src.write_bytes(b"PK")
    assert messages(src, tmp_path / "authors.jsonl") == [
        f"{src}: unknown input kind: expected a folder, a .csv or a .jsonl file"
    ]


def test_missing_source(tmp_path):
    src = tmp_path / "nope"
    assert messages(src, tmp_path / "authors.jsonl") == [f"{src}: file not found"]


def test_failed_import_keeps_existing_output(tmp_path):
    out = tmp_path / "authors.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    src = tmp_path / "bad.csv"
    src.write_text("author,text\n,x\n", encoding="utf-8")
    with pytest.raises(InputError):
        import_authors(src, out)
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["authors.jsonl", "bad.csv"]


def test_all_texts_too_short_is_an_error(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("author,text\nAnn,\nBob,  \n", encoding="utf-8")
    assert messages(src, tmp_path / "authors.jsonl") == [f"{src}: no samples with at least 1 characters of text"]


def test_round_trip_peps(tmp_path):
    """peps.jsonl -> flat JSONL -> import -> the same authors, samples and ids."""
    peps = CORPORA / "peps.jsonl"
    if not peps.exists():
        pytest.skip(f"{peps} not present")
    original = load_authors(peps)
    assert len(original) == 26
    flat = tmp_path / "flat.jsonl"
    with flat.open("w", encoding="utf-8") as f:
        for author in original:
            for s in author.samples:
                row = {"author_id": author.author_id, "name": author.name, "id": s.id, "text": s.text, "genre": s.genre}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    out = tmp_path / "authors.jsonl"
    result = import_authors(flat, out)
    again = load_authors(out)
    assert result.n_authors == 26 and result.n_samples == sum(len(a.samples) for a in original)

    def view(authors):
        return [(a.author_id, a.name, [(s.id, s.text, s.genre) for s in a.samples]) for a in authors]

    assert view(again) == view(original)

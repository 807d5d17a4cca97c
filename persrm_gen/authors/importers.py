"""Convert common corpus layouts into authors.jsonl (``persrm-gen authors import``).

Three inputs, picked by what ``src`` is:

* a folder with one subfolder of ``.txt`` files per author (Reuters C50 layout);
* a ``.csv`` with a header naming ``author`` (or ``author_id``) and ``text``, and
  optionally ``genre``, ``prompt``, ``id``, ``name``;
* a flat ``.jsonl``/``.json`` file with one sample object per line, same keys.

Everything is read and checked first; the output is written atomically, and only when
there were no errors, so a failed import never leaves a half-written file behind.
Samples whose text is shorter than ``min_chars`` (after stripping) are skipped and
counted, not treated as errors: corpora scraped from the web carry empty files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from persrm_gen.authors.reader import (
    IssueCollector,
    describe_errors,
    load_authors,
    parse_object,
    split_lines,
    unprintable_char,
)
from persrm_gen.errors import InputError, InputIssue
from persrm_gen.fileio import write_text_atomic
from persrm_gen.userfiles import read_bytes

# Raise the csv module's 128 KiB field limit: one sample (a long essay) can exceed it.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass
class ImportResult:
    n_authors: int
    n_samples: int
    n_skipped: int = 0  # samples shorter than min_chars
    skipped_authors: list[str] = field(default_factory=list)  # authors left without samples


def slugify(name: str) -> str:
    """'Aaron Pressman' -> 'aaron-pressman' (lowercase, runs of non-alphanumerics -> '-')."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class _Row:
    """One sample as read from any layout, with where it came from (for messages)."""

    line: int | None
    author_id: str
    name: str | None
    text: str
    genre: str | None = None
    prompt: str | None = None
    id: str | None = None
    meta: dict = field(default_factory=dict)


def import_authors(
    src: str | Path, out: str | Path, *, genre: str | None = None, min_chars: int = 1
) -> ImportResult:
    """Read ``src`` (folder, CSV or flat JSONL) and write ``out`` as authors.jsonl."""
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    if src.is_dir():
        rows, issues = _read_folder(src)
    elif src.suffix.lower() == ".csv":
        rows, issues = _read_csv(src)
    elif src.suffix.lower() in (".jsonl", ".json"):
        rows, issues = _read_jsonl(src)
    else:
        raise InputError(
            InputIssue(str(src), None, "unknown input kind: expected a folder, a .csv or a .jsonl file")
        )
    authors, result = _group(rows, genre, min_chars, issues)
    if not authors and not issues.issues:
        issues.add(None, f"no samples with at least {min_chars} characters of text")
    issues.raise_if_any()
    _write_atomic(out, authors)
    return result


def _check_paths(src: Path, out: Path) -> None:
    if not src.exists():
        raise InputError(InputIssue(str(src), None, "file not found"))
    if out.exists() and out.is_dir():
        raise InputError(InputIssue(str(out), None, "output is a folder; give a file name such as authors.jsonl"))
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise InputError(InputIssue(str(out), None, "output would overwrite the input; choose another --out"))


# --- folder of folders -------------------------------------------------------------


def _read_folder(src: Path) -> tuple[list[_Row], IssueCollector]:
    issues = IssueCollector(str(src))
    rows: list[_Row] = []
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        issues.add(None, "no author subfolders; expected one folder of .txt files per author")
    for folder in folders:
        author_id = slugify(folder.name)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
        if not author_id:
            issues.add(None, f"folder '{folder.name}' gives an empty author id; rename it")
            continue
        if not files:
            issues.add(
                None, f"folder '{folder.name}' has no .txt files; point at the folder that holds one folder per author"
            )
            continue
        for file in files:
            if (code := unprintable_char(file.stem)) is not None:
                issues.add(None, f"file name has a control character ({code}); rename the file", path=str(file))
                continue
            text = _read_text_file(file, issues)
            if text is not None:
                rel = file.relative_to(src).as_posix()
                rows.append(_Row(None, author_id, folder.name, text, id=f"{author_id}-{file.stem}", meta={"file": rel}))
    return rows, issues


def _read_text_file(file: Path, issues: IssueCollector) -> str | None:
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a BOM in a source file is harmless: drop it
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issues.add(line, f"not valid UTF-8 (byte offset {exc.start}); convert the file to UTF-8", path=str(file))
        return None
    return text.replace("\r\n", "\n")


# --- CSV ---------------------------------------------------------------------------


def _read_csv(src: Path) -> tuple[list[_Row], IssueCollector]:
    issues = IssueCollector(str(src))
    data = read_bytes(src)
    try:
        text = data.decode("utf-8-sig")  # spreadsheet programs write a BOM; accept it
    except UnicodeDecodeError as exc:
        issues.add(data[: exc.start].count(b"\n") + 1, "not valid UTF-8; export the CSV as UTF-8")
        return [], issues
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[_Row] = []
    header: list[str] | None = None
    start = 1  # physical line where the current record starts (multi-line fields count once)
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if header is None:
                header = [h.strip().lower() for h in record]
                if not _check_header(header, line, issues):
                    return [], issues
                continue
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                issues.add(line, f"row has {len(record)} fields; the header has {len(header)}")
                continue
            row = _row_from_mapping(dict(zip(header, record)), line, issues, empty_is_none=True)
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        issues.add(reader.line_num, f"malformed CSV: {exc}")
    if header is None:
        issues.add(None, "no header row; the first row must name the columns (author, text, ...)")
    return rows, issues


def _check_header(header: list[str], line: int, issues: IssueCollector) -> bool:
    missing = []
    if "author" not in header and "author_id" not in header:
        missing.append("author (or author_id)")
    if "text" not in header:
        missing.append("text")
    if missing:
        issues.add(line, f"header lacks column {' and '.join(missing)}; found: {', '.join(header) or 'nothing'}")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        issues.add(line, f"header repeats column {', '.join(dupes)}")
    return not missing and not dupes


# --- flat JSONL --------------------------------------------------------------------


class _FlatSample(BaseModel):
    """One line of a flat JSONL (also the shape a CSV row is checked against)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    author: str | None = None
    author_id: str | None = None
    name: str | None = None
    text: str
    genre: str | None = None
    prompt: str | None = None
    id: str | None = None
    meta: dict = {}

    @field_validator("author", "author_id", "id")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("author", "author_id", "id", "genre")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (code := unprintable_char(value)) is not None:
            raise PydanticCustomError("control_char", "contains a control character ({code}); use printable text",
                                      {"code": code})
        return value


def _read_jsonl(src: Path) -> tuple[list[_Row], IssueCollector]:
    issues = IssueCollector(str(src))
    rows: list[_Row] = []
    # A converter should be forgiving about BOM and CRLF; only undecodable bytes are errors.
    for line, text in split_lines(read_bytes(src), issues, strict_format=False):
        obj = parse_object(text, line, issues)
        if obj is None:
            continue
        if "samples" in obj and "text" not in obj:
            issues.add(line, "this looks like authors.jsonl already (it has 'samples'); pass it to --authors as is")
            continue
        row = _row_from_mapping(obj, line, issues, empty_is_none=False)
        if row is not None:
            rows.append(row)
    return rows, issues


def _row_from_mapping(values: dict[str, Any], line: int, issues: IssueCollector, *, empty_is_none: bool) -> _Row | None:
    """Check one CSV row or JSONL object; author_id wins as id, author becomes the name."""
    if empty_is_none:  # an empty CSV cell means "not given"
        values = {k: v for k, v in values.items() if v != ""}
        values.setdefault("text", "")  # the column exists (header checked): empty text is short, not missing
    try:
        sample = _FlatSample.model_validate(values)
    except ValidationError as exc:
        for message in describe_errors(exc):
            issues.add(line, message)
        return None
    if sample.author_id is None and sample.author is None:
        issues.add(line, "author is missing (give author or author_id)")
        return None
    author_id = sample.author_id or slugify(sample.author or "")
    if not author_id:
        issues.add(line, f"author '{sample.author}' gives an empty author id; use letters or digits")
        return None
    name = sample.name or sample.author
    meta = {**sample.meta, "line": line}
    return _Row(line, author_id, name, sample.text, sample.genre, sample.prompt, sample.id, meta)


# --- grouping and writing ----------------------------------------------------------


def _group(
    rows: list[_Row], genre: str | None, min_chars: int, issues: IssueCollector
) -> tuple[list[dict], ImportResult]:
    """Samples per author in first-seen order, ids defaulted and checked for uniqueness
    within their author (a sample is identified by ``(author_id, id)``)."""
    authors: dict[str, dict] = {}
    names: dict[str, tuple[str | None, int | None]] = {}
    seen_ids: dict[tuple[str, str], int | None] = {}
    skipped = 0
    for row in rows:
        if len(row.text.strip()) < min_chars:
            skipped += 1
            continue
        if not _same_author(row, names, issues):
            continue
        author = authors.setdefault(
            row.author_id, {"author_id": row.author_id, "name": row.name, "samples": [], "profile": None}
        )
        sample_id = row.id or f"{row.author_id}-{len(author['samples'])}"
        key = (row.author_id, sample_id)
        if key in seen_ids:
            first = seen_ids[key]
            issues.add(row.line, f"duplicate sample id '{sample_id}' of author '{row.author_id}'"
                       + (f" (first on line {first})" if first else ""))
            continue
        seen_ids[key] = row.line
        sample_genre = row.genre or genre or "unknown"  # the row's own genre wins over --genre
        author["samples"].append(
            {"id": sample_id, "text": row.text, "genre": sample_genre, "prompt": row.prompt, "meta": row.meta}
        )
    kept = [a for a in authors.values() if a["samples"]]
    dropped = sorted({r.author_id for r in rows} - set(authors))
    result = ImportResult(len(kept), sum(len(a["samples"]) for a in kept), skipped, dropped)
    return kept, result


def _same_author(row: _Row, names: dict[str, tuple[str | None, int | None]], issues: IssueCollector) -> bool:
    """Two different author names must not collapse into one id."""
    first = names.setdefault(row.author_id, (row.name, row.line))
    if row.name is None or first[0] is None or first[0] == row.name:
        return True
    where = f" on line {first[1]}" if first[1] else ""
    issues.add(row.line, f"authors '{first[0]}'{where} and '{row.name}' both become author_id '{row.author_id}'")
    return False


def _write_atomic(out: Path, authors: list[dict]) -> None:
    """Replace ``out`` in one step: readers never see half a file. The output must meet the
    contract (checked on the temp file, before it replaces anything); failing is our bug."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(author, ensure_ascii=False) + "\n" for author in authors)
    write_text_atomic(out, text, verify=load_authors)

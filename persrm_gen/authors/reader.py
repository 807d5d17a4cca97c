"""authors.jsonl: the typed models and a loader that reports every defect at once.

The file format is a contract (see ../shared/design.md). The loader reads bytes, not
text, so that encoding problems (BOM, CRLF, non-UTF-8) get a line number and a fix
instead of a stack trace. Messages never quote sample text: it is personal data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from persrm_gen.errors import InputError, InputIssue
from persrm_gen.userfiles import read_bytes

BOM = b"\xef\xbb\xbf"
# A broken file (say Latin-1 throughout) could yield one issue per line; past this
# many the user learns nothing new, so the rest is summarised in one line.
MAX_ISSUES = 100

# Strict: a number where a string belongs is an error, not silently coerced.
# Unknown keys are ignored so newer files still load in older versions.
_STRICT = ConfigDict(strict=True, extra="ignore")


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise PydanticCustomError("empty", "is empty")
    return value


# Control, format (bidi overrides, zero-width) and line-separator characters: an id or a
# genre with one would reach parquet, the card and the terminal (an escape sequence can
# repaint it), so labels must be printable.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def unprintable_char(value: str) -> str | None:
    """``U+XXXX`` of the first unprintable character in ``value``, or None."""
    for ch in value:
        if unicodedata.category(ch) in _UNPRINTABLE:
            return f"U+{ord(ch):04X}"
    return None


def _printable_label(value: str | None) -> str | None:
    value = _not_blank(value)
    if value is not None and (code := unprintable_char(value)) is not None:
        raise PydanticCustomError("control_char", "contains a control character ({code}); use printable text",
                                  {"code": code})
    return value


def surrogate_fields(value: Any, loc: tuple[int | str, ...] = ()) -> Iterator[str]:
    """Paths of strings (keys included) holding a lone surrogate, which JSON's ``\\ud800``
    escape can produce but no UTF-8 file, parquet column or terminal can hold."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            yield field_path(loc) or "value"
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                yield f"{field_path(loc) or 'object'} key"
            yield from surrogate_fields(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from surrogate_fields(item, (*loc, index))


class Sample(BaseModel):
    model_config = _STRICT

    id: str | None = None  # filled in by Author as "<author_id>-<index>"
    text: str
    genre: str = "unknown"
    prompt: str | None = None
    meta: dict = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        return _not_blank(value)

    @field_validator("id", "genre")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return _printable_label(value)


class Author(BaseModel):
    model_config = _STRICT

    author_id: str
    name: str | None = None
    samples: list[Sample] = Field(min_length=1)
    profile: dict | str | None = None

    @field_validator("author_id")
    @classmethod
    def _author_id_printable(cls, value: str) -> str | None:
        return _printable_label(value)

    @field_validator("profile", mode="before")
    @classmethod
    def _profile_type(cls, value: Any) -> Any:
        # Checked up front so a wrong type gives one message, not one per union member.
        if value is not None and not isinstance(value, (dict, str)):
            raise PydanticCustomError(
                "profile_type", "must be an object, a string or null, got {got}", {"got": json_type(value)}
            )
        return value

    @model_validator(mode="after")
    def _default_sample_ids(self) -> Author:
        for index, sample in enumerate(self.samples):
            if sample.id is None:
                sample.id = f"{self.author_id}-{index}"
        return self


def iter_samples(authors: Iterable[Author]) -> Iterator[tuple[Author, Sample]]:
    """Every (author, sample) pair in file order."""
    for author in authors:
        for sample in author.samples:
            yield author, sample


def json_type(value: Any) -> str:
    """The JSON-ish name of a value's type, for messages (never the value itself)."""
    names = {type(None): "null", bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def field_path(loc: tuple[int | str, ...]) -> str:
    """('samples', 3, 'text') -> 'samples[3].text'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_EXPECTED = {
    "string_type": "a string",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
}


def describe_error(err: dict[str, Any]) -> str:
    """One pydantic error as a one-line message that names the field, not its value."""
    where = field_path(err["loc"]) or "value"
    kind = err["type"]
    if kind == "missing":
        return f"{where} is missing"
    if kind in _EXPECTED:
        return f"{where} must be {_EXPECTED[kind]}, got {json_type(err.get('input'))}"
    if kind == "too_short" and where == "samples":
        return "samples is empty; give at least one sample"
    if kind in ("empty", "profile_type", "control_char"):
        return f"{where} {err['msg']}"
    return f"{where}: {err['msg']}"


def describe_errors(exc: ValidationError) -> list[str]:
    return [describe_error(err) for err in exc.errors(include_url=False, include_input=True)]


class IssueCollector:
    """Issues for one file, capped at MAX_ISSUES."""

    def __init__(self, path: str):
        self.path = path
        self.issues: list[InputIssue] = []
        self.dropped = 0

    def add(self, line: int | None, message: str, *, path: str | None = None) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(InputIssue(path or self.path, line, message))
        else:
            self.dropped += 1

    def raise_if_any(self) -> None:
        # Checks run in passes; the user reads the file top to bottom.
        self.issues.sort(key=lambda issue: (issue.path, issue.line or 0))
        if self.dropped:
            self.issues.append(InputIssue(self.path, None, f"{self.dropped} more problems not shown"))
        if self.issues:
            raise InputError(self.issues)


def split_lines(data: bytes, issues: IssueCollector, *, strict_format: bool = True) -> Iterator[tuple[int, str]]:
    """(line number, decoded text) for each non-blank line.

    With ``strict_format`` a BOM and CRLF endings are reported (the contract file must
    be plain UTF-8 + LF); otherwise they are tolerated. Undecodable lines are always
    reported (with line and byte offset) and skipped.
    """
    for number, _start, _size, text in lines_at(data, issues, strict_format=strict_format):
        yield number, text


def lines_at(data: bytes, issues: IssueCollector, *, strict_format: bool = True) -> Iterator[tuple[int, int, int, str]]:
    """:func:`split_lines` with each line's byte offset and size in the file (its ending
    excluded), so a caller can read one line again later. One line at a time: a list of
    every line would hold a second copy of the file."""
    offset = 0  # byte offset of the current line in the file, for the user's hex editor
    if data.startswith(BOM):
        if strict_format:
            issues.add(1, "file starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM")
        offset = len(BOM)
    crlf_reported = False
    number = 0
    while offset <= len(data):
        number += 1
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end
        start, raw, offset = offset, data[offset:end], end + 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
            if strict_format and not crlf_reported:
                issues.add(number, "Windows (CRLF) line ending; convert to LF")
                crlf_reported = True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start]
            issues.add(
                number,
                f"not valid UTF-8: byte 0x{bad:02x} at byte offset {start + exc.start} "
                f"(column {exc.start + 1}); save the file as UTF-8",
            )
            continue
        if text.strip():
            yield number, start, len(raw), text


def parse_object(text: str, line: int, issues: IssueCollector) -> dict | None:
    """A JSON object from one line, or None after reporting why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        issues.add(line, f"invalid JSON: {exc.msg} (column {exc.colno})")
        return None
    except RecursionError:
        issues.add(line, "invalid JSON: nested too deeply")
        return None
    if not isinstance(value, dict):
        issues.add(line, f"expected one JSON object per line, got {json_type(value)}")
        return None
    try:
        bad = list(surrogate_fields(value))
    except RecursionError:
        issues.add(line, "invalid JSON: nested too deeply")
        return None
    for where in bad:
        issues.add(line, f"{where} contains a lone surrogate (a \\ud800-\\udfff escape without its pair)")
    return None if bad else value


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def load_authors(path: str | Path, *, min_samples: int = 1, min_samples_reason: str | None = None) -> list[Author]:
    """Load and validate authors.jsonl; raise InputError listing every defect found."""
    return [author for _, _, author in _validated(path, min_samples, min_samples_reason, keep=True)]


def index_authors(path: str | Path, *, min_samples: int = 1, min_samples_reason: str | None = None) -> list[AuthorRef]:
    """:func:`load_authors` (the same checks, the same errors) keeping each author as an
    :class:`AuthorRef`: its ids and genres, and where its line is in the file. The texts
    stay on disk until a shard needs them, so a build's memory does not grow with them."""
    source = _LineSource(path)
    return [AuthorRef(source, span, author) for _, span, author in _validated(path, min_samples, min_samples_reason,
                                                                               keep=False)]


def _validated(path: str | Path, min_samples: int, reason: str | None, *, keep: bool) -> list[tuple[int, tuple, Any]]:
    """(line, (offset, size, digest) of the line, the Author, or with ``keep=False`` just its
    ids and genres) per author, or InputError listing every defect."""
    issues = IssueCollector(str(path))
    data = read_bytes(path)
    authors: list[tuple[int, tuple, Any]] = []
    ids = _IdRegistry(issues)
    seen_lines = 0
    for line, start, size, text in lines_at(data, issues):
        seen_lines += 1
        obj = parse_object(text, line, issues)
        if obj is None:
            continue
        ids.check(obj, line)
        try:
            author = Author.model_validate(obj)
        except ValidationError as exc:
            for message in describe_errors(exc):
                issues.add(line, message)
            continue
        span = (start, size, _digest(data[start:start + size])) if not keep else ()
        authors.append((line, span, author if keep else _Outline.of(author)))
    if not seen_lines and not issues.issues:
        issues.add(None, "no authors (the file is empty)")
    _check_min_samples(authors, min_samples, reason, issues)
    issues.raise_if_any()
    return authors


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


class _Outline(NamedTuple):
    """An author without texts: what splits, shards and the corpus index read."""

    author_id: str
    samples: tuple

    @classmethod
    def of(cls, author: Author) -> _Outline:
        return cls(author.author_id, tuple((s.id, sys.intern(s.genre)) for s in author.samples))


class _LineSource:
    """One line of the authors file read again by its offset (``os.pread``, one descriptor
    kept open). Each line's digest from the first read is checked, so a file changed
    during the build stops it instead of mixing two versions into one dataset."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._fd: int | None = None

    def line(self, offset: int, size: int, digest: bytes) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        raw = os.pread(self._fd, size, offset)
        if _digest(raw) != digest:
            raise InputError(InputIssue(self.path, None, "the file changed during the build; run the build again"))
        return raw

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


class SampleRef:
    """A sample's id and genre; its text is read from the file when asked for."""

    __slots__ = ("_author", "_index", "id", "genre")

    def __init__(self, author: AuthorRef, index: int, sample_id: str, genre: str):
        self._author, self._index, self.id, self.genre = author, index, sample_id, genre

    @property
    def text(self) -> str:
        return self._author.sample_text(self._index)


class AuthorRef:
    """An author of the file, its texts left on disk: ``author_id`` and ``samples`` (ids and
    genres, each with a lazy ``text``) for the splits, shards and the corpus; :meth:`load`
    the validated :class:`Author` when its shard is built."""

    __slots__ = ("_source", "_span", "author_id", "samples")

    def __init__(self, source: _LineSource, span: tuple[int, int, bytes], outline: _Outline):
        self._source, self._span, self.author_id = source, span, outline.author_id
        self.samples = [SampleRef(self, i, sid, genre) for i, (sid, genre) in enumerate(outline.samples)]

    def _object(self) -> dict:
        return json.loads(self._source.line(*self._span).decode("utf-8"))

    def load(self) -> Author:
        """The author as :func:`load_authors` gives it (the line validated again)."""
        return Author.model_validate(self._object())

    def sample_text(self, index: int) -> str:
        return self._object()["samples"][index]["text"]


def load_all(authors: Iterable[Author | AuthorRef]) -> list[Author]:
    """Authors with their texts in memory (an AuthorRef's line read and validated again)."""
    return [a.load() if isinstance(a, AuthorRef) else a for a in authors]


class _IdRegistry:
    """First line of every author id, and first index of every sample id within its
    author, to report duplicates.

    Works on the raw object (before validation) so a duplicate is reported even on a
    line with other defects. A sample is identified by ``(author_id, id)``: corpora number
    samples per author, so two authors may both have a sample ``1``.
    """

    def __init__(self, issues: IssueCollector):
        self.issues = issues
        self.authors: dict[str, int] = {}

    def check(self, obj: dict, line: int) -> None:
        author_id = obj.get("author_id")
        if not _nonblank_str(author_id):
            author_id = None
        elif author_id in self.authors:
            self.issues.add(line, f"duplicate author_id '{author_id}' (first on line {self.authors[author_id]})")
        else:
            self.authors[author_id] = line
        samples = obj.get("samples")
        first_index: dict[str, int] = {}
        for index, sample in enumerate(samples if isinstance(samples, list) else []):
            sample_id = self._sample_id(sample, author_id, index)
            if sample_id is None:
                continue
            if sample_id in first_index:
                self.issues.add(
                    line, f"duplicate sample id '{sample_id}' at samples[{index}] (first at samples[{first_index[sample_id]}])"
                )
            else:
                first_index[sample_id] = index

    @staticmethod
    def _sample_id(sample: Any, author_id: str | None, index: int) -> str | None:
        if not isinstance(sample, dict):
            return None
        given = sample.get("id")
        if given is None and author_id is not None:
            return f"{author_id}-{index}"  # the default Author fills in
        return given if _nonblank_str(given) else None


def _nonblank_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_min_samples(authors: list[tuple[int, tuple, Any]], min_samples: int, reason: str | None,
                       issues: IssueCollector) -> None:
    for line, _, author in authors:
        if len(author.samples) < min_samples:
            why = f" ({reason})" if reason else ""
            issues.add(
                line,
                f"author '{author.author_id}' has {_plural(len(author.samples), 'sample')}; "
                f"needs at least {min_samples}{why}",
            )

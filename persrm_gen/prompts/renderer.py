"""Prompt templates: a sandboxed Jinja environment where author text is only ever data.

Templates live in ``persrm_gen/prompts/``; ``--prompts-dir`` overrides any of them by
file name. A template renders chat messages from its ``system`` and ``user`` blocks
(instruction models) or raw text from its ``prompt`` block (base models continuing a
few-shot document). Values are passed as variables and never parsed as templates, so
a sample containing ``{{ 7*7 }}`` comes out literally. The environment is the one the
dataset card uses too (``persrm_gen.jinja_sandbox``).
"""

from __future__ import annotations

import hashlib
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, TemplateNotFound, meta
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

from persrm_gen.errors import InputError, InputIssue
from persrm_gen.jinja_sandbox import sandboxed_env
from persrm_gen.llm.types import Message

SUFFIX = ".j2"
SAMPLES = "_samples.j2"  # the author's samples, included by the templates that show them
_QUERY_GAP = 200  # characters of template text (a heading) allowed between the samples and the query
_LOADS_RE = re.compile(r"{%-?\s*(?:include|import|extends|from)\b")  # any other template it reads
_INCLUDE_RE = re.compile(r"""{%-?\s*(?:include|import|extends)\s+["']([^"']+)["']""")


class PromptRenderer:
    def __init__(self, override_dir: str | Path | None = None):
        loaders = []
        if override_dir is not None:
            override_dir = Path(override_dir)
            if not override_dir.is_dir():
                raise InputError(InputIssue(str(override_dir), None, "--prompts-dir is not a folder"))
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(PackageLoader("persrm_gen", "prompts"))
        self.env = sandboxed_env(ChoiceLoader(loaders), keep_trailing_newline=False)
        # no stat of the file at each {% include %}: a build renders what it hashed at the start
        self.env.auto_reload = False
        self._hashes: dict[str, str] = {}
        self._shows_samples: dict[str, bool] = {}
        self._compiled: dict[str, object] = {}
        self._samples_cache: dict[tuple, str] = {}
        self._samples_vars: frozenset[str] | None = None
        self._samples_cacheable: bool | None = None  # decided at the first samples block

    def _template(self, name: str):
        """The compiled template, loaded once per renderer: Jinja's own cache checks the file
        on disk again at every render (a stat per prompt), and the sources a build's request
        keys hash (``template_hash``) are read once anyway."""
        template = self._compiled.get(name)
        if template is None:
            with _template_errors(name + SUFFIX):
                template = self._compiled[name] = self.env.get_template(name + SUFFIX)
        return template

    def template_hash(self, name: str) -> str:
        """sha256 of the template's source: goes into the manifest and every request key."""
        if name not in self._hashes:
            digest = hashlib.sha256()
            for source in self._sources(name + SUFFIX, set()):
                digest.update(source.encode("utf-8"))
            self._hashes[name] = digest.hexdigest()
        return self._hashes[name]

    def _sources(self, filename: str, seen: set[str]) -> list[str]:
        """The template's source followed by those of the templates it includes."""
        if filename in seen:
            return []
        seen.add(filename)
        with _template_errors(filename):
            source, _, _ = self.env.loader.get_source(self.env, filename)
        out = [source]
        for included in _INCLUDE_RE.findall(source):
            out += self._sources(included, seen)
        return out

    def used_hashes(self) -> dict[str, str]:
        return dict(sorted(self._hashes.items()))

    def _block(self, name: str, block: str, variables: dict) -> str | None:
        template = self._template(name)
        self.template_hash(name)
        render = template.blocks.get(block)
        if render is None:
            return None
        ctx = template.new_context(dict(variables), shared=True)
        with _template_errors(template.filename or name + SUFFIX):
            try:
                return "".join(render(ctx)).strip()
            except Exception:  # noqa: BLE001 - as Template.render does: point the traceback at the template
                self.env.handle_exception()

    def text(self, name: str, **variables) -> str:
        """The template's ``prompt`` block (or the whole template when it has no blocks)."""
        out = self._block(name, "prompt", variables)
        if out is None:
            template = self._template(name)
            with _template_errors(template.filename or name + SUFFIX):
                out = template.render(**variables).strip()
        return out

    def messages(self, name: str, **variables) -> tuple[Message, ...]:
        """Chat messages from the template's ``system`` and ``user`` blocks."""
        system = self._block(name, "system", variables)
        user = self._block(name, "user", variables)
        if user is None:
            raise InputError(InputIssue(name + SUFFIX, None, "chat template needs a {% block user %}"))
        msgs = [Message("system", system)] if system else []
        msgs.append(Message("user", user, cache_prefix=self._samples_prefix(name, user, variables)))
        return tuple(msgs)

    def _samples_prefix(self, name: str, user: str, variables: dict) -> int:
        """Where the part of ``user`` that many requests repeat ends, else 0: the samples block
        (``_samples.j2``) when ``user`` starts with it, extended over the query when the query
        follows right after (every pair and re-sample of a target repeats both).

        A prompt-cache breakpoint goes there. The query is included because the samples alone
        are often below the providers' 1,024-token minimum for a cached prefix. A template
        that puts anything before the samples simply gets no breakpoint.
        """
        if name not in self._shows_samples:
            sources = self._sources(name + SUFFIX, set())
            self._shows_samples[name] = any(SAMPLES in _INCLUDE_RE.findall(src) for src in sources)
        if not self._shows_samples[name]:
            return 0
        samples = self._samples_block(variables)
        if not samples or not user.startswith(samples):
            return 0
        end = len(samples)
        query = variables.get("query")
        if isinstance(query, str) and query and 0 <= (at := user.find(query, end)) - end <= _QUERY_GAP:
            end = at + len(query)
        return end

    def _samples_block(self, variables: dict) -> str:
        """``_samples.j2`` rendered once per set of values it reads (every pair and re-sample of
        a target shows the same samples); a template reading a non-hashable value, or one that
        reads another template (whose variables are not known here), renders each time."""
        template = self._template(SAMPLES.removesuffix(SUFFIX))
        if self._samples_cacheable is None:
            sources = self._sources(SAMPLES, set())
            self._samples_vars = frozenset(meta.find_undeclared_variables(self.env.parse(sources[0]))) \
                if len(sources) == 1 and not _LOADS_RE.search(sources[0]) else None
            self._samples_cacheable = self._samples_vars is not None
        if not self._samples_cacheable:
            return template.render(**variables).strip()
        try:
            key = tuple((k, _frozen(variables.get(k, _MISSING))) for k in sorted(self._samples_vars))
            hash(key)
        except TypeError:
            return template.render(**variables).strip()
        out = self._samples_cache.get(key)
        if out is None:  # (shards render in threads: get/set only, never a check then a read)
            out = template.render(**variables).strip()
            if len(self._samples_cache) >= 1024:  # a target's prompts render together: few are reused later
                self._samples_cache.clear()
            self._samples_cache[key] = out
        return out


_MISSING = object()  # a variable not passed (StrictUndefined raises) is not one passed as None


def _frozen(value):
    """A list or tuple of values as a tuple of (type, value), so it can key a cache."""
    if isinstance(value, (list, tuple)):
        return type(value), tuple(_frozen(v) for v in value)
    return type(value), value


@contextmanager
def _template_errors(filename: str) -> Iterator[None]:
    """Turn an error in a template (or in one it includes) into ``FILE:LINE: what is wrong``.

    An error raised while the template's own code ran (``{{ 1 + "a" }}``) is the template's
    too; any other error is not, and passes through unchanged.
    """
    try:
        yield
    except Exception as exc:  # sorted below: what is not the template's fault is raised again
        issue = _template_issue(exc, filename)
        if issue is None:
            raise
        raise InputError(issue) from None


def _template_issue(exc: Exception, filename: str) -> InputIssue | None:
    if isinstance(exc, TemplateNotFound):
        return InputIssue(exc.name if isinstance(exc.name, str) else filename, None, "prompt template not found")
    if isinstance(exc, UnicodeDecodeError):
        return InputIssue(filename, None, "prompt template is not UTF-8 text")
    if isinstance(exc, TemplateSyntaxError):  # knows its own file and line, also for an included template
        return InputIssue(exc.filename or filename, exc.lineno, f"template syntax error: {exc.message}")
    # A render error: the innermost traceback frame in a template (Jinja maps its lines back).
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(SUFFIX)]
    if not frames and not isinstance(exc, TemplateError):
        return None
    where, line = (frames[-1].filename, frames[-1].lineno) if frames else (filename, None)
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SecurityError):
        message = f"unsafe operation refused by the sandbox: {message}"
    return InputIssue(where, line, message)

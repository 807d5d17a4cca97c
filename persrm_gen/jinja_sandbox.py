"""The one Jinja environment persrm-gen renders with: sandboxed, strict, never escaping.

Both the prompt templates (``prompts/``, overridable with ``--prompts-dir``) and the
dataset card body (``cards/``) are rendered here, and in both the values are data that
someone else wrote: author samples, queries, model output, manifest fields. So:

* ``ImmutableSandboxedEnvironment``: a template (ours or a user's ``--prompts-dir``) can
  neither reach Python internals nor mutate the values it is given; values are passed as
  variables and never parsed as templates, so ``{{ 7*7 }}`` in a sample comes out literally.
* ``StrictUndefined``: a misspelt variable is an error, not a silently empty prompt.
* no autoescape: the output is chat text and Markdown, not HTML; the card escapes what
  Markdown needs with its own filters.
* ``trim_blocks``/``lstrip_blocks``: block tags do not leave blank lines in the output.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import BaseLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


def sandboxed_env(
    loader: BaseLoader,
    *,
    keep_trailing_newline: bool,
    filters: dict[str, Callable] | None = None,
) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment over ``loader``; ``keep_trailing_newline`` as the output needs
    (a Markdown file keeps its final newline, a prompt is stripped anyway)."""
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=keep_trailing_newline,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters or {})
    return env

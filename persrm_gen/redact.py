"""What a manifest, a card, a report or a log may say about the machine that made it.

These files get pushed to the Hub or attached to bug reports: they must hold no
credentials, and no home folder (which usually names the user). Paths under the home
folder are written as ``~/...``; URLs lose their ``user:password@`` part, query and
fragment (``?api_key=...``); the values of key-like options (``--api-key X``) and anything
:mod:`persrm_gen.secrets` recognises become ``***``. One function per kind of record,
used by every place that records it, so there is no second, weaker copy.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from persrm_gen.secrets import MASK, redact_secrets

# Options and fields whose value is a credential whatever it looks like. Anchored at the
# end, so --token-env (a variable's name) and --max-new-tokens are not caught.
_SECRET_NAME = re.compile(r"(?i)^-*[\w-]*(?:api[-_]?key|token|password|passwd|secret|credentials?)$")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_HOST_PORT = re.compile(r"(?:\[[^\]]*\]|[^:@\[\]]*)(?::\d*)?")


def redact_url(url: str | None) -> str | None:
    """Drop credentials, query and fragment from a URL (``http://user:key@host/v1?k=x`` ->
    ``http://host/v1``). Plain string work, no URL parser: a malformed URL (a raw ``@`` or
    ``/`` in the password, a bad port or bracket) is redacted too instead of raising."""
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    prefix = scheme + sep if sep else ""
    if not sep:
        rest = url
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    elif "@" in path and not _HOST_PORT.fullmatch(authority):
        # "user:pa/ss@host": the password holds a raw "/"; everything up to the "@" is userinfo.
        authority, slash, path = rest.rsplit("@", 1)[1].partition("/")
    return prefix + authority + slash + path


def redact_home(text: str, home: str | None = None) -> str:
    """``/home/alice/data/x`` -> ``~/data/x``; the home folder itself is never written out."""
    home = (home or os.path.expanduser("~")).rstrip("/")
    if not home or home == "/" or home == "~":
        return text
    # Only whole path components: /home/al must not eat the start of /home/alice.
    return re.sub(re.escape(home) + r"(?![\w.-])", "~", text)


def _redact_secrets_and_urls(text: str) -> str:
    return redact_secrets(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)) or "", text))


def redact_text(text: str, home: str | None = None) -> str:
    """Free text for the record (a recorded command line, an option's value): every URL
    redacted, every secret-looking token masked, the home folder as ``~``. Idempotent."""
    return redact_home(_redact_secrets_and_urls(text), home)


def redact_command(argv: Sequence[str], home: str | None = None) -> str:
    """A command line for manifests, cards and logs: ``argv`` shell-quoted, with every URL
    redacted, the value of every key-like option (``--api-key X``, ``--token=X``) masked and
    the home folder as ``~``. A clean command line comes out exactly as ``shlex.join``."""
    out: list[str] = []
    pending = False  # the previous argument was a key-like option: this one is its value
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if pending:
            out.append(MASK)
            pending = False
        elif arg.startswith("-") and _SECRET_NAME.match(name):
            out.append(f"{name}={MASK}" if eq else arg)
            pending = not eq
        else:
            out.append(_redact_secrets_and_urls(arg))
    # Home last, on the joined line: "~/x" stays unquoted as it always was.
    return redact_home(shlex.join(out), home)


def redact_options(values: Mapping[str, Any], home: str | None = None) -> dict[str, Any]:
    """An options dump for reports and cards: key-like fields masked, strings redacted."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):
            value = MASK if value and _SECRET_NAME.match(key) else redact_text(value, home)
        out[key] = value
    return out


def display_path(path: str | Path) -> str:
    """An absolute path for the record, with the home folder written as ``~``."""
    return redact_home(str(Path(path).resolve()))

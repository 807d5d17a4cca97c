"""What a manifest, a card or a report may say about the machine that made it.

These files get pushed to the Hub: they must hold no credentials, and no home folder
(which usually names the user). Paths under the home folder are written as ``~/...``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def redact_url(url: str | None) -> str | None:
    """Drop credentials from a URL (``http://user:key@host`` -> ``http://host``)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_home(text: str, home: str | None = None) -> str:
    """``/home/alice/data/x`` -> ``~/data/x``; the home folder itself is never written out."""
    home = (home or os.path.expanduser("~")).rstrip("/")
    if not home or home == "/" or home == "~":
        return text
    # Only whole path components: /home/al must not eat the start of /home/alice.
    return re.sub(re.escape(home) + r"(?![\w.-])", "~", text)


def display_path(path: str | Path) -> str:
    """An absolute path for the record, with the home folder written as ``~``."""
    return redact_home(str(Path(path).resolve()))

"""What a credential looks like, in one place: for redacting messages and for push's scan.

Two users of the same patterns: :func:`redact_secrets` masks them in anything printed,
logged or recorded (a provider's 401 body that echoes ``Bearer sk-...``, a command line
with ``--base-url http://user:pass@host``), and ``publish.secret_scan`` refuses to upload
a file that holds one. Matches are reported by kind and place, never by value.
"""

from __future__ import annotations

import os
import re

# (kind, pattern). Order matters only for which kind a line is reported as.
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("Anthropic API key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("URL credentials", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/@:\"'<>]+:[^\s/@\"'<>]+@")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-\.=+/~]{12,}")),
    (
        "credential assignment",
        re.compile(
            r"(?i)\b[\w-]*(?:api[_-]?key|secret[_-]?key|secret[_-]?access[_-]?key|access[_-]?token|auth[_-]?token"
            r"|client[_-]?secret|password|passwd|pwd|token)"
            r"[\"']?\s*[:=]\s*[\"']?(?!\*\*\*)[^\s\"',;]{6,}"
        ),
    ),
]

# Environment variables whose values are secrets wherever they appear.
ENV_SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
               "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN")
MASK = "***"


def env_secret_values(extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(description, value) of every secret-holding variable set to something long enough."""
    out = []
    for name in (*ENV_SECRETS, *extra):
        value = os.environ.get(name, "")
        if len(value) >= 8:  # shorter values would match ordinary words
            out.append((f"value of ${name}", value))
    return out


def find_secrets(line: str, env: list[tuple[str, str]] | None = None) -> list[str]:
    """Kinds of secret found in ``line`` (empty when none)."""
    kinds = [kind for kind, value in (env if env is not None else env_secret_values()) if value in line]
    kinds += [kind for kind, rx in PATTERNS if rx.search(line)]
    return kinds


def _mask(match: re.Match) -> str:
    text = match.group(0)
    if "://" in text:  # keep the scheme, drop user and password
        return text.split("://", 1)[0] + "://" + MASK + "@"
    for sep in ("=", ":"):  # keep the name of an assignment, mask its value
        if sep in text and not text.lower().startswith("bearer"):
            name, _, _ = text.partition(sep)
            return f"{name}{sep}{MASK}"
    if text.lower().startswith("bearer"):
        return text.split(None, 1)[0] + " " + MASK
    return MASK


def redact_secrets(text: str, extra_env: tuple[str, ...] = ()) -> str:
    """``text`` with every credential-looking token (and every secret env value) masked."""
    if not text:
        return text
    for _, value in env_secret_values(extra_env):
        text = text.replace(value, MASK)
    for _, rx in PATTERNS:
        text = rx.sub(_mask, text)
    return text

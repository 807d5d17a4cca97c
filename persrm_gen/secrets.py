"""What a credential looks like, in one place: for redacting messages and for push's scan.

Two users of the same patterns: :func:`redact_secrets` masks them in anything printed,
logged or recorded (a provider's 401 body that echoes ``Bearer sk-...``, a command line
with ``--base-url http://user:pass@host``), and ``publish.secret_scan`` refuses to upload
a file that holds one. Matches are reported by kind and place, never by value.
"""

from __future__ import annotations

import os
import re

# Names whose value is a credential in a ``name = value`` or ``"name": value`` assignment.
# A bare "token" is not one of them: tokenizer configs are full of pad_token/eos_token.
_CREDENTIAL_NAMES = (r"password|passwd|passphrase|secret|secret[_-]?key|secret[_-]?access[_-]?key|api[_-]?key"
                     r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key")
# A secret value in such an assignment: letters AND digits, 8+ characters, not a
# placeholder (<...>, ${...}, ***) and not code (a call, an attribute, an index); so prose
# ("the password: swordfish"), vocabularies ("password": 3891) and quoted code
# (password = getpass.getpass()) do not count. Possessive, so it cannot shrink to fit.
_SECRET_VALUE = r"(?![<{$*%])(?=[^\s\"',;]*\d)(?=[^\s\"',;]*[A-Za-z])[^\s\"',;()\[\]{}<>]{8,}+(?![(\[])"
# Passwords in URLs that are placeholders in documentation, not credentials.
_PLACEHOLDER_PASSWORD = r"(?![<{$*%])(?!(?:password|passwd|pass|pwd|secret|xx+)@)"

# (kind, pattern). Order matters only for which kind a line is reported as.
PATTERNS: list[tuple[str, re.Pattern]] = [
    # The whole block when its end is there, so masking a message drops the key body too.
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                               r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(
        r"(?i)\baws_?secret_?(?:access_?)?key[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")),
    ("URL credentials", re.compile(
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/@:\"'<>]+:" + _PLACEHOLDER_PASSWORD + r"[^\s/@\"'<>]+@")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+(?=[A-Za-z0-9_\-.=+/~]*\d)[A-Za-z0-9_\-.=+/~]{16,}")),
    ("credential assignment", re.compile(
        r"(?i)(?<![\w-])(?:[\w-]*[_-])?(?:" + _CREDENTIAL_NAMES + r")[\"']?[ \t]*[:=][ \t]*[\"']?" + _SECRET_VALUE)),
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

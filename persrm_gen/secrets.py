"""What a credential looks like, in one place: for redacting messages and for push's scan.

Two users of the same patterns: :func:`redact_secrets` masks them in anything printed,
logged or recorded (a provider's 401 body that echoes ``Bearer sk-...``, a command line
with ``--base-url http://user:pass@host``), and ``publish.secret_scan`` refuses to upload
a file that holds one. Matches are reported by kind and place, never by value.
"""

from __future__ import annotations

import functools
import os
import re

# Names whose value is a credential in a ``name = value`` or ``"name": value`` assignment
# (db_password, client_secret, AWS_SECRET_KEY...). A bare "token" is not one of them:
# tokenizer configs are full of pad_token/eos_token.
# One pattern per name, each starting with its literal: one alternation would be slow.
_CREDENTIAL_NAMES = (r"pass(?:word|wd|phrase)", r"secret(?:[_-]?(?:access[_-]?)?key)?", r"api[_-]?key",
                     r"access[_-]?token", r"auth[_-]?token", r"refresh[_-]?token", r"private[_-]?key")
# A secret value in such an assignment: letters AND digits, 8+ characters, not a
# placeholder (<...>, ${...}, ***) and not code (a call, an attribute, an index); so prose
# ("the password: swordfish"), vocabularies ("password": 3891) and quoted code
# (password = getpass.getpass()) do not count. Possessive, so it cannot shrink to fit.
_SECRET_VALUE = r"(?![<{$*%])(?=[^\s\"',;]*\d)(?=[^\s\"',;]*[a-z])[^\s\"',;()\[\]{}<>]{8,}+(?![(\[])"
# Passwords in URLs that are placeholders in documentation, not credentials.
_PLACEHOLDER_PASSWORD = r"(?![<{$*%])(?!(?:password|passwd|pass|pwd|secret|xx+)@)"

# (kind, pattern, caseless). Order matters only for which kind a line is reported as.
# Every pattern starts with a literal (a word boundary, where needed, is a look-behind
# after it): Python's re then skips ahead with a fast substring search, which is what
# lets push scan gigabytes of parquet text. Caseless patterns are written in lower case;
# scanning runs them on ``text.lower()``, masking compiles them with re.IGNORECASE.
_TABLE: list[tuple[str, str, bool]] = [
    # The whole block when its end is there, so masking a message drops the key body too.
    ("private key", (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                     r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?"), False),
    ("Anthropic API key", r"sk-ant-(?<!\wsk-ant-)[A-Za-z0-9_\-]{20,}", False),
    ("OpenAI API key",
     r"sk-(?<!\wsk-)(?!ant-)(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}", False),
    ("Hugging Face token", r"hf_(?<!\whf_)[A-Za-z0-9]{30,}", False),
    ("GitHub token", r"gh[pousr]_(?<!\wgh[pousr]_)[A-Za-z0-9]{36,}|github_pat_(?<!\wgithub_pat_)[A-Za-z0-9_]{50,}",
     False),
    ("AWS access key id", r"A[KS]IA(?<!\wA[KS]IA)[0-9A-Z]{16}\b", False),
    ("AWS secret access key", r"aws_?secret_?(?:access_?)?key[\"']?[ \t]*[:=][ \t]*[\"']?[a-z0-9/+]{40}(?![a-z0-9/+])",
     True),
    # From "://" on (the scheme needs no check): masking keeps the scheme in front of it.
    ("URL credentials", r"://[^\s/@:\"'<>]+:" + _PLACEHOLDER_PASSWORD + r"[^\s/@\"'<>]+@", False),
    ("bearer token", r"bearer\s+(?=[a-z0-9_\-.=+/~]*\d)[a-z0-9_\-.=+/~]{16,}", True),
    *(("credential assignment", name + r"[\"']?[ \t]*[:=][ \t]*[\"']?" + _SECRET_VALUE, True)
      for name in _CREDENTIAL_NAMES),
]
# For masking: positions in the original text.
PATTERNS: list[tuple[str, re.Pattern]] = [
    (kind, re.compile(src, re.IGNORECASE if caseless else 0)) for kind, src, caseless in _TABLE
]
# For finding: fast, caseless ones against the lower-cased text.
_FINDERS: list[tuple[str, re.Pattern, bool]] = [(k, re.compile(src), caseless) for k, src, caseless in _TABLE]

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
    lower = line.lower()
    kinds += [kind for kind, rx, caseless in _FINDERS if rx.search(lower if caseless else line)]
    return list(dict.fromkeys(kinds))


def _mask(kind: str, match: re.Match) -> str:
    text = match.group(0)
    if kind == "URL credentials":  # the scheme, before the match, stays; user and password go
        return "://" + MASK + "@"
    if kind == "bearer token":
        return text.split(None, 1)[0] + " " + MASK
    if kind in ("credential assignment", "AWS secret access key"):  # keep the name, mask the value
        sep = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=len(text))
        return text[: sep + 1] + MASK
    return MASK


def redact_secrets(text: str, extra_env: tuple[str, ...] = ()) -> str:
    """``text`` with every credential-looking token (and every secret env value) masked."""
    if not text:
        return text
    for _, value in env_secret_values(extra_env):
        text = text.replace(value, MASK)
    for kind, rx in PATTERNS:
        text = rx.sub(functools.partial(_mask, kind), text)
    return text

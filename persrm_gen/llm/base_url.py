"""The one check of a server URL a user gives (``build --base-url``, ``eval --judge-base-url``).

Credentials in the URL are refused up front: the fast transport's HTTP client refuses
them locally (every request would fail without reaching the server), and a URL is
recorded in manifests and logs. The API key belongs in the provider's environment
variable. Error messages never repeat the URL, since it may hold a secret.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def check_base_url(url: str, key_variable: str = "OPENAI_API_KEY") -> str:
    """``url`` if it is an http(s) URL with a host and no credentials; ValueError otherwise."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # an invalid port raises here
    except ValueError:
        raise ValueError("not a valid URL; expected one like http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host, like http://127.0.0.1:8000/v1")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"credentials in the URL are refused (they would be recorded); put the key in {key_variable}")
    return url


def _checked(value: Any) -> Any:
    if isinstance(value, str):
        try:
            check_base_url(value)
        except ValueError as exc:
            raise PydanticCustomError("option", str(exc)) from None
    return value


# An options field holding a server URL: checked as above, the error names no part of the value.
BaseUrl = Annotated[str | None, BeforeValidator(_checked)]

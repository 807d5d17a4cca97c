"""Versions of the packages that shape a build, for manifests and cards."""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("persrm-gen", "torch", "transformers", "datasets", "pyarrow", "jinja2", "openai", "anthropic", "trl")


def package_versions(names=PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

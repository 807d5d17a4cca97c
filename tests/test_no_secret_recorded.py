"""``persrm-gen build`` through the CLI in a subprocess: no key, token or URL password reaches
the terminal, the output folder (manifest, card, data, cache) or the crash logs, whatever
the provider answers (tests/fakeserver.py echoes the key in a 401 body)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from example_corpus import write_example_slice
from fakeserver import FakeServer

pytestmark = pytest.mark.timeout(300)

# No digits and no known prefix: only "it is the value of $OPENAI_API_KEY" gives it away.
PLAIN_KEY = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=2, last=1, samples=3)


def build(tmp_path: Path, authors: Path, server: FakeServer, backend: str, base_url: str | None,
          key: str) -> tuple[subprocess.CompletedProcess, Path]:
    out, logs = tmp_path / "out", tmp_path / "logs"
    model = "gpt-4.1-mini" if backend == "openai" else "claude-sonnet-4-5"
    cmd = [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
           "--backend", backend, "--model", model, "--context-size", "2", "--test-authors", "1",
           "--timeout", "5", "--quiet"] + (["--base-url", base_url] if base_url else [])
    env = {**os.environ, "OPENAI_API_KEY": key, "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": server.url,
           "PERSRM_GEN_CACHE": str(logs), "COLUMNS": "200"}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=240), tmp_path


def assert_nowhere(secret: str, proc: subprocess.CompletedProcess, root: Path) -> None:
    assert secret not in proc.stdout + proc.stderr
    for path in root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_a_401_echoing_the_key_leaves_no_trace_of_it(tmp_path, authors, backend):
    with FakeServer(key=PLAIN_KEY, fault_all="echo_auth") as server:
        base = server.openai_base if backend == "openai" else None
        proc, root = build(tmp_path, authors, server, backend, base, PLAIN_KEY)
        assert any(h.fault == "echo_auth" for h in server.snapshot())
    assert proc.returncode == 3, proc.stderr
    assert "Incorrect API key provided" in proc.stderr  # the provider's message, masked, not dropped
    assert_nowhere(PLAIN_KEY, proc, root)


def test_base_url_credentials_are_recorded_nowhere(tmp_path, authors):
    password = "hunter2-in-the-url"
    with FakeServer() as server:
        url = server.openai_base.replace("http://", f"http://alice:{password}@")
        proc, root = build(tmp_path, authors, server, "openai", url, "test-key")
    assert_nowhere(password, proc, root)
    manifest = root / "out" / "manifest.json"
    if manifest.exists():  # refusing the URL up front is also fine; recording it is not
        command = json.loads(manifest.read_text())["command"]
        assert f"--base-url {server.openai_base}" in command
        assert f"Command: `{command}`" in (root / "out" / "README.md").read_text()

"""Manifests, cards and reports name no home folder and no URL credentials."""

from __future__ import annotations

from persrm_gen.redact import display_path, redact_home, redact_url


def test_home_folder_becomes_a_tilde_on_whole_path_components_only():
    home = "/home/alice"
    cmd = "persrm-gen build --authors /home/alice/a.jsonl --out '/home/alice/my out' --prompts /home/alice"
    assert redact_home(cmd, home) == "persrm-gen build --authors ~/a.jsonl --out '~/my out' --prompts ~"
    untouched = "/home/alicea/x /home/alice.bak/y /home/alice-2 /srv/home/alicex"
    assert redact_home(untouched, home) == untouched
    assert redact_home("/x/y", "/") == "/x/y"  # a home of / would redact everything


def test_display_path_resolves_then_redacts(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert display_path("data/../out") == "~/out"
    assert display_path("/opt/x") == "/opt/x"


def test_url_credentials_are_dropped():
    assert redact_url("http://user:sk-secret@127.0.0.1:8000/v1?key=x") == "http://127.0.0.1:8000/v1"
    assert redact_url(None) is None

"""Manifests, cards and reports name no home folder and no URL credentials."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from test_card import make_manifest, make_stats

from persrm_gen.redact import (
    display_path,
    redact_command,
    redact_home,
    redact_text,
    redact_url,
)


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


def test_odd_urls_are_redacted_without_a_parser_error():
    cases = {
        "http://u:p@ss@host:8000/v1": "http://host:8000/v1",  # a raw @ in the password
        "http://u:pa/ss@host/v1": "http://host/v1",  # a raw / in the password
        "http://user:pw@[::1:8000/v1": "http://[::1:8000/v1",  # unbalanced IPv6 bracket
        "http://user:pw@host:notaport/v1": "http://host:notaport/v1",  # urlsplit's .port raises here
        "user:pw@host:8000/v1": "host:8000/v1",  # no scheme
        "http://host/v1#frag": "http://host/v1",
        "http://host:8000/v1": "http://host:8000/v1",
        "": "",
    }
    for url, want in cases.items():
        assert redact_url(url) == want, url


def test_command_lines_lose_url_credentials_and_key_options():
    argv = ["persrm-gen", "build", "--base-url", "http://alice:hunter2@127.0.0.1:8000/v1?api_key=zz",
            "--judge-base-url=https://bob:pw9@judge.example/v1", "--api-key", "plainvalue",
            "--hf-token=plainvalue", "--token-env", "HF_TOKEN", "--max-new-tokens", "64",
            "--notes", "ghp_" + "a" * 36, "--authors", "/home/alice/my authors.jsonl"]
    line = redact_command(argv, home="/home/alice")
    for secret in ("alice:", "hunter2", "zz", "bob", "pw9", "plainvalue", "ghp_"):
        assert secret not in line, secret
    assert line == ("persrm-gen build --base-url http://127.0.0.1:8000/v1 "
                    "--judge-base-url=https://judge.example/v1 --api-key '***' '--hf-token=***' "
                    "--token-env HF_TOKEN --max-new-tokens 64 --notes '***' --authors '~/my authors.jsonl'")
    clean = ["persrm-gen", "build", "--authors", "/srv/a.jsonl", "--base-url", "http://127.0.0.1:8000/v1"]
    assert redact_command(clean) == shlex.join(clean)  # unchanged inputs, unchanged record


def test_recorded_command_text_is_redacted_idempotently():
    text = "persrm-gen build --base-url http://u:secret9@h:1/v1 --authors ~/a.jsonl"
    once = redact_text(text)
    assert once == "persrm-gen build --base-url http://h:1/v1 --authors ~/a.jsonl"
    assert redact_text(once) == once


def test_trainer_option_dumps_are_redacted(tmp_path):
    from dataclasses import dataclass

    from persrm_gen.trainers.common import options_dict

    @dataclass
    class Opts:
        judge_base_url: str = "http://u:topsecret@127.0.0.1:9/v1"
        hub_token: str = "whatever-it-is"
        data: Path = Path("/srv/data")
        lr: float = 1e-5

    assert options_dict(Opts()) == {"judge_base_url": "http://127.0.0.1:9/v1", "hub_token": "***",
                                    "data": "/srv/data", "lr": 1e-5}


def test_crash_log_header_is_redacted(tmp_path, monkeypatch):
    from persrm_gen import exitcodes

    monkeypatch.setenv("PERSRM_GEN_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["persrm-gen", "build", "--base-url", "http://u:pw-in-argv@h/v1"])
    log = exitcodes.write_log(RuntimeError("boom"))
    text = Path(log).read_text()
    assert "pw-in-argv" not in text and "persrm-gen build --base-url http://h/v1" in text


def test_card_command_line_is_redacted_even_from_an_old_manifest():
    from persrm_gen.cards.dataset_card import render_dataset_card

    manifest = make_manifest(command="persrm-gen build --base-url http://u:oldsecret@h:8/v1")
    text = render_dataset_card(manifest, make_stats())
    assert "oldsecret" not in text and "Command: `persrm-gen build --base-url http://h:8/v1`" in text


def test_messages_lose_every_kind_of_credential(monkeypatch):
    from persrm_gen.secrets import redact_secrets

    monkeypatch.setenv("OPENAI_API_KEY", "plain-words-only")
    secrets = {
        "sk-proj-" + "a1B2" * 10: "***",
        "sk-ant-api03-" + "x9Y8" * 10: "***",
        "ghp_" + "c3D4" * 9: "***",
        "github_pat_11AB" + "e5F6_" * 12: "***",
        "hf_" + "g7H8" * 9: "***",
        "AKIAABCDEFGHIJKLMNOP": "***",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\nIB:AAK\n-----END RSA PRIVATE KEY-----": "***",
        "Authorization: Bearer tok3n-tok3n-tok3n": "Authorization: Bearer ***",
        "https://alice:pa55@host/v1": "https://***@host/v1",
        "DB_PASSWORD=hunter22": "DB_PASSWORD=***",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "aws_secret_access_key=***",
        "key is plain-words-only": "key is ***",
    }
    for text, masked in secrets.items():
        assert redact_secrets(f"error: {text} (401)") == f"error: {masked} (401)", text
    prose = "the password: swordfish; pad_token=<|endoftext|>; password = getpass.getpass(); 151643 tokens"
    assert redact_secrets(prose) == prose

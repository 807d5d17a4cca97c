"""Build, train and eval options: one validation path whatever the source (flag, --config
file, default); every bad value is one line naming the flag, or the file and line, exit 2,
before anything is read, sent or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"
OPENAI = ("--backend", "openai", "--model", "gpt-4.1-mini")


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OPENAI_API_KEY": "test-key"}
    return subprocess.run([sys.executable, "-m", "persrm_gen.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300, check=False)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The contract for bad input: exit 2 and exactly one line on stderr, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr, proc.stdout)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def build(tmp_path: Path, *extra: str | Path) -> subprocess.CompletedProcess:
    return cli("build", "--authors", EXAMPLES, "--out", tmp_path / "out", *extra)


def dry_run_stages(proc: subprocess.CompletedProcess) -> set[str]:
    text = proc.stdout + proc.stderr
    return {line.split("requests: ")[1].split()[0] for line in text.splitlines() if "requests: " in line}


# ---------------------------------------------------------------- --config files


def test_a_typo_in_a_config_strategy_is_an_error_not_silently_dropped(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("seed: 1\nnegatives: [minimal_edit, mimic]\n")
    line = one_line_error(build(tmp_path, *OPENAI, "--config", config, "--dry-run"))
    assert line.startswith(f"error: {config}:2: negatives:"), line
    assert "minimal_edit" in line and "did you mean 'minimal-edit'" in line
    assert not (tmp_path / "out").exists()


def test_strategies_from_a_config_file_reach_the_dry_run(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("negatives: [minimal-edit, mimic]\ncontext_size: 2\n")
    proc = build(tmp_path, *OPENAI, "--config", config, "--dry-run", "--rationales", "evidence")
    assert proc.returncode == 0, proc.stderr
    assert dry_run_stages(proc) == {"positive", "minimal-edit", "mimic"}  # positives: --positive mixed (default)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "line", "words"), [
    ("seed: 1\ncontext_size: \"2\"\n", 2, ["context_size", "integer", "'2'"]),
    ("concurrency: 0\n", 1, ["concurrency", "greater than or equal to 1"]),
    ("seed: 1\n\nnegatives: 5\n", 3, ["negatives", "list"]),
    ("seed: 1\nbatch_sise: 4\n", 2, ["batch_sise", "did you mean 'batch_size'"]),
    ("axes: [formality, colour]\n", 1, ["axes", "colour"]),
    ("seed: 1\nbackend: openia\n", 2, ["backend", "openai"]),
    ("timeout: -1\n", 1, ["timeout", "greater than 0"]),
    ("test_fraction: 1.5\n", 1, ["test_fraction"]),
    ("swap_check: \"yes\"\n", 1, ["swap_check", "boolean"]),
    ("seed: 1\nseed: 2\n", 2, ["seed", "duplicate"]),
    ("pricing:\n  my-model:\n    input: 1\n    output: -2\n", 4, ["pricing.my-model.output", "greater than or equal to 0"]),
    ("pricing:\n  my-model: {input: 1}\n", 2, ["pricing.my-model.output", "missing"]),
    ("pricing:\n  m: {input: 1, output: 2, batch_multiplier: 1.5}\n", 2, ["pricing.m.batch_multiplier", "less than or equal to 1"]),
    ("pricing:\n  m: {input: 1, output: 2, cache_reads: 1}\n", 2, ["pricing.m.cache_reads"]),
])  # fmt: skip
def test_a_bad_value_in_a_config_file_names_the_file_and_line(tmp_path, text, line, words):
    config = tmp_path / "build.yaml"
    config.write_text(text)
    message = one_line_error(build(tmp_path, "--config", config, "--dry-run"))
    assert message.startswith(f"error: {config}:{line}: "), message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists()


def test_json_config_errors_name_the_line_too(tmp_path):
    config = tmp_path / "build.json"
    config.write_text('{\n\t"seed": 1,\n\t"concurrency": "8"\n}\n')
    message = one_line_error(build(tmp_path, "--config", config, "--dry-run"))
    assert message.startswith(f"error: {config}:3: concurrency:"), message


@pytest.mark.parametrize("command", [
    ("build", "--authors", EXAMPLES, "--dry-run"),
    ("train", "sft", "--data", "nowhere", "--out", "ckpt"),
    ("eval", "--data", "nowhere", "--out", "report"),
])  # fmt: skip
def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, command):
    config = tmp_path / "options.yaml"
    config.write_bytes(b"seed: 1\nlicense: caf\xe9\n")
    message = one_line_error(cli(*command, "--config", config, cwd=tmp_path))
    assert f"{config}:2: " in message and "UTF-8" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["options.yaml"]


def test_a_config_that_is_a_fifo_or_a_folder_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "options.fifo"
    os.mkfifo(fifo)  # reading it would block until a writer opens it
    message = one_line_error(build(tmp_path, "--dry-run", "--config", fifo))
    assert message == f"error: {fifo}: is not a regular file (a FIFO, device or socket); give a file", message
    message = one_line_error(build(tmp_path, "--dry-run", "--config", tmp_path))
    assert message == f"error: {tmp_path}: is a folder, expected a file", message


def test_a_config_saved_with_a_bom_is_read(tmp_path):
    config = tmp_path / "options.yaml"
    config.write_bytes(b"\xef\xbb\xbfnegatives: [mimic]\n")
    proc = build(tmp_path, "--dry-run", "--config", config, *OPENAI)
    assert proc.returncode == 0, proc.stderr
    assert dry_run_stages(proc) == {"positive", "mimic", "rationale"}, proc.stdout


def test_yaml_exponents_are_numbers_in_every_config():
    from persrm_gen.options_file import read_options_file

    path = Path(__file__).parent / "_exp.yaml"
    try:
        path.write_text("learning_rate: 1e-4\ntemperature: 2.5E+1\n")
        assert read_options_file(path, {"learning_rate", "temperature"}).values == {"learning_rate": 1e-4, "temperature": 25.0}
    finally:
        path.unlink()


def test_a_self_referencing_yaml_alias_is_an_error_not_a_hang(tmp_path):
    from persrm_gen.errors import InputError
    from persrm_gen.pipeline.options import load_build_options

    config = tmp_path / "build.yaml"
    config.write_text("seed: 1\npricing: &a {m: *a}\n")
    with pytest.raises(InputError, match=r"build.yaml:2: pricing.m"):
        load_build_options({"authors": EXAMPLES}, config)


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--timeout", "0", ["greater than 0"]),
    ("--timeout", "-5", ["greater than 0"]),
    ("--timeout", "nan", ["finite"]),
    ("--concurrency", "0", ["greater than or equal to 1"]),
    ("--max-attempts", "0", ["greater than or equal to 1"]),
    ("--test-fraction", "1.5", ["less than or equal to 0.9"]),
    ("--max-cost", "-1", ["greater than or equal to 0"]),
    ("--rpm", "0", ["greater than 0"]),
    ("--max-blind-confidence", "0.4", ["greater than 0.5"]),
    ("--negatives", "mimic,minimal_edit", ["minimal_edit", "did you mean 'minimal-edit'"]),
    ("--axes", "loudness", ["loudness", "formality"]),
    ("--device", "gpu", ["cuda"]),
    ("--test-authors", "\u00b2", ["digits 0-9"]),
])  # fmt: skip
def test_a_bad_flag_value_is_one_line_naming_the_flag(tmp_path, flag, value, words):
    message = one_line_error(build(tmp_path, *OPENAI, flag, value, "--dry-run"))
    assert message.startswith(f"error: {flag}: "), message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists()


def test_the_command_line_beats_the_file_and_the_file_beats_the_defaults(tmp_path):
    from persrm_gen.pipeline.options import load_build_options

    config = tmp_path / "build.yaml"
    config.write_text("seed: 5\ncontext_size: 2\nnegatives: mimic, axes\npricing: {m: {input: 1, output: 2}, "
                      "n: {input: 1, output: 2, cached_input: 0.1, cache_write: 1.25, batch_multiplier: 0.5}}\n")
    opts = load_build_options({"authors": EXAMPLES, "seed": 3}, config, command="persrm-gen build")
    assert (opts.seed, opts.context_size, opts.negatives, opts.concurrency) == (3, 2, ("mimic", "axes"), 16)
    assert opts.pricing == {"m": {"input": 1, "output": 2},
                            "n": {"input": 1, "output": 2, "cached_input": 0.1, "cache_write": 1.25, "batch_multiplier": 0.5}}
    assert opts.command == "persrm-gen build"


def test_the_build_flags_show_the_defaults_that_apply():
    """--help shows typer's defaults; BuildOptions holds the ones that apply: they must agree."""
    import typer.main

    from persrm_gen.cli.app import app
    from persrm_gen.pipeline.options import BuildOptions

    defaults = BuildOptions(authors=EXAMPLES)
    checked = 0
    for p in typer.main.get_command(app).commands["build"].params:
        if hasattr(defaults, p.name) and p.default is not None and p.name != "authors":
            assert getattr(defaults, p.name) == p.default, p.name
            checked += 1
    assert checked >= 15


def test_the_max_new_tokens_help_names_the_judges_own_limit():
    """--max-new-tokens caps candidate generations only; the judge's traces (--rationales llm)
    take RationaleOptions.max_tokens, and the help must say which number (it drifted unseen)."""
    import dataclasses

    import typer.main

    from persrm_gen.cli.app import app
    from persrm_gen.generator.rationales import RationaleOptions

    judge = {f.name: f.default for f in dataclasses.fields(RationaleOptions)}["max_tokens"]
    [flag] = [p for p in typer.main.get_command(app).commands["build"].params if p.name == "max_new_tokens"]
    assert "--rationales llm" in flag.help and f"{judge} tokens" in flag.help, flag.help


def test_direct_construction_is_validated_too():
    from pydantic import ValidationError

    from persrm_gen.pipeline.options import BuildOptions

    with pytest.raises(ValidationError, match="concurrency"):
        BuildOptions(authors=EXAMPLES, concurrency=0)
    assert BuildOptions(authors=str(EXAMPLES), negatives="mimic,axes").negatives == ("mimic", "axes")


# ---------------------------------------------------------------- base URLs


def test_a_base_url_with_credentials_is_refused_without_echoing_it(tmp_path):
    message = one_line_error(build(tmp_path, *OPENAI, "--base-url", "http://user:s3cr3t@127.0.0.1:9/v1", "--dry-run"))
    assert message.startswith("error: --base-url: ") and "OPENAI_API_KEY" in message, message
    assert "s3cr3t" not in message and "user" not in message
    config = tmp_path / "build.yaml"
    config.write_text(json.dumps({"base_url": "https://:tok3n@example.com/v1"}))
    message = one_line_error(build(tmp_path, *OPENAI, "--config", config))
    assert message.startswith(f"error: {config}:1: base_url:") and "tok3n" not in message, message
    message = one_line_error(build(tmp_path, *OPENAI, "--base-url", "127.0.0.1:8000/v1", "--dry-run"))
    assert "http" in message
    assert not (tmp_path / "out").exists()


def test_eval_refuses_a_judge_base_url_with_credentials(tmp_path):
    message = one_line_error(cli("eval", "--data", tmp_path, "--out", tmp_path / "report", "--judge-backend", "openai",
                                 "--judge-model", "m", "--judge-base-url", "http://u:s3cr3t@127.0.0.1:9/v1"))
    assert message.startswith("error: --judge-base-url: ") and "s3cr3t" not in message, message
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(("args", "words"), [
    (("--timeout", "abc"), ["--timeout", "valid number"]),
    (("--bogus",), ["--bogus"]),
])  # fmt: skip
def test_a_flag_the_parser_refuses_is_one_line_too(tmp_path, args, words):
    message = one_line_error(build(tmp_path, *args))
    for word in words:
        assert word in message, message
    missing = one_line_error(cli("build", "--out", tmp_path / "out"))
    assert "--authors" in missing
    assert not (tmp_path / "out").exists()
    help_text = cli("build", "--help")
    assert help_text.returncode == 0 and "--authors" in help_text.stdout

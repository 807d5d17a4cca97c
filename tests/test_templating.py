"""Prompt templates: sandboxed, strict, overridable, hashed; author text is data; a broken
template is one line naming its file and line, found at start-up before anything is paid."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakeserver import KEY, FakeServer

from persrm_gen.errors import InputError
from persrm_gen.prompts.judge import judge_messages
from persrm_gen.prompts.renderer import PromptRenderer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "authors.jsonl"

EVIL = "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} {{ ''.__class__.__mro__ }}"


def test_author_text_is_rendered_literally_never_as_a_template():
    msgs = judge_messages([EVIL, "plain"], query=EVIL, response_a=EVIL, response_b="b")
    user = msgs[-1]["content"]
    assert user.count("{{ 7*7 }}") == 3
    assert "49" not in user and "looploop" not in user
    assert "{% for x in range(3) %}" in user


def test_messages_have_system_and_user_and_text_has_prompt_block():
    r = PromptRenderer()
    msgs = r.messages("judge", context=["s1"], query="q", response_a="a", response_b="b")
    assert [m.role for m in msgs] == ["system", "user"]
    assert "<answer>A</answer>" in msgs[0].content
    doc = r.text("mimic", context=["one", "two"], query="q", opening="It began", genre="essay")
    assert doc.startswith("Text 1:\none") and doc.endswith("Text 3:\nIt began")


def test_missing_variable_is_an_error_not_an_empty_string():
    with pytest.raises(InputError, match="judge.j2:[0-9]+: 'response_b' is undefined"):
        PromptRenderer().messages("judge", context=["s"], query="q", response_a="a")


def test_override_dir_replaces_a_template_and_changes_its_hash(tmp_path):
    base = PromptRenderer()
    base_hash = base.template_hash("task")
    (tmp_path / "task.j2").write_text("{% block prompt %}Go on: {{ opening }}{% endblock %}")
    r = PromptRenderer(tmp_path)
    assert r.text("task", opening="Hi.", genre="x") == "Go on: Hi."
    assert r.template_hash("task") != base_hash
    assert r.template_hash("judge") == base.template_hash("judge")  # untouched templates keep theirs
    assert set(r.used_hashes()) == {"task", "judge"}


def test_hash_covers_included_templates(tmp_path):
    base = PromptRenderer().template_hash("judge")
    (tmp_path / "_samples.j2").write_text("{% for s in context %}* {{ s }}\n{% endfor %}")
    assert PromptRenderer(tmp_path).template_hash("judge") != base


def test_a_user_template_cannot_escape_the_sandbox(tmp_path):
    (tmp_path / "task.j2").write_text("{% block prompt %}{{ opening.__class__.__mro__[1].__subclasses__() }}{% endblock %}")
    with pytest.raises(InputError, match="task.j2:1: .*unsafe"):
        PromptRenderer(tmp_path).text("task", opening="x", genre="g")


def test_unknown_template_and_bad_dir_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PromptRenderer().text("no_such_template")
    with pytest.raises(InputError, match="not a folder"):
        PromptRenderer(tmp_path / "missing")


# ---------------------------------------------------------------- start-up checks


def test_a_missing_variable_names_the_template_file_and_line(tmp_path):
    (tmp_path / "preference.j2").write_text("{% block system %}\nWrite.\n{% endblock %}\n{% block user %}\n"
                                            "{{ query }}\n{{ author_name }}\n{% endblock %}\n")
    with pytest.raises(InputError) as err:
        PromptRenderer(tmp_path).messages("preference", context=["s"], query="q")
    assert str(err.value).startswith(f"{tmp_path / 'preference.j2'}:6: ") and "author_name" in str(err.value)


def test_a_syntax_error_in_an_included_template_names_that_file_and_line(tmp_path):
    (tmp_path / "_samples.j2").write_text("{% for s in context %}\n{{ s }\n{% endfor %}\n")
    with pytest.raises(InputError) as err:
        PromptRenderer(tmp_path).messages("judge", context=["s"], query="q", response_a="a", response_b="b")
    assert str(err.value).startswith(f"{tmp_path / '_samples.j2'}:2: "), str(err.value)


def test_a_template_that_is_not_utf8_is_an_input_error(tmp_path):
    (tmp_path / "task.j2").write_bytes(b"{% block prompt %}caf\xe9 {{ opening }}{% endblock %}")
    with pytest.raises(InputError, match="task.j2.*UTF-8"):
        PromptRenderer(tmp_path).text("task", opening="x", genre="g")


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OPENAI_API_KEY": KEY}
    return subprocess.run([sys.executable, "-m", "persrm_gen.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


BROKEN = {
    # preference.j2 is rendered only after every pair is paid for: the start-up check renders it first.
    "preference.j2": (("{% block system %}Write.{% endblock %}\n{% block user %}\n{{ query }}\n{{ author.name }}\n"
                       "{% endblock %}\n"), 4, "author"),
    "rationale_evidence.j2": ("{% block prompt %}\n{{ verdict }}\n{% if %}\n{% endblock %}\n", 3, "xpected"),
}


@pytest.mark.parametrize("name", ["preference.j2", "rationale_evidence.j2"])
def test_dry_run_renders_every_template_and_reports_one_line(tmp_path, name):
    text, line, word = BROKEN[name]
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / name).write_text(text)
    proc = _cli("build", "--authors", EXAMPLES, "--out", tmp_path / "out", "--backend", "openai", "--model", "m",
                "--prompts-dir", tmp_path / "prompts", "--dry-run")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'prompts' / name}:{line}: ") and word in lines[0], lines
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_a_broken_template_fails_the_build_before_any_request_is_paid(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "preference.j2").write_text(BROKEN["preference.j2"][0])
    with FakeServer() as server:
        proc = _cli("build", "--authors", EXAMPLES, "--out", tmp_path / "out", "--backend", "openai", "--model", "m",
                    "--base-url", server.openai_base, "--prompts-dir", tmp_path / "prompts", "--quiet")
        assert server.snapshot() == []
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "preference.j2:4: " in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_error_raised_by_template_code_is_the_templates(tmp_path):
    (tmp_path / "task.j2").write_text("{% block prompt %}\n{{ opening + 1 }}\n{% endblock %}")
    with pytest.raises(InputError, match=r"task.j2:2: "):
        PromptRenderer(tmp_path).text("task", opening="x", genre="g")


def test_one_sandboxed_environment_renders_prompts_and_the_card():
    """Prompts and the dataset card share jinja_sandbox's settings; no module builds its own."""
    pkg = Path(__file__).resolve().parents[1] / "persrm_gen"
    builders = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if "SandboxedEnvironment(" in p.read_text())
    assert builders == ["jinja_sandbox.py"]
    # author text is data: a sample holding template syntax comes out literally
    out = PromptRenderer().text("task", opening="{{ 7*7 }} {% raw %}", genre="g", query_is_prompt=False)
    assert "{{ 7*7 }} {% raw %}" in out


def test_the_cached_samples_block_follows_every_value_it_reads(tmp_path):
    # the samples block is rendered once per set of the values it reads: a user's
    # _samples.j2 reading more than `context` must not get another prompt's block
    (tmp_path / "_samples.j2").write_text("# Samples for {{ query }}\n{% for s in context %}\n{{ s }}\n{% endfor %}\n")
    r = PromptRenderer(tmp_path)
    for query in ("first question", "second question", "first question"):
        for context in (["one", "two"], ["one", "three"]):
            user = r.messages("judge", context=context, query=query, response_a="a", response_b="b")[-1]
            fresh = r.env.get_template("_samples.j2").render(context=context, query=query).strip()
            assert user.cache_prefix >= len(fresh) and user.content.startswith(fresh)

"""Prompt templates: sandboxed, strict, overridable, hashed; author text is data."""

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from persrm_gen.errors import InputError
from persrm_gen.judge_prompt import judge_messages
from persrm_gen.templating import PromptRenderer

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
    with pytest.raises(UndefinedError):
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
    with pytest.raises(SecurityError):
        PromptRenderer(tmp_path).text("task", opening="x", genre="g")


def test_unknown_template_and_bad_dir_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        PromptRenderer().text("no_such_template")
    with pytest.raises(InputError, match="not a folder"):
        PromptRenderer(tmp_path / "missing")

from persrm_gen.answer import format_ok, make_trace, parse_verdict, reasoning_of


def test_well_formed_trace():
    t = make_trace("Sentence length matches.", "B")
    assert format_ok(t) and parse_verdict(t) == "B" and reasoning_of(t) == "Sentence length matches."


def test_malformed_traces_are_rejected():
    assert parse_verdict("<answer>A</answer> then <answer>B</answer>") is None
    assert parse_verdict("the answer is A") is None
    assert not format_ok("<answer>A</answer>")  # no reasoning
    assert not format_ok("<think></think><answer>A</answer>")  # empty reasoning
    assert not format_ok("<think>x</think><answer>A</answer> trailing words")
    assert not format_ok("<answer>A</answer><think>x</think>")  # answer before reasoning
    assert not format_ok("<think>x</think><think>y</think><answer>A</answer>")
    assert parse_verdict("<answer> b </answer>") == "B"

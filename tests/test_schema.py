"""The output folder's contract names (configs, splits) are written once, in dataset/schema.py."""

from __future__ import annotations

import ast
from pathlib import Path

from persrm_gen.dataset.schema import CONFIGS, SCHEMAS, SPLITS, TEST_SPLITS, in_contract_order

PKG = Path(__file__).resolve().parents[1] / "persrm_gen"


def literal_name_lists(path: Path) -> list[tuple[int, set[str]]]:
    """(line, names) of every tuple, list or set literal of two or more strings in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        strings = isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
        if strings:
            found.append((node.lineno, {e.value for e in node.elts}))
    return found


def test_configs_and_splits_are_spelled_out_in_schema_only():
    twins = []
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "dataset" / "schema.py":
            continue
        for line, names in literal_name_lists(path):
            if names >= set(CONFIGS) or names >= set(TEST_SPLITS):
                twins.append(f"{path.relative_to(PKG)}:{line}: {sorted(names)}")
    assert not twins, "\n".join(twins)


def test_every_config_has_a_schema_and_train_comes_first():
    assert set(SCHEMAS) == set(CONFIGS)
    assert SPLITS[0] == "train" and TEST_SPLITS == SPLITS[1:]


def test_contract_order_first_then_others_by_name():
    assert in_contract_order({"zz", "test_unseen_genre", "aa", "train"}, SPLITS) == [
        "train", "test_unseen_genre", "aa", "zz"]  # fmt: skip


def test_a_pair_row_has_exactly_the_pairs_columns_and_says_which_side_is_real():
    from persrm_gen.dataset.writer import pair_row
    from persrm_gen.pipeline.pairs import make_pair
    from persrm_gen.records import REAL_SIDES, Candidate, Task

    task = Task(id="t", author_id="a", sample_id="1", genre="essay", split="train", query="q", target="x",
                context=("c",))
    sides = {}
    for chosen_source, rejected_source in [("author", "generated"), ("author", "other-author"),
                                           ("generated", "edited"), ("generated", "other-author")]:
        pair = make_pair(task, Candidate("t", "chosen", chosen_source, "real"),
                         Candidate("t", "rejected", rejected_source, "mimic"), margin=0.0)
        row = pair_row(pair)
        assert sorted(row) == sorted(SCHEMAS["pairs"].names)
        sides[chosen_source, rejected_source] = row["real_side"]
    assert sides == {("author", "generated"): "chosen", ("author", "other-author"): "both",
                     ("generated", "edited"): "neither", ("generated", "other-author"): "rejected"}
    assert set(sides.values()) == set(REAL_SIDES)

"""The end step's per-pair state is numpy columns (issue 12): the cross-shard check, the
compact rows, the blind audit and the style verdicts must give what dicts and lists gave."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from persrm_gen.dataset.blind_audit import FEATURES, audit
from persrm_gen.dataset.compact import FIELDS, SCHEMA, CompactRows, Verdicts
from persrm_gen.dataset.crosscheck import CrossShardCheck
from persrm_gen.dataset.minhash import candidate_pairs_from_keys
from persrm_gen.dataset.validators import exact_duplicates


def test_verdicts_behave_as_a_dict_updated_shard_by_shard():
    rng = random.Random(3)
    ids = [f"p{i}" for i in range(60)] + ["é-ü", "p1x", ""]
    plain, compact = {}, Verdicts()
    for _ in range(5):
        update = {rng.choice(ids): rng.choice(["A", "B", None]) for _ in range(20)}
        plain.update(update)
        compact.update(update)
        assert {k: compact.get(k, "missing") for k in ids} == {k: plain.get(k, "missing") for k in ids}
    assert len(compact) == len(plain) and sorted(compact) == sorted(plain)
    assert compact.get("p1xxxxxxxxxxxxxxxxx") is None  # wider than every id: never a truncated match


def _compact_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {name: rng.choice(["x", "y", "ä"]) for name in FIELDS}
        row.update(id=f"{rng.randrange(10**6):06d}-{'ö' if i % 7 == 0 else ''}{i}", author_id=f"a{rng.randrange(9)}",
                   split=rng.choice(["train", "train", "test_seen_authors", "test_unseen_authors"]),
                   strategy=rng.choice(["mimic", "other-author", "minimal-edit"]), genre=rng.choice(["essay", "speech"]),
                   style_margin=rng.uniform(-1, 3), rationale_ok=rng.random() < 0.7,
                   pair_features=[rng.gauss(0, 1) for _ in FEATURES], pair_longer=rng.choice([0.0, 0.5, 1.0]))
        rows.append(row)
    rows[3]["rationale_source"] = None  # a null in a string column
    return rows


def test_compact_rows_read_back_every_value_and_audit_as_the_dicts_do():
    rows = _compact_rows(300, 1)
    compact = CompactRows(pa.Table.from_pylist(rows, schema=SCHEMA))
    for row, back in zip(rows, compact):
        assert {k: back[k] for k in FIELDS} == {k: row[k] for k in FIELDS}
        assert [type(back[k]) for k in FIELDS] == [type(row[k]) for k in FIELDS]
        assert list(back["pair_features"]) == row["pair_features"] and back["pair_longer"] == row["pair_longer"]
    shuffled = rows[:]
    random.Random(2).shuffle(shuffled)
    assert audit(compact) == audit(shuffled) == audit(rows)  # any order, same numbers, from columns or dicts


def _pairs_row(i: int, rng: random.Random, pool: list[str]) -> dict:
    return dict(id=f"p{i:03d}", author_id=f"a{rng.randrange(4)}", genre="essay", split="train",
                label=rng.choice("AB"), chosen=rng.choice(pool), rejected=rng.choice(pool),
                chosen_source=rng.choice(["author", "generated"]), rejected_source=rng.choice(["generated", "author"]),
                context=[], sample_id=rng.choice(["s1", "s2", None]), strategy="mimic")


def test_the_cross_shard_exact_check_agrees_with_the_row_check_in_canonical_order(tmp_path):
    # texts far apart (no near duplicates) but often repeated: exact duplicates, a task's shared
    # positive, both orders of one pair; rows over three files in any order
    rng = random.Random(4)
    pool = [" ".join(f"w{rng.randrange(10**6)}" for _ in range(30)) for _ in range(25)]
    rows = [_pairs_row(i, rng, pool) for i in range(150)]
    expected = exact_duplicates(sorted(rows, key=lambda r: (r["author_id"], r["id"])))
    canonical = sorted(rows, key=lambda r: (r["author_id"], r["id"]))
    want = {canonical[i]["id"]: detail for i, detail in expected.items()}
    assert want  # the case is exercised
    order = list(range(3))
    rng.shuffle(order)
    check = CrossShardCheck()
    for k in order:
        path = tmp_path / f"f{k}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[k * 50 : (k + 1) * 50]), path)
        check.add_file(path)
    got = check.rejected()
    # (a repeat the exact check lets through, as a task's positive, can still be a near duplicate)
    assert {k: v[1] for k, v in got.items() if v[0] == "exact_duplicate"} == want
    author = {r["id"]: r["author_id"] for r in rows}
    assert list(got) == sorted(got, key=lambda i: (author[i], i))  # in the canonical order


def _mixed_row(i: int, rng: random.Random, pool: list[str]) -> dict:
    """A pairs row whose texts are often exact or near copies (one word of 60 changed) of a
    few shared texts: tasks' shared positives, rewrites of one chosen, both orders of a pair."""
    def text() -> str:
        base = rng.choice(pool)
        if rng.random() < 0.4:
            toks = base.split()
            toks[rng.randrange(len(toks))] += "x"
            return " ".join(toks)
        return base

    chosen_source = rng.choice(["author", "generated"])
    return dict(id=f"q{rng.randrange(10**4):04d}-{i}", author_id=f"a{rng.randrange(5)}", genre="essay",
                split="train", label=rng.choice("AB"), chosen=text(), rejected=text(),
                chosen_source=chosen_source, rejected_source=rng.choice(["generated", "edited", "author"]),
                context=[], sample_id=rng.choice(["s1", "s2", None]),
                strategy=rng.choice(["mimic", "minimal-edit", "axis-punctuation", "other-author"]))


def test_the_cross_shard_check_agrees_with_the_row_checks_on_exact_and_near_copies(tmp_path):
    # near copies planted across files, next to exact copies, a task's shared positive, its
    # rewrites (one family), mirrored pairs; over five files in any order the check must
    # reject what the row validators reject over the rows in canonical order, with the same details
    from persrm_gen.dataset.validators import near_duplicates

    for seed in range(6):
        rng = random.Random(seed)
        pool = [" ".join(f"w{rng.randrange(10**6)}" for _ in range(60)) for _ in range(12)]
        rows = [_mixed_row(i, rng, pool) for i in range(120)]
        for k in range(0, 120, 9):  # the other order of a pair, with the other label
            rows.append(dict(rows[k], id=f"m{k}", chosen=rows[k]["rejected"], rejected=rows[k]["chosen"],
                             label="B" if rows[k]["label"] == "A" else "A"))
        canonical = sorted(rows, key=lambda r: (r["author_id"], r["id"]))
        exact = exact_duplicates(canonical)
        survivors = [r for i, r in enumerate(canonical) if i not in exact]
        want = {canonical[i]["id"]: ("exact_duplicate", d) for i, d in exact.items()}
        want.update({survivors[i]["id"]: ("near_duplicate", d) for i, d in near_duplicates(survivors).items()})
        assert {v[0] for v in want.values()} == {"exact_duplicate", "near_duplicate"}  # both exercised
        files = list(range(5))
        rng.shuffle(files)
        for k in files:
            pq.write_table(pa.Table.from_pylist(rows[k::5]), tmp_path / f"s{seed}-f{k}.parquet")
        # the band keys' fingerprints as kept (32 bits), and so narrow that unrelated texts share
        # buckets (3 bits: buckets of ~25 texts; 1 bit: of ~100, split by the full keys)
        for mask in (None, 7, 1):
            check = CrossShardCheck()
            if mask is not None:
                check._print_mask = np.uint64(mask)
            for k in files:
                check.add_file(tmp_path / f"s{seed}-f{k}.parquet")
            got = check.rejected()
            assert got == want, (seed, mask)
            assert list(got) == [r["id"] for r in canonical if r["id"] in got]  # in the canonical order
            # the candidates are the full band keys' exactly, not a superset: a chance collision
            # changes a verdict only when LSH missed a pair above the threshold, so compare them
            use = check.t["valid"] & (np.arange(len(check.t["valid"])) % 7 != 3)
            full = check._sketches(np.arange(len(use)))[0]
            truth = candidate_pairs_from_keys(full, use)
            wanted, pairs, _ = check._candidates(use)
            assert wanted[pairs].tolist() == truth[check._proposable(truth)].tolist(), (seed, mask)


def test_candidates_merged_band_by_band_are_every_bucket_s_pairs():
    # few distinct keys: buckets of 2, of up to 32 (every pair) and above 32 (each member with
    # the one before and with the first), texts left out by ``valid``
    import itertools

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 40, size=(300, 4)).astype(np.uint64)
    keys[:, 3] = np.where(np.arange(300) < 120, 7, rng.integers(10**6, 10**9, size=300))  # one bucket of 120
    valid = rng.random(300) < 0.9
    keys[120:152, 2], valid[120:152] = 1000, True  # a bucket of exactly 32
    want = set()
    for b in range(keys.shape[1]):
        buckets: dict[int, list[int]] = {}
        for i in np.flatnonzero(valid).tolist():
            buckets.setdefault(int(keys[i, b]), []).append(i)
        for m in buckets.values():
            if len(m) <= 32:
                want.update(itertools.combinations(m, 2))
            else:
                want.update(zip(m, m[1:]))
                want.update((m[0], j) for j in m[2:])
    assert len(want) > 1000
    got = candidate_pairs_from_keys(keys, valid)
    assert [tuple(p) for p in got.tolist()] == sorted(want)

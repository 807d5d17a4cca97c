"""``persrm-gen build`` against a real OpenAI/Anthropic-speaking server on 127.0.0.1 (ours,
tests/fakeserver.py), through the CLI in a subprocess: LLM-written traces with label
consistency, injected faults, budget stops, SIGKILL and resume without paying twice."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest

from example_corpus import write_example_slice
from fakeserver import KEY, FakeServer

WORDS = "apple river quietly monument engine velvet harbor lantern orbit saddle tunnel meadow prism violin".split()


def _system(body: dict) -> str:
    if isinstance(body.get("system"), str):
        return body["system"]
    if isinstance(body.get("system"), list):  # Anthropic text blocks (with a cache breakpoint)
        return " ".join(b.get("text", "") for b in body["system"])
    return " ".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")


def persona(body: dict, text: str) -> str:
    """A deterministic stand-in for an instruction model: same request, same reply."""
    digest = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), 16)
    if "<answer>" in _system(body):  # the judge: a well-formed trace, right about two times in three
        verdict = "AB"[digest % 3 == 0]
        if hint := re.search(r"The author wrote Response ([AB])\.", text):  # --trace-hint: follows it
            verdict = hint.group(1)
        return ("<think>\nThe samples use long sentences and few contractions; one response keeps that "
                f"rhythm and vocabulary, the other does not.\n</think>\n<answer>{verdict}</answer>")
    if "# Text\n" in text:  # minimal edit or axis rewrite of a given text
        words = text.split("# Text\n", 1)[1].split()
        for i in range(0, len(words), 7):
            words[i] = WORDS[(digest + i) % len(WORDS)]
        return "Sure, here is the edited text:\n\n" + " ".join(words)
    rng = random.Random(digest)
    # follows the word budget roughly (70%-130%: some replies miss the window and are re-sampled),
    # in two paragraphs, with a tail cut mid-sentence
    budget = re.search(r"Write about (\d+) words", text)
    goal = int(int(budget.group(1)) * rng.uniform(0.7, 1.3)) if budget else 40
    sents: list[str] = []
    while sum(len(x.split()) for x in sents) < goal:
        sents.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ".")
    half = len(sents) // 2
    return "Here is the response:\n\n" + " ".join(sents[:half]) + "\n\n" + " ".join(sents[half:]) + " And then"


@pytest.fixture(scope="module")
def authors(tmp_path_factory) -> Path:
    return write_example_slice(tmp_path_factory.mktemp("in") / "authors.jsonl", first=3, last=2, samples=4)


def args(authors: Path, out: Path, server: FakeServer, *extra: str, backend: str = "openai") -> list[str]:
    model = "gpt-4.1-mini" if backend == "openai" else "claude-sonnet-4-5"
    base = ["--base-url", server.openai_base] if backend == "openai" else []
    return [sys.executable, "-m", "persrm_gen.cli", "build", "--authors", str(authors), "--out", str(out),
            "--backend", backend, "--model", model, *base, "--context-size", "2", "--test-authors", "1",
            "--timeout", "5", "--quiet", *extra]


def env(server: FakeServer) -> dict:
    return {**os.environ, "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url,
            "COLUMNS": "200"}


def run(cmd: list[str], server: FakeServer, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(server) | extra_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr}")
    return proc


def served(server: FakeServer):
    """Successful replies per distinct request body (a re-sample has a new seed: a new body)."""
    from collections import Counter

    return Counter(h.rid for h in server.snapshot() if h.fault is None and h.status == 200)


def data_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").rglob("*.parquet"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, authors):
    """An uninterrupted build, and what the server saw."""
    out = tmp_path_factory.mktemp("ref") / "out"
    with FakeServer(reply=persona) as server:
        proc = run(args(authors, out, server), server)
        assert "requests sent, 0 from cache, 0 failed)" in proc.stderr
        return out, served(server)


def test_llm_traces_are_label_consistent_and_resampled(reference):
    out, counts = reference
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejections"].get("trace_label_mismatch_resampled", 0) > 0
    pairs = datasets.load_dataset(str(out), "pairs", split="train")
    llm = [r for r in pairs if r["rationale_source"] == "llm"]
    assert llm and all(r["rationale"].endswith(f"<answer>{r['label']}</answer>") for r in llm)
    sft = datasets.load_dataset(str(out), "sft", split="train")
    assert len(sft) == sum(r["rationale_ok"] for r in pairs)
    assert all("Sure, here is" not in r["rejected"] and "Here is the response" not in r["rejected"] for r in pairs)
    assert manifest["usage"]["stages"]["rationale"]["requests"] > 0
    assert manifest["usage"]["total"]["input_tokens"] > 0
    assert KEY not in (out / "manifest.json").read_text() + (out / "README.md").read_text()
    assert max(counts.values()) == 1  # nothing was paid for twice


def test_faults_are_recovered_and_the_dataset_is_unchanged(tmp_path, authors, reference):
    ref_out, _ = reference
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        # fail a third of all requests once or twice, in every fault class
        faults = ["429", "500", "502", "503", "truncated", "reset", "empty", "cut"]
        original = server._fault_for
        server._fault_for = lambda rid, text, n: (  # noqa: E731
            [faults[int(rid, 16) % len(faults)], "500"][n] if int(rid, 16) % 3 == 0 and n < 2 else original(rid, text, n))
        run(args(authors, out, server, "--concurrency", "8"), server)
        hits = server.snapshot()
    assert any(h.fault for h in hits)
    assert data_digests(out) == data_digests(ref_out)


def test_sigkill_mid_run_then_resume_never_pays_twice(tmp_path, authors, reference):
    ref_out, ref_served = reference
    out = tmp_path / "out"
    with FakeServer(reply=persona, delay=0.05) as server:
        proc = subprocess.Popen(args(authors, out, server, "--concurrency", "4"), env=env(server),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while sum(served(server).values()) < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = sum(served(server).values())
        run(args(authors, out, server), server)
        counts = served(server)
    assert max(counts.values()) <= 2 and sum(c - 1 for c in counts.values()) <= 4  # only in-flight ones repeat
    assert sum(counts.values()) <= sum(ref_served.values()) + 4
    assert before >= 20
    assert data_digests(out) == data_digests(ref_out)


def test_max_requests_stops_cleanly_and_a_rerun_finishes(tmp_path, authors, reference):
    ref_out, _ = reference
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        stopped = run(args(authors, out, server, "--max-requests", "10"), server, check=False)
        assert stopped.returncode == 4, stopped.stderr
        assert "re-run the same command" in stopped.stderr.lower()
        assert len(server.snapshot()) <= 10
        assert not (out / "data").exists()
        run(args(authors, out, server), server)
    assert data_digests(out) == data_digests(ref_out)


def test_dry_run_and_missing_key_send_nothing(tmp_path, authors):
    with FakeServer(reply=persona) as server:
        proc = run(args(authors, tmp_path / "out", server, "--dry-run"), server)
        assert "requests to send" in proc.stderr + proc.stdout
        no_key = {k: v for k, v in env(server).items() if k != "OPENAI_API_KEY"}
        missing = subprocess.run(args(authors, tmp_path / "out2", server), capture_output=True, text=True, env=no_key)
        assert server.snapshot() == []
    assert missing.returncode == 2 and "OPENAI_API_KEY" in missing.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_anthropic_backend_builds_with_swap_check(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        # The output lies under the home folder, which the manifest and card must not spell out.
        run(args(authors, out, server, "--swap-check", backend="anthropic"), server, HOME=str(tmp_path))
        assert all(h.path == "/v1/messages" for h in server.snapshot())
    manifest = json.loads((out / "manifest.json").read_text())
    assert "--out ~/out" in manifest["command"]
    assert str(tmp_path) not in (out / "manifest.json").read_text() + (out / "README.md").read_text()
    assert manifest["swap_check"] is True
    assert manifest["rejections"].get("swap_inconsistent", 0) > 0


def test_sigint_stops_cleanly_with_a_resume_hint_and_the_rerun_finishes(tmp_path, authors, reference):
    ref_out, _ = reference
    out = tmp_path / "out"
    with FakeServer(reply=persona, delay=0.1) as server:
        proc = subprocess.Popen(args(authors, out, server, "--concurrency", "4"), env=env(server),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while sum(served(server).values()) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "re-run the same command" in stderr.lower() and "Traceback" not in stderr
        assert not (out / "data").exists()
        sent_before = len(server.snapshot())
        run(args(authors, out, server), server)
        assert max(served(server).values()) == 1  # in-flight writes were finished, nothing is paid twice
        assert len(server.snapshot()) > sent_before
    assert data_digests(out) == data_digests(ref_out)


def judge_without_think(body: dict, text: str) -> str:
    """A judge that skips the reasoning: every trace fails the format check."""
    reply = persona(body, text)
    return reply.split("</think>")[-1].strip() if "<answer>" in _system(body) else reply


def copy_build(src: Path, dst: Path, *, cache: bool = True) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=None if cache else shutil.ignore_patterns("cache.sqlite*"))
    return dst


def test_format_failures_are_paid_once_counted_and_never_bought_again(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=judge_without_think) as server:
        first = run(args(authors, out, server, "--max-failure-rate", "1"), server)
        hits = server.snapshot()
        judge = [h for h in hits if "<answer>" in _system(h.body)]
        # one identical retry per sample, then a new sample (attempt), up to --max-attempts (3)
        assert max(Counter(h.rid for h in judge).values()) == 2
        seeds_per_pair = Counter(h.text for h in judge)
        assert set(seeds_per_pair.values()) == {6}
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["usage"]["stages"]["rationale"]["requests"] == len(judge)  # every paid reply
        assert manifest["usage"]["total"]["requests"] == len(hits)
        assert f"{len(judge) // 2} failed" in first.stderr
        before = data_digests(out), (out / "manifest.json").read_bytes()

        (out / ".built").unlink()  # replay every stage from the cache, not the up-to-date stamp
        again = run(args(authors, out, server, "--max-failure-rate", "1"), server)
        assert len(server.snapshot()) == len(hits)  # an identical re-run buys nothing
        assert "(0 requests sent" in again.stderr
        assert (data_digests(out), (out / "manifest.json").read_bytes()) == before

        strict = run(args(authors, out, server), server, check=False)
        assert len(server.snapshot()) == len(hits)
    assert strict.returncode == 3, strict.stderr
    (line,) = strict.stderr.strip().splitlines()
    assert line.startswith("error: rationales: ") and "--max-failure-rate" in line and "invalid_output" in line


def test_a_server_answering_html_fails_the_build_with_exit_3(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=persona) as server:
        server._fault_for = lambda rid, text, n: "html"
        proc = run(args(authors, out, server), server, check=False)
        hits = server.snapshot()
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    # the first stage that sends requests: the positives (--positive mixed, the default)
    assert line.startswith("error: positives: ") and "invalid JSON body" in line and "Traceback" not in proc.stderr
    assert hits and not any("<answer>" in _system(h.body) for h in hits)  # stopped at the failed stage
    assert not (out / "data").exists()


def test_a_deleted_cache_beside_a_manifest_is_refused_unless_new_cache(tmp_path, authors, reference):
    ref_out, _ = reference
    out = copy_build(ref_out, tmp_path / "out", cache=False)
    with FakeServer(reply=persona) as server:
        refused = run(args(authors, out, server), server, check=False)
        assert server.snapshot() == []
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "cache.sqlite" in line and "--new-cache" in line
        assert not (out / "cache.sqlite").exists()
        run(args(authors, out, server, "--new-cache"), server)
        assert server.snapshot()
    assert data_digests(out) == data_digests(ref_out)


def test_a_corrupt_cache_is_one_line_and_exit_2(tmp_path, authors, reference):
    ref_out, _ = reference
    out = copy_build(ref_out, tmp_path / "out", cache=False)
    (out / "cache.sqlite").write_bytes(b"garbage" * 1000)
    with FakeServer(reply=persona) as server:
        proc = run(args(authors, out, server), server, check=False)
        assert server.snapshot() == []
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"mv {out}/cache.sqlite {out}/cache.sqlite.bad" in line and "--new-cache" in line


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_a_nonpositive_timeout_is_refused(tmp_path, authors, timeout):
    with FakeServer(reply=persona) as server:
        cmd = args(authors, tmp_path / "out", server)
        cmd[cmd.index("--timeout") + 1] = timeout
        proc = run(cmd, server, check=False)
        assert server.snapshot() == []
    assert proc.returncode == 2 and "--timeout" in proc.stderr and "Traceback" not in proc.stderr


def flaky_writer(body: dict, text: str) -> str:
    """Half of the rewrite samples are only a preamble (nothing usable); judges are fine."""
    if "<answer>" not in _system(body) and hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()[0] % 2:
        return "Sure, here is the text:"
    return persona(body, text)


def test_unusable_rewrites_are_resampled_and_never_bought_again(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=flaky_writer) as server:
        run(args(authors, out, server, "--max-failure-rate", "1"), server)
        hits = server.snapshot()
        writes = [h for h in hits if "<answer>" not in _system(h.body)]
        assert max(Counter(h.rid for h in writes).values()) == 2  # one identical retry per sample
        samples = Counter(h.text for h in writes)  # a text sent with several seeds was re-sampled
        assert max(samples.values()) > 2 and max(samples.values()) <= 2 * 3  # --max-attempts 3
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["usage"]["total"]["requests"] == len(hits)
        before = data_digests(out)
        run(args(authors, out, server, "--max-failure-rate", "1"), server)
        assert len(server.snapshot()) == len(hits)
    assert data_digests(out) == before


def test_another_server_with_the_same_model_name_is_another_model(tmp_path, authors, reference):
    ref_out, ref_served = reference
    out = copy_build(ref_out, tmp_path / "out")
    ref_url = json.loads((ref_out / "manifest.json").read_text())["base_url"]
    # The reference server is gone and the OS may hand its port to the next one: that
    # would be the same server address, so take a second server that surely differs.
    with FakeServer(reply=persona) as first, FakeServer(reply=persona) as second:
        other = second if first.openai_base == ref_url else first
        proc = run(args(authors, out, other), other)
        assert sum(served(other).values()) == sum(ref_served.values())  # nothing came from the first server's cache
    assert "0 from cache" in proc.stderr
    assert json.loads((out / "manifest.json").read_text())["base_url"] == other.openai_base


def _pair_rows(out: Path) -> list[dict]:
    pairs = datasets.load_dataset(str(out), "pairs")
    return [r for split in pairs.values() for r in split]


def _assert_in_form(rows: list[dict]) -> None:
    """Every negative within ±15% of its positive's words, ending and laid out like it."""
    from persrm_gen.generator.form import bounds, ends_clean
    from persrm_gen.style import n_words

    for r in rows:
        lo, hi = bounds(n_words(r["chosen"]))
        assert lo <= n_words(r["rejected"]) <= hi, (r["strategy"], n_words(r["chosen"]), r["rejected"])
        assert ends_clean(r["rejected"]) == ends_clean(r["chosen"]), r["rejected"]
        if r["strategy"] != "axis-structure":
            assert r["rejected"].count("\n") == r["chosen"].count("\n"), r["rejected"]


def test_negatives_meet_the_length_tolerance_and_keep_the_paragraphing(reference):
    out, _ = reference
    rows = _pair_rows(out)
    _assert_in_form(rows)
    strategies = Counter(r["strategy"] for r in rows)
    assert strategies["mimic"] and strategies["randomize"]  # generated negatives were brought in, not all dropped
    # mixed positives (the default): real ones face edits of themselves ("chosen") and the other
    # author's real text ("both"); generated ones face generated negatives only ("neither")
    assert {r["real_side"] for r in rows} == {"chosen", "both", "neither"}


def punctuating(body: dict, text: str) -> str:
    """``persona``, but a rewrite changes punctuation only: a near copy of its source (the
    word shingles of the near-duplicate check ignore punctuation, Jaccard 1.0)."""
    if "# Text\n" in text and "<answer>" not in _system(body):
        digest = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), 16)
        words = text.split("# Text\n", 1)[1].split()  # commas at places of the request's own choosing
        return "Sure, here is the edited text:\n\n" + " ".join(w + "," * (digest >> i & 1) for i, w in enumerate(words))
    return persona(body, text)


def test_rewrites_of_a_generated_positive_are_not_dropped_as_its_near_duplicates(tmp_path, authors):
    # the task's other pairs hold the generated positive as their chosen; its own rewrites
    # are near copies of it by design (issue 13: every axis pair of a mixed build was lost)
    with FakeServer(reply=punctuating) as server:
        run(args(authors, tmp_path / "out", server, "--positive", "mixed", "--mixed-share", "1"), server)
    rows = _pair_rows(tmp_path / "out")
    rewrites = [r for r in rows if r["strategy"].startswith(("axis-", "minimal-edit"))]
    assert rewrites and all(r["chosen_source"] == "generated" for r in rewrites)
    assert any(r["strategy"].startswith("axis-") for r in rewrites)
    rejections = json.loads((tmp_path / "out" / "manifest.json").read_text())["rejections"]
    assert rejections.get("near_duplicate", 0) == 0, rejections


def test_mixed_positives_are_recorded_and_the_same_seed_gives_the_same_rows(tmp_path, authors):
    with FakeServer(reply=persona) as server:
        for name in ("a", "b"):
            run(args(authors, tmp_path / name, server, "--positive", "mixed"), server)
    assert data_digests(tmp_path / "a") == data_digests(tmp_path / "b")
    rows = _pair_rows(tmp_path / "a")
    _assert_in_form(rows)
    by_kind = Counter(r["chosen_strategy"] for r in rows)
    assert by_kind["real"] and by_kind["style-matched"]
    for r in rows:
        generated = r["chosen_strategy"] == "style-matched"
        assert r["chosen_source"] == ("generated" if generated else "author")
        assert r["real_side"] in (("neither", "rejected") if generated else ("chosen", "both"))
        if not generated:  # a real positive faces human text and edits of itself, never a whole machine text
            assert r["strategy"] not in ("mimic", "randomize"), r
    # a generated positive faces a weaker mimic (one author sample): machine text on both sides
    assert any(r["chosen_strategy"] == "style-matched" and r["strategy"] == "mimic" for r in rows)
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["positive"] == "mixed"


def test_an_up_to_date_folder_is_left_alone_and_any_change_rebuilds_it(tmp_path, authors, reference):
    """The ``.built`` stamp (pipeline/uptodate.py) skips only work whose result is verifiably
    on disk: the same command, the same inputs, every published file as it was written."""
    ref_out, _ = reference
    mine, out = tmp_path / "authors.jsonl", tmp_path / "out"
    mine.write_bytes(authors.read_bytes())
    with FakeServer(reply=persona) as server:
        run(args(mine, out, server), server)
        paid = len(server.snapshot())
        built = data_digests(out), (out / "manifest.json").read_bytes(), (out / "README.md").read_bytes()
        assert data_digests(out) == data_digests(ref_out)

        same = run(args(mine, out, server), server)
        assert "up to date" in same.stderr and len(server.snapshot()) == paid

        shard = sorted((out / "data" / "pairs").glob("train-*.parquet"))[0]
        shard.write_bytes(shard.read_bytes()[:-10])  # a damaged file: rebuilt from the cache
        fixed = run(args(mine, out, server), server)
        assert "(0 requests sent" in fixed.stderr and len(server.snapshot()) == paid
        assert (data_digests(out), (out / "manifest.json").read_bytes(), (out / "README.md").read_bytes()) == built

        other = run(args(mine, out, server, "--concurrency", "7"), server)  # another command
        assert "(0 requests sent" in other.stderr
        assert "--concurrency 7" in json.loads((out / "manifest.json").read_text())["command"]

        # other inputs under the same command text: a new fingerprint, so a real build
        mine.write_text(mine.read_text(encoding="utf-8").replace(" the ", " The ", 1), encoding="utf-8")
        edited = run(args(mine, out, server, "--concurrency", "7"), server)
        assert "up to date" not in edited.stderr and len(server.snapshot()) > paid


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_a_generated_positive_faces_a_generated_other_author_and_a_real_one_the_real_text(tmp_path, authors, reference):
    """Another author's real text on the rejected side of a machine-written chosen is the
    "human text loses" cue: under a generated positive the other-author negative is a
    generation conditioned on one other author's samples of the genre, drawn without leakage."""
    with FakeServer(reply=persona) as server:
        run(args(authors, tmp_path / "out", server, "--positive", "mixed"), server)
        hits = [h for h in server.snapshot() if h.fault is None and h.status == 200]
    rows = _pair_rows(tmp_path / "out")
    other = [r for r in rows if r["strategy"] == "other-author"]
    facing_generated = [r for r in other if r["chosen_strategy"] == "style-matched"]
    assert facing_generated and len(facing_generated) < len(other)
    for r in other:
        generated = r["chosen_strategy"] == "style-matched"
        assert r["rejected_source"] == ("generated" if generated else "other-author")
        assert r["real_side"] == ("neither" if generated else "both")
    usage = json.loads((tmp_path / "out" / "manifest.json").read_text())["usage"]["stages"]
    assert usage["other-author"]["requests"] >= len(facing_generated)

    samples_of = {}  # normalised sample text -> (author, genre)
    for line in authors.read_text().splitlines():
        a = json.loads(line)
        for s in a["samples"]:
            samples_of[_norm(s["text"])] = (a["author_id"], s.get("genre", ""))
    unseen = {r["author_id"] for r in rows if r["split"] == "test_unseen_authors"}
    tasks = {r["query"]: r for r in rows}
    seen = 0
    for h in hits:
        if "imitate another author's style" not in _system(h.body):
            continue  # mimic.j2 serves mimic and generated other-author negatives alike
        shown = [_norm(s) for s in re.split(r"\n## Sample \d+\n", h.text.split("\n# Task\n")[0])[1:]]
        query = h.text.split("\n# Task\n", 1)[1].split("\n\nWrite a response", 1)[0]
        task = tasks.get(query)
        writers = {src for s in shown for full, src in samples_of.items() if full.startswith(s)}
        assert shown and len(writers) == 1, writers  # every sample is a text of one author
        ((writer, genre),) = writers
        if task is None or writer == task["author_id"]:
            continue  # the task's own mimic (or a task whose pairs were all dropped)
        seen += 1
        assert genre == task["genre"]
        assert len(shown) <= len(task["context"])
        if task["split"] in ("train", "test_seen_authors"):
            assert writer not in unseen  # no unseen author's text reaches a train row
    assert seen >= len(facing_generated)


def test_real_positives_keep_the_real_other_author_text(reference):
    out, _ = reference
    rows = _pair_rows(out)
    other = [r for r in rows if r["strategy"] == "other-author"]
    real = [r for r in other if r["chosen_source"] == "author"]
    assert real and all(r["rejected_source"] == "other-author" and r["real_side"] == "both" for r in real)
    assert all(r["rejected_source"] == "generated" for r in other if r["chosen_source"] == "generated")


def _query(text: str) -> str:
    return text.split("\n# Task\n", 1)[1].split("\n\nWrite ", 1)[0]


def _copies_always(query: str) -> bool:
    """The tasks whose generated positive copies the context on every sample (the others on
    their first sample only): a fixed half, by a hash of the task's query."""
    return hashlib.sha256(query.encode()).digest()[0] % 2 == 0


class Copying:
    """``persona``, but a style-matched positive copies its first context sample word for word
    (as the embedded base model sometimes does): every sample of some tasks, the first sample
    only of the others (a re-sample, with a new seed, is then the persona's own text).
    ``short=True``: it stops after a few words instead (a quarter of its word budget, one
    sentence), as the base model did on half the PEP targets."""

    def __init__(self, short: bool = False) -> None:
        self.first_seed: dict[str, int] = {}  # positive prompt text -> the seed of its first sample
        self.short = short

    def __call__(self, body: dict, text: str) -> str:
        if "ghostwriter" not in _system(body):
            return persona(body, text)
        first = self.first_seed.setdefault(text, body["seed"])
        if body["seed"] != first and not _copies_always(_query(text)):
            return persona(body, text)
        sample = re.split(r"\n## Sample \d+\n", text.split("\n# Task\n")[0])[1]
        budget = int(re.search(r"Write about (\d+) words", text).group(1))
        if self.short:
            return "Here is the response:\n\n" + " ".join(persona(body, text).split()[:max(5, budget // 4)]) + "."
        return "Here is the response:\n\n" + " ".join(sample.split()[:budget])


def _positive_prompts(server: FakeServer) -> Counter:
    """Distinct samples (seeds) bought per style-matched positive prompt."""
    bodies = {(h.text, h.body["seed"]) for h in server.snapshot()
              if h.fault is None and h.status == 200 and "ghostwriter" in _system(h.body)}
    return Counter(text for text, _ in bodies)


@pytest.mark.parametrize("short", [False, True], ids=["copying", "short"])
def test_a_mixed_positive_that_copies_the_context_is_resampled_then_falls_back_to_the_real_text(tmp_path, authors,
                                                                                                 short):
    """Issue 13: a generated positive copying >= 12 words of its context was only rejected at
    row validation (``leakage``), after its negatives were bought. It is now re-sampled up to
    --max-attempts; still copying under --positive mixed, the task's positive is the author's
    real text (counted as ``positive_fallback_real``), with the negatives of a real positive.
    So is one far shorter than the author's target (``too_short``): its pairs would hold a
    sentence or two of style evidence, and a margin too noisy to keep."""
    out = tmp_path / "out"
    with FakeServer(reply=Copying(short=short)) as server:
        run(args(authors, out, server, "--positive", "mixed", "--mixed-share", "1"), server)
        prompts = _positive_prompts(server)
        always = {_query(t) for t in prompts if _copies_always(_query(t))}
        assert always and len(always) < len(prompts)  # both kinds of task occur
        for text, seeds in prompts.items():
            assert seeds == (3 if _query(text) in always else 2), _query(text)  # --max-attempts 3
        paid = len(server.snapshot())
        before = data_digests(out)
        run(args(authors, out, server, "--positive", "mixed", "--mixed-share", "1"), server)
        assert len(server.snapshot()) == paid  # a re-run buys nothing
    assert data_digests(out) == before
    rows = _pair_rows(out)
    rejections = json.loads((out / "manifest.json").read_text())["rejections"]
    assert rejections.get("leakage", 0) == 0, rejections
    assert rejections["positive_fallback_real"] == len(always)
    fallen = [r for r in rows if r["query"] in always]
    kept = [r for r in rows if r["query"] not in always]
    assert fallen and kept
    assert all(r["chosen_source"] == "author" and r["chosen_strategy"] == "real" for r in fallen)
    assert all(r["rejected_source"] == "other-author" for r in fallen if r["strategy"] == "other-author")
    assert all(r["chosen_source"] == "generated" for r in kept)


def test_a_style_matched_positive_that_keeps_copying_the_context_drops_its_task(tmp_path, authors):
    out = tmp_path / "out"
    with FakeServer(reply=Copying()) as server:
        run(args(authors, out, server, "--positive", "style-matched"), server)
        prompts = _positive_prompts(server)
        always = {_query(t) for t in prompts if _copies_always(_query(t))}
        assert always and len(always) < len(prompts)
        negatives = [h for h in server.snapshot() if _system(h.body) and "ghostwriter" not in _system(h.body)
                     and "<answer>" not in _system(h.body)]
        assert not any(_query(h.text) in always for h in negatives if "\n# Task\n" in h.text)  # none bought
    rows = _pair_rows(out)
    rejections = json.loads((out / "manifest.json").read_text())["rejections"]
    assert rejections["leakage_positive"] == len(always)
    assert rejections.get("leakage", 0) == 0 and "positive_fallback_real" not in rejections
    assert rows and not any(r["query"] in always for r in rows)
    assert all(r["chosen_source"] == "generated" for r in rows)

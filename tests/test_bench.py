"""The GPU throughput benchmark's own code path, run small on the CPU (the GPU run has no second chance)."""

from __future__ import annotations

import json

from persrm_gen.trainers import bench


def test_bench_runs_every_cpu_variant_and_saves_its_numbers(tmp_path):
    results = bench.main(["--out", str(tmp_path), "--tiny", "--sft-steps", "2", "--grpo-steps", "2"])
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(results))
    assert results["gpu"] == "cpu" and results["shapes"]["sft_batch"] == bench.TINY.sft_batch
    for name in ("sft_plain", "sft_fast"):
        r = results[name]
        assert "error" not in r, r
        assert r["steps"] == 2 and r["tokens"] > 0 and r["tokens_per_s"] > 0
    # Padding is not counted, so packing sees the same real tokens as padded batches.
    assert results["sft_plain"]["tokens"] == results["sft_fast"]["tokens"]
    for name in ("grpo_plain", "grpo_paged"):
        r = results[name]
        assert "error" not in r, r
        assert len(r["step_times"]) == 2 and r["s_per_step"] > 0
        assert 0 < r["mean_completion_tokens"] <= bench.TINY.completion_tokens
    assert results["sft_compiled"] == {"skipped": "GPU only"}
    assert results["grpo_paged_graphs"] == {"skipped": "GPU only"}

"""Data parallel without code of our own: two CPU processes (gloo) through torchrun,
the launcher that ``accelerate launch`` wraps, running the trainers' module entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from trainers_data import trainer_workspace


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return trainer_workspace(tmp_path_factory.mktemp("ddp"))


def launch(module: str, *args, processes: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", module, *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_sft_then_rft_on_two_processes_write_one_model_each(work):
    sft, rft = work / "sft", work / "rft"
    proc = launch("persrm_gen.trainers.sft", "--data", work / "data", "--model", work / "tiny", "--out", sft,
                  "--max-steps", 3, "--batch-size", 2, "--lr", 1e-2)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((sft / "persrm_train.json").read_text())
    assert info["num_processes"] == 2 and info["global_step"] == 3
    assert load_file(str(sft / "model.safetensors"))  # one complete model, written by rank 0
    assert "(SFT)" in (sft / "README.md").read_text()

    # 2 completions per process x 2 processes = one group of 4: allowed across processes.
    proc = launch("persrm_gen.trainers.rft", "--data", work / "data", "--model", sft, "--out", rft,
                  "--max-steps", 2, "--batch-size", 2, "--num-generations", 4, "--max-completion-length", 8)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((rft / "persrm_train.json").read_text())["num_processes"] == 2
    assert (rft / "model.safetensors").is_file()


def test_module_entry_point_keeps_the_cli_error_contract(work, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "persrm_gen.trainers.rft", "--data", str(work / "data"),
                           "--model", str(work / "tiny"), "--out", str(tmp_path / "o"), "--batch-size", "3",
                           "--num-generations", "2"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert "must be a multiple of --num-generations" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "o").exists()

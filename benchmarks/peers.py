"""Requests/s of our client against distilabel and bespokelabs-curator on the same loopback server.

    python benchmarks/peers.py                        # installs the peers once, then 64/256/1024
    python benchmarks/peers.py --rows fast,curator --levels 256 --repeat 3
    python benchmarks/peers.py --setup-only           # just build benchmarks/.envs/{distilabel,curator}

The workload is client_throughput.py's: benchmarks/fake_openai_server.py (own process) answers
every chat completion after 200 ms; 2,000 requests per level, 8,000 at 1,024 in flight; every
prompt unique per run so no cache answers. Rows:

  fast        ours: client_throughput.py's ``fast`` row (imported, not copied), everything on
  curator     bespokelabs-curator 0.1.31, backend="openai", max_concurrent_requests=in-flight
  distilabel  distilabel 1.5.3 OpenAILLM.generate_outputs on batches of in-flight size (the
              way its steps call the LLM, without the pipeline: distilabel's best case)
  distilabel-pipeline  distilabel 1.5.3 Pipeline: LoadDataFromDicts >> ChatGeneration with
              input_batch_size = in-flight (how distilabel is used)

Each peer runs in its own virtual environment under benchmarks/.envs/ (gitignored), created
here with ``python -m venv`` + pip, never with torch in it (checked after install), through a
small driver in benchmarks/peers/ that times the batch itself (after imports and setup, which
favours the peers; setup time is reported apart). Runs are interleaved (round-robin over
rows and levels) so load from other jobs hits every row alike; each cell is the best of
``--repeat`` rounds. Results also go to benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import client_throughput as ct  # noqa: E402  (puts the repo root on sys.path too)

ENVS = HERE / ".envs"
DRIVERS = HERE / "peers"
SYSTEM = "You judge style."  # the system message client_throughput.requests_for sends


@dataclass(frozen=True)
class Env:
    name: str
    packages: tuple[str, ...]

    @property
    def python(self) -> Path:
        return ENVS / self.name / "bin" / "python"


ENV_SPECS = {
    # distilabel's OpenAILLM needs the openai extra; 1.5.3 imports `requests` without declaring it.
    "distilabel": Env("distilabel", ("distilabel[openai]==1.5.3", "requests")),
    # curator's own deps carry no torch; its torch path is the optional `vllm` extra, not installed.
    "curator": Env("curator", ("bespokelabs-curator==0.1.31",)),
}


@dataclass(frozen=True)
class Peer:
    env: Env
    driver: Path


PEERS = {
    "curator": Peer(ENV_SPECS["curator"], DRIVERS / "curator_driver.py"),
    # distilabel's LLM driven directly, batch after batch: its best case.
    "distilabel": Peer(ENV_SPECS["distilabel"], DRIVERS / "distilabel_driver.py"),
    # distilabel as used: a Pipeline (one process per step) with ChatGeneration.
    "distilabel-pipeline": Peer(ENV_SPECS["distilabel"], DRIVERS / "distilabel_pipeline_driver.py"),
}


# ---- virtual environments ------------------------------------------------------------------

def ensure_env(env: Env) -> None:
    """Create the peer's venv once; the marker file records what was installed."""
    marker = ENVS / env.name / ".installed"
    if marker.exists() and marker.read_text() == " ".join(env.packages):
        return
    print(f"installing {env.name} into {ENVS / env.name} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENVS / env.name)], check=True)
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", *env.packages], check=True)
    if _has_module(env, "torch"):
        raise SystemExit(f"{env.name}: its install pulled torch; refusing to benchmark with it")
    marker.write_text(" ".join(env.packages))


def _has_module(env: Env, module: str) -> bool:
    code = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    out = subprocess.run([str(env.python), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def tiktoken_dir(env: Env) -> str:
    """The folder of the cl100k_base file litellm bundles (tiktoken's cache name for it).

    curator counts tokens with tiktoken, which would download cl100k_base on first use;
    pointing TIKTOKEN_CACHE_DIR at litellm's copy keeps the run offline.
    """
    pattern = str(ENVS / env.name / "lib" / "python*" / "site-packages" / "litellm" / "**"
                  / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
    hits = glob.glob(pattern, recursive=True)
    if not hits:
        raise SystemExit(f"{env.name}: no bundled cl100k_base file under litellm ({pattern})")
    return str(Path(hits[0]).parent)


def peer_env(env: Env, scratch: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CURATOR_"))}
    out.update({
        "OPENAI_API_KEY": "EMPTY",
        "TELEMETRY_ENABLED": "false",  # curator's posthog client
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm would fetch its price map at import
        "CURATOR_DISABLE_RICH_DISPLAY": "1",
        "CURATOR_CACHE_DIR": os.path.join(scratch, "curator"),
        "HF_DATASETS_CACHE": os.path.join(scratch, "hf-datasets"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    })
    if env.name == "curator":
        out["TIKTOKEN_CACHE_DIR"] = tiktoken_dir(env)
    return out


# ---- measuring -----------------------------------------------------------------------------

def measure_peer(peer: Peer, base: str, n: int, conc: int, scratch: str) -> tuple[float, float]:
    """(requests/s, setup seconds) for one batch through the peer's driver."""
    spec = {"base": base, "n": n, "conc": conc, "tag": f"{peer.driver.stem}-{time.time_ns()}",
            "model": ct.MODEL, "system": SYSTEM, "prompt": ct.PROMPT}
    proc = subprocess.run([str(peer.env.python), str(peer.driver), json.dumps(spec)], capture_output=True,
                          text=True, env=peer_env(peer.env, scratch), cwd=scratch, timeout=900)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"{peer.driver.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1])
    if result["ok"] != n:
        raise RuntimeError(f"{peer.driver.name}: {result['ok']} of {n} requests came back with text")
    return n / result["seconds"], result["setup_seconds"]


def measure(row: str, base: str, n: int, conc: int, scratch: str) -> tuple[float, float]:
    if row == "fast":
        return ct.measure("fast", base, n, conc, scratch), 0.0
    return measure_peer(PEERS[row], base, n, conc, scratch)


def run_all(rows: list[str], levels: list[int], args: argparse.Namespace, base: str) -> dict:
    best: dict[str, dict[int, float]] = {r: {} for r in rows}
    runs: dict[str, dict[int, list[float]]] = {r: {c: [] for c in levels} for r in rows}
    setup: dict[str, list[float]] = {r: [] for r in rows}
    for round_ in range(args.repeat):
        for conc in levels:
            n = args.n_1024 if conc >= 1024 else args.n
            for row in rows:
                with tempfile.TemporaryDirectory() as scratch:
                    rps, setup_s = measure(row, base, n, conc, scratch)
                runs[row][conc].append(rps)
                setup[row].append(setup_s)
                best[row][conc] = max(best[row].get(conc, 0.0), rps)
                print(f"round {round_ + 1}: {row:>10} @ {conc:>4} in flight: {rps:7.0f} req/s", flush=True)
    return {"best": best, "runs": runs, "setup_seconds": setup}


def print_table(best: dict[str, dict[int, float]], levels: list[int]) -> None:
    names = {"fast": "**ours (fast, all on)**", "curator": "curator 0.1.31",
             "distilabel": "distilabel 1.5.3 (LLM, batch by batch)",
             "distilabel-pipeline": "distilabel 1.5.3 (Pipeline + ChatGeneration)"}
    print("\n| row | " + " | ".join(f"{c} in flight" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for row, cells in best.items():
        print(f"| {names.get(row, row)} | " + " | ".join(f"{cells[c]:.0f}" for c in levels) + " |")
    peers = [r for r in best if r != "fast"]
    if "fast" in best and peers:
        ratios = [best["fast"][c] / max(best[p][c] for p in peers) for c in levels]
        print("| ours / best peer | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="fast,curator,distilabel,distilabel-pipeline")
    ap.add_argument("--levels", default="64,256,1024")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-1024", type=int, default=8000)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--setup-only", action="store_true")
    args = ap.parse_args()
    rows = args.rows.split(",")
    levels = [int(x) for x in args.levels.split(",")]
    for env in {PEERS[r].env for r in rows if r in PEERS}:
        ensure_env(env)
    if args.setup_only:
        return
    server, base = ct.start_server(args.delay)
    try:
        result = run_all(rows, levels, args, base)
    finally:
        server.terminate()
    print_table(result["best"], levels)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    load = os.getloadavg()
    (out / "peers.json").write_text(json.dumps(
        {"cpus": os.cpu_count(), "loadavg_at_end": load, "delay": args.delay, **result}, indent=2))
    print(f"\n{os.cpu_count()} CPUs, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# One prepared GPU check of the trainers (< 8 min on one H100; no network needed).
#
#   bash benchmarks/gpu_wheels.sh                     # here, once: fetch the missing wheels into .whl/
#   bash benchmarks/gpu_check.sh                      # there: writes $OUT/bench.json (default ./bench-out)
#
# With the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540).
# Installs the carried wheels (WHEELS, default .whl) into /tmp/site without touching the
# machine's CUDA torch, then measures on the Gemma 3 270M architecture in bf16 each
# trainer variant of persrm_gen/trainers/bench.py:
#   SFT  tokens/s  (~1000-token rows, batch 16)      baseline plain TRL on H100: 62.8k tok/s, target 2x
#   GRPO s/step    (32 completions of 256 tokens)    baseline plain TRL on H100: 16.9 s/step, target 4x
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench-out}"
mkdir -p "$OUT_DIR"
WHEELS="${WHEELS:-.whl}"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no wheels in $WHEELS: using what the machine has" >&2
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 - <<'PY' | tee "$OUT_DIR/versions.txt"
import importlib.util as u
import torch, transformers, trl, datasets, accelerate, pyarrow
assert torch.cuda.is_available(), "no CUDA torch"
print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__,
      "datasets", datasets.__version__, "accelerate", accelerate.__version__, "pyarrow", pyarrow.__version__,
      "flash_attn", u.find_spec("flash_attn") is not None, "liger", u.find_spec("liger_kernel") is not None,
      "vllm", u.find_spec("vllm") is not None)
PY

# 7 minutes at most for the measurements; bench.json is saved after each variant.
set +e
# Models and checkpoints go to a scratch folder; only the report and log land in OUT.
WORK="${BENCH_WORK:-/tmp/persrm-bench}"
timeout 420 python3 -m persrm_gen.trainers.bench --out "$WORK" --sft-steps 20 --grpo-steps 3 \
  > "$OUT_DIR/log.txt" 2>&1
echo "bench exit status $?"
set -e
cp "$WORK/bench.json" "$OUT_DIR/bench.json"
grep -v "it/s\]" "$OUT_DIR/log.txt" | tail -30
python3 - "$OUT_DIR/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"GPU: {r.get('gpu')}")
for name, v in r.items():
    if not isinstance(v, dict) or name == "shapes":
        continue
    if "tokens_per_s" in v:
        print(f"{name:18} {v['tokens_per_s']:>10.0f} tokens/s  x{v['tokens_per_s'] / 62800:.2f} of the 62.8k baseline")
    elif "s_per_step" in v:
        print(f"{name:18} {v['s_per_step']:>10.2f} s/step    x{16.9 / v['s_per_step']:.2f} of the 16.9 s baseline")
    else:
        print(f"{name:18} {v}")
PY

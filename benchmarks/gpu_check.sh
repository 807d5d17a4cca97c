#!/usr/bin/env bash
# One prepared GPU check of the trainers (< 8 min on one H100; no network needed).
#
#   bash benchmarks/gpu_check.sh            # writes $OUT/bench.json (default: $OUT or ./bench-out)
#
# Installs what is missing from wheels placed beside the checkout (WHEELS, default
# shared/wheels or ../wheels; never torch: the machine's CUDA torch is kept), then
# measures on the Gemma 3 270M architecture in bf16, each trainer plain vs fast:
#   SFT  tokens/s  (~1000-token rows, batch 16)        baseline plain TRL on H100: 62.8k tok/s, target 2x
#   GRPO s/step    (32 completions of 256 tokens)      baseline plain TRL on H100: 16.9 s/step, target 4x
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench-out}"
mkdir -p "$OUT_DIR"
WHEELS="${WHEELS:-}"
for cand in shared/wheels ../wheels wheels; do
  if [ -z "$WHEELS" ] && [ -d "$cand" ]; then WHEELS="$cand"; fi
done

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA torch'; print('torch', torch.__version__)"

missing=$(python - <<'PY'
import importlib.util
need = {"trl": "trl", "transformers": "transformers", "datasets": "datasets", "accelerate": "accelerate",
        "peft": "peft", "typer": "typer", "jinja2": "jinja2", "yaml": "pyyaml", "tokenizers": "tokenizers",
        "pyarrow": "pyarrow", "matplotlib": "matplotlib", "tenacity": "tenacity", "rich": "rich"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  if [ -z "$WHEELS" ]; then echo "missing packages ($missing) and no wheels folder" >&2; exit 3; fi
  python -m pip install --no-index --find-links "$WHEELS" $missing
fi
# The package itself, without touching its dependencies (torch above all).
python -m pip install --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python - <<'PY' | tee "$OUT_DIR/versions.txt"
import torch, transformers, trl, accelerate, importlib.util as u
print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__,
      "accelerate", accelerate.__version__, "flash_attn", u.find_spec("flash_attn") is not None,
      "liger", u.find_spec("liger_kernel") is not None, "vllm", u.find_spec("vllm") is not None)
PY

# 7 minutes at most for the measurements, so a slow run still leaves its partial bench.json.
timeout 420 python -m persrm_gen.trainers.bench --out "$OUT_DIR" --sft-steps 20 --grpo-steps 3 \
  2>&1 | grep -v "it/s\]" | tail -80 | tee "$OUT_DIR/log.txt"
python - "$OUT_DIR/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
sp, sf = r.get("sft_plain", {}), r.get("sft_fast", {})
gp, gf = r.get("grpo_plain", {}), r.get("grpo_fast", {})
print(f"GPU: {r.get('gpu')}")
if "tokens_per_s" in sp and "tokens_per_s" in sf:
    print(f"SFT  tokens/s plain {sp['tokens_per_s']:.0f}  fast {sf['tokens_per_s']:.0f}  "
          f"x{sf['tokens_per_s'] / sp['tokens_per_s']:.2f} (vs 62.8k baseline: x{sf['tokens_per_s'] / 62800:.2f})")
if "s_per_step" in gp and "s_per_step" in gf:
    print(f"GRPO s/step  plain {gp['s_per_step']:.2f}  fast {gf['s_per_step']:.2f}  "
          f"x{gp['s_per_step'] / gf['s_per_step']:.2f} (vs 16.9 s baseline: x{16.9 / gf['s_per_step']:.2f})")
for k, v in r.items():
    if isinstance(v, dict) and "error" in v:
        print(f"{k}: {v['error']}")
PY

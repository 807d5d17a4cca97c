#!/usr/bin/env bash
# Fetch, here, the wheels that the offline GPU machine lacks, for benchmarks/gpu_check.sh.
#
#   bash benchmarks/gpu_wheels.sh          # writes .whl/ (git-ignored; about 16 MB)
#
# The device image (Python 3.12, its own CUDA torch, transformers 5.17, accelerate,
# peft, pyarrow, tokenizers, huggingface-hub, typer, jinja2, pyyaml, matplotlib) lacks
# trl and datasets; transformers is carried too, at the version these trainers were
# tested with. Wheels are fetched without their dependencies: the list below is the
# complete set of what is missing there (see /work/.library/device/KINDS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.whl}"
mkdir -p "$DEST"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST" \
  trl==1.16.0 datasets==5.2.0 transformers==5.24.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
ls -la "$DEST"
du -sh "$DEST"

#!/usr/bin/env bash
# Issue 13 point 2 on one lent GPU, in one go: build, check, time.
#
#   bash bench/gpu_cohort.sh [OUT_DIR]
#
# build: nlfs runs from this checkout (PYTHONPATH); its Python dependencies missing from the
#   machine's image (on this project's lent H200s: pydantic, pydantic-core, annotated-types,
#   typing-inspection) are installed from wheels carried in .whl/ (see the device notes on
#   carrying wheels), into .whl/site, never from a registry.
# check: bench_cohort.py --check: on CUDA, a float64 cohort of 4 reproduces its solo runs
#   (deterministic kernels), channels_last + bf16, CUDA graphs and torch.compile train like eager
#   float32, and a NaN member ends alone.
# time: bench_cohort.py, full form: stacked against looped networks at the surrogate's sizes;
#   seconds per surrogate evaluation solo and evaluations per GPU-hour for K = 1, 4, 16, 64 with
#   the default runtime (bf16 autocast, channels_last) and with CUDA graphs; the genome /
#   cross-entropy step-time ratio. Every number also goes to OUT_DIR/bench_cohort.json.
# About six minutes on an H200 (estimated, never run: no GPU has been lent to this work yet).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-.}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .whl/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:$PWD/.whl/site"
fi
python3 -c "import torch, pydantic, nlfs.train.cohort; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name())"
python3 bench/bench_cohort.py --check 2>&1 | tee "$out/check.log"
python3 bench/bench_cohort.py --full --variant eager --variant graphs --out "$out/bench_cohort.json" 2>&1 \
  | tee "$out/bench.log"

#!/usr/bin/env bash
# GPU check: Unsloth 4-bit against 16-bit training on the embedded model, on a GPU box with no
# network. Installs the carried wheels (benchmarks/gpu_wheels.sh) over the box's own CUDA torch,
# then runs benchmarks/gpu_check.py; its last line is JSON (tokens/s, peak GPU memory per mode).
#   bash benchmarks/gpu_check.sh                # on the box, .whl and .gpu carried
#   bash benchmarks/gpu_check.sh --steps 20     # arguments go to gpu_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/ftplay-gpu-site}
MODEL=${MODEL:-.gpu/model}
[ -d "$MODEL" ] || MODEL=embedded          # no carried model: build it here (CPU, ~3 min)
if [ -d "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      --find-links "$WHEELS" -r benchmarks/gpu_wheels.txt
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       PYTHONUNBUFFERED=1 UNSLOTH_DISABLE_STATISTICS=1
exec "$PY" benchmarks/gpu_check.py --model "$MODEL" "$@"

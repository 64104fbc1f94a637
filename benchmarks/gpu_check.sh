#!/usr/bin/env bash
# GPU check: Unsloth 4-bit against 16-bit training, then the official CUDA vLLM serving base +
# adapters, on the embedded model and the stand-ins of Llama 3.1, Qwen 2.5 and Mistral v0.3, on a GPU
# box with no network. Installs the carried wheels (benchmarks/gpu_wheels.sh) over the box's own CUDA
# torch, then runs benchmarks/gpu_check.py; its last line is JSON (per model: tokens/s and peak GPU
# memory per mode, whether Unsloth's patches are active, vLLM tokens/s or "not run").
#   bash benchmarks/gpu_check.sh                # on the box, .whl and .gpu carried
#   bash benchmarks/gpu_check.sh --steps 20 --model tiny:Qwen/Qwen2.5-7B-Instruct   # arguments go to gpu_check.py
#   PYTHON=/opt/vllm-env/bin/python bash benchmarks/gpu_check.sh    # a python that has vllm: serving runs too
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/ftplay-gpu-site}
MODEL=${MODEL:-all}                        # gpu_check.py uses the carried .gpu/model for 'embedded'
export FTPLAY_CACHE=${FTPLAY_CACHE:-$PWD/.gpu/cache}   # stand-ins: carried there, else built there
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

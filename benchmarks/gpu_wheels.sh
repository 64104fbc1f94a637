#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh carries to a GPU box without network, on a machine with one:
#   .whl/        Linux x86-64 CPython 3.12 wheels of benchmarks/gpu_wheels.txt, slimmed to ~13 MB
#   .gpu/model/  the embedded model (ftplay build-model: CPU only, ~3 min the first time)
#   .gpu/cache/  with CARRY_STANDINS=1: the three stand-ins (ftplay build-model --like), 670 MB in
#                float32; over a 64 MiB carry leave them out: the box builds them from the carried
#                wheels in seconds (gpu_check.sh points FTPLAY_CACHE at .gpu/cache either way)
# The CUDA torch wheel (~1 GB with its CUDA libraries) is never carried: the box's own torch is used.
# Slimming: bitsandbytes keeps the library of one CUDA version (BNB_CUDA, the box's torch.version.cuda
# without the dot) and the CPU one, not 16; unsloth drops its `studio` web app (2,000 files, 80 MB).
#   bash benchmarks/gpu_wheels.sh            # then carry .whl and .gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}            # the box's python3
BNB_CUDA=${BNB_CUDA:-130}       # the box's torch is a cu130 build
DEST=${DEST:-.whl}
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

# ---------------------------------------------------------------- wheels
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do plat+=(--platform "$p"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$PYVER" \
    "${plat[@]}" -d "$raw" -r benchmarks/gpu_wheels.txt
rm -rf "$DEST" && mkdir -p "$DEST"
for w in "$raw"/*.whl; do
  name=$(basename "$w")
  case "$name" in
    bitsandbytes-*|unsloth-2026*)
      "$PY" -m wheel unpack -d "$raw/x" "$w" >/dev/null
      dir=$(ls -d "$raw"/x/*/)
      find "$dir/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name "libbitsandbytes_cuda${BNB_CUDA}.so" \
          ! -name 'libbitsandbytes_cpu.so' -delete 2>/dev/null || true
      rm -rf "$dir/studio"
      "$PY" -m wheel pack -d "$DEST" "$dir" >/dev/null   # rewrites RECORD for what is left
      rm -rf "$raw/x" ;;
    *) cp "$w" "$DEST/" ;;
  esac
done

# ---------------------------------------------------------------- the embedded model
model=$("$PY" -c "from ftplay import models; print(models.resolve('embedded').path)")
rm -rf .gpu/model && mkdir -p .gpu && cp -r "$model" .gpu/model
du -sh "$DEST" .gpu/model

# ---------------------------------------------------------------- the stand-ins (optional)
if [ "${CARRY_STANDINS:-0}" = 1 ]; then
  for id in meta-llama/Llama-3.1-8B-Instruct Qwen/Qwen2.5-7B-Instruct mistralai/Mistral-7B-Instruct-v0.3; do
    FTPLAY_CACHE=.gpu/cache "$PY" -m ftplay.cli build-model --like "$id"
  done
  du -sh .gpu/cache
fi

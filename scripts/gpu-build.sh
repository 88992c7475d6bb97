#!/usr/bin/env bash
# Builds the CUDA-enabled binaries on a machine WITHOUT a GPU or CUDA toolkit, for compute
# capability 9.0 (H100/H200), and packs what scripts/gpu-check.sh needs into .gpu/:
#   scripts/gpu-build.sh            # toolkit in ${CUDA_ROOT:-$HOME/.cache/ttpo-cuda13}
# The CUDA 13.0 compiler, headers and libraries come from NVIDIA's PyPI wheels (assembled
# by shared/tools/cuda-toolkit-from-pypi.sh); 13.0 exactly, because its PTX is accepted by
# the GPU machines' driver 580 and it links the sonames their PyTorch ships.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CUDA_ROOT=${CUDA_ROOT:-$HOME/.cache/ttpo-cuda13}
TOOLKIT_SCRIPT=${TOOLKIT_SCRIPT:-$ROOT/../shared/tools/cuda-toolkit-from-pypi.sh}
if [ ! -x "$CUDA_ROOT/bin/nvcc" ]; then
  [ -f "$TOOLKIT_SCRIPT" ] || { echo "error: $TOOLKIT_SCRIPT not found (set TOOLKIT_SCRIPT)" >&2; exit 1; }
  CUDA_ROOT=$CUDA_ROOT bash "$TOOLKIT_SCRIPT"
fi
export CUDA_HOME=$CUDA_ROOT PATH=$CUDA_ROOT/bin:$PATH CUDARC_CUDA_VERSION=13000 \
       CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-cuda}
# candle-kernels compiles its .cu files once (about 10 minutes on 2 cores).
cargo build --release --features cuda -p ttpo --example job --example bench --example make_tiny_model
if [ "${TTPO_GPU_BUILD_ALL:-0}" = 1 ]; then
  cargo build --release --features cuda -p ttpo-ffi -p ttpo-cli
fi
# Pack the run: xz-compressed binaries, a photo, and the diffusers wheel for the peer
# benchmark (the GPU machine has PyTorch but not diffusers, and no network).
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
for b in job bench make_tiny_model; do
  xz -T0 -6 -c "$CARGO_TARGET_DIR/release/examples/$b" > ".gpu/$b.xz"
done
cp "${TTPO_ASSETS:-$ROOT/.cache/assets}/photos/astronaut.png" .gpu/
if ! ls .gpu/diffusers-*.whl >/dev/null 2>&1; then
  # importlib_metadata is the one requirement of diffusers the GPU image lacks.
  python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu diffusers==0.42.1 importlib_metadata==8.7.0
fi
du -sh .gpu
echo "built; run on the GPU machine: bash scripts/gpu-check.sh OUT_DIR (with .gpu carried)"

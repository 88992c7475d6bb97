#!/usr/bin/env bash
# CPU benchmark: PyTorch/diffusers vs TTPO's candle engine on the full SD 2.1-base
# architecture (random weights from make_reference.py --full sd21), f32, batch 1:
# one UNet call at a 64x64 latent, VAE encode and decode at 512x512, and one 256 px
# img2img run (encode, 15 UNet calls with CFG at batch 2, decode).
#
#   scripts/bench-cpu.sh [REF_FULL_DIR]      (default: the cache scripts/test.sh uses,
#                                             ~/.cache/ttpo/reference-full; scripts/cache-env.sh)
#
# REF_FULL_DIR/sd21_full is generated if missing (~45 s, ~5 GB). Both sides use
# TTPO_BENCH_THREADS threads (default 2) and take the median of TTPO_BENCH_REPEAT runs
# (default 3) after one warm-up. This is a measurement, not a test; it takes ~10 minutes
# on 2 cores. Run it on an otherwise idle machine. Writes the numbers (seconds per side and
# step, peak RSS per side, threads, date, load) to docs/benchmarks/cpu.json (TTPO_BENCH_JSON
# to write elsewhere).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
# The same cache locations as scripts/test.sh.
ROOT=$REPO source "$HERE/cache-env.sh"
REF=${1:-${TTPO_REFERENCE_FULL:-$REPO/.cache/reference-full}}
MODEL="$REF/sd21_full"
THREADS=${TTPO_BENCH_THREADS:-2}
REPEAT=${TTPO_BENCH_REPEAT:-3}
PY=${TTPO_VENV:-$REPO/.venv}/bin/python
OUT=$(mktemp -d /tmp/ttpo-bench.XXXXXX)
JSON=${TTPO_BENCH_JSON:-$REPO/docs/benchmarks/cpu.json}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

bash "$HERE/conformance/setup.sh"
if [[ ! -f "$MODEL/reference.safetensors" ]]; then
  "$PY" "$HERE/conformance/make_reference.py" "$REF" --full sd21
fi
# Build first so that compiling (and waiting for cargo's lock) is not timed.
cargo build --release -p ttpo --example bench

echo "bench-cpu: load average before: $LOAD_BEFORE"
echo "bench-cpu: PyTorch (threads $THREADS) ..."
/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' -o "$OUT/torch.time" \
  "$PY" "$HERE/conformance/bench_torch.py" "$MODEL" --threads "$THREADS" \
  --repeat "$REPEAT" --warmup 1 --img2img-small 256 > "$OUT/torch.json"
echo "bench-cpu: ours (RAYON_NUM_THREADS=$THREADS) ..."
RAYON_NUM_THREADS=$THREADS /usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' \
  -o "$OUT/ours.time" \
  "$REPO/target/release/examples/bench" "$MODEL" --size 512 --repeat "$REPEAT" --img2img 256 \
  > "$OUT/ours.json"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-cpu: load average after: $LOAD_AFTER"
CPU_NAME=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
VECTOR=$(grep -m1 '^flags' /proc/cpuinfo | grep -qw avx512f && echo avx512 || echo avx2)

"$PY" - "$OUT" "$JSON" "$LOAD_BEFORE" "$LOAD_AFTER" "$CPU_NAME" "$VECTOR" <<'PY'
import datetime, json, os, re, sys
out, json_path, load_before, load_after, cpu_name, vector = sys.argv[1:7]
t = json.load(open(os.path.join(out, "torch.json")))
o = json.loads(open(os.path.join(out, "ours.json")).read().strip().splitlines()[-1])
rows = [("UNet, 64x64 latent (512 px), batch 1", t["unet"], o["unet_s"]),
        ("VAE encode 512x512 (posterior mean)", t["vae_encode"], o["vae_encode_s"]),
        ("VAE decode 64x64 -> 512x512", t["vae_decode"], o["vae_decode_s"]),
        ("img2img 256 px, 15 UNet calls (CFG batch 2), total", t["img2img_small"]["total_s"],
         o["img2img"]["total_s"])]
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

def rss_kb(name):
    m = re.search(r"(\d+) KB max RSS", open(os.path.join(out, name)).read())
    return int(m.group(1)) if m else None

side = lambda unet, enc, dec, small, rss, threads: {
    "unet_64x64_s": unet, "vae_encode_512_s": enc, "vae_decode_512_s": dec,
    "img2img_256_s": small["total_s"], "img2img_256_s_per_step": small["s_per_step"],
    "img2img_256_unet_calls": small["unet_calls"], "peak_rss_kb": rss, "threads": threads}
record = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": cpu_name, "vector": vector, "cores": os.cpu_count(),
                "load_average_before": load_before, "load_average_after": load_after},
    "model": "SD 2.1-base architecture, random weights, f32, batch 1",
    "median_of": int(t["repeat"]),
    "pytorch": dict(side(t["unet"], t["vae_encode"], t["vae_decode"], t["img2img_small"],
                         rss_kb("torch.time"), t["threads"]), torch=t["torch"]),
    "ttpo": dict(side(o["unet_s"], o["vae_encode_s"], o["vae_decode_s"], o["img2img"],
                      rss_kb("ours.time"), o["threads"]),
                 cpu_s={"unet": o.get("unet_cpu_s"), "vae_encode": o.get("vae_encode_cpu_s"),
                        "vae_decode": o.get("vae_decode_cpu_s")}),
}
os.makedirs(os.path.dirname(json_path), exist_ok=True)
with open(json_path, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
print(f"wrote {json_path}")
PY

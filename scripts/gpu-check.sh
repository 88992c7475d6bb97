#!/usr/bin/env bash
# The one GPU run (H100/H200): correctness of CUDA against the CPU on the tiny model, then
# the full SD 2.1-base architecture (random weights) at 512x512 in bf16: our UNet call, VAE
# encode/decode and a complete default TTPO job (15 candidates = 5 strengths x 3 seeds,
# 50 steps; Stage III 50 steps), and the same UNet/VAE/img2img work with PyTorch diffusers
# on the same GPU in the same run. Needs .gpu/ from scripts/gpu-build.sh.
#   bash scripts/gpu-check.sh OUT_DIR
# Full logs go to OUT_DIR; a short table is printed last. Budget: about 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$PWD/gpu-out}
mkdir -p "$OUT"
G=$PWD/.gpu
BIN=/tmp/ttpo-gpu-bin
WORK=/tmp/ttpo-gpu-work
mkdir -p "$BIN" "$WORK"
t0=$(date +%s)
log() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

for f in "$G"/*.xz; do xz -dc "$f" > "$BIN/$(basename "$f" .xz)"; chmod +x "$BIN/$(basename "$f" .xz)"; done
NVLIB=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -1)
export LD_LIBRARY_PATH=${NVLIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
PY=/opt/torch/.venv/bin/python3
[ -x "$PY" ] || PY=python3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if ldd "$BIN/job" | grep "not found"; then echo "missing libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"; exit 1; fi

# Peak GPU memory of a command: sample nvidia-smi every 50 ms while it runs.
peak_run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$OUT/$name.mem" 2>/dev/null &
  local sampler=$!
  "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  local rc=$?
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  echo "$(sort -n "$OUT/$name.mem" | tail -1) MiB" > "$OUT/$name.peak"
  log "$name rc=$rc peak $(cat "$OUT/$name.peak")"
  [ $rc = 0 ] || tail -5 "$OUT/$name.err"
}

log "1. correctness: tiny model, CUDA f32 vs CPU f32"
"$BIN/make_tiny_model" "$WORK/tiny" > /dev/null
peak_run check "$BIN/job" "$WORK/tiny" "$G/astronaut.png" --size 128 --steps 20 --refine-steps 20 \
  --device cuda --precision f32 --compare-cpu

log "2. full SD 2.1-base architecture, random weights"
"$BIN/make_tiny_model" "$WORK/sd21" --prediction sd21-base-full > /dev/null
log "   written: $(du -sh "$WORK/sd21" | cut -f1)"

log "3. ours: UNet 64x64 latent, VAE encode/decode 512, bf16"
peak_run ours_bench "$BIN/bench" "$WORK/sd21" --device cuda --precision bf16 --size 512 --repeat 5

log "4. ours: complete default TTPO job, bf16"
peak_run ours_job "$BIN/job" "$WORK/sd21" "$G/astronaut.png" --device cuda --precision bf16 \
  --strengths 0.1,0.15,0.2,0.25,0.3 --seeds-per-strength 3 --steps 50 --refine-steps 50 --max-batch 30

log "5. PyTorch diffusers on the same GPU, same weights, bf16"
"$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$G"/*.whl > "$OUT/pip.log" 2>&1
PYTHONPATH=/tmp/site peak_run torch "$PY" scripts/conformance/bench_torch.py "$WORK/sd21" \
  --device cuda --dtype bf16 --repeat 5 --img2img

log "6. table"
"$PY" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(out, n + ".json")))
    except Exception as e:
        return {"error": str(e)}
gpu = open(os.path.join(out, "gpu.txt")).read().strip()
chk, ob, oj, tb = load("check"), load("ours_bench"), load("ours_job"), load("torch")
peak = lambda n: open(os.path.join(out, n + ".peak")).read().strip() if os.path.exists(os.path.join(out, n + ".peak")) else "?"
rows = []
def row(name, ours, theirs):
    r = f"{ours / theirs:.2f}" if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs else "-"
    f = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else str(v)
    rows.append(f"| {name} | {f(ours)} | {f(theirs)} | {r} |")
row("UNet call, 64x64 latent (s)", ob.get("unet_s"), tb.get("unet"))
row("VAE encode 512x512 (s)", ob.get("vae_encode_s"), tb.get("vae_encode"))
row("VAE decode 512x512 (s)", ob.get("vae_decode_s"), tb.get("vae_decode"))
s = oj.get("seconds", {})
ti = tb.get("img2img", {})
row("Stage I: 15 candidates x 50-step schedule, incl. encode+decodes (s)", s.get("candidates"), ti.get("seconds", ti.get("total_s")))
row("Stage II scoring (s)", s.get("scoring"), "-")
row("Stage III: 50 guided steps + encodes + decode (s)", s.get("refine"), "-")
row("Stage I UNet calls/s", s.get("stage1_unet_calls_per_s"), ti.get("unet_calls_per_s"))
print(f"GPU: {gpu}")
print("| step | ours (candle, bf16) | diffusers (PyTorch, bf16) | ours/diffusers |")
print("|---|---|---|---|")
print("\n".join(rows))
print(f"peak GPU memory: ours job {peak('ours_job')}, ours bench {peak('ours_bench')}, diffusers {peak('torch')}")
c = chk.get("cpu_check", {})
print(f"CUDA vs CPU (tiny, f32): same ranking {c.get('same_ranking')}, same choice {c.get('same_choice')}, "
      f"refined max |diff| {c.get('refined_max_abs_diff')}, mean {c.get('refined_mean_abs_diff')}")
PY
log "done"

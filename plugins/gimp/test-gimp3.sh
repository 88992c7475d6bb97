#!/usr/bin/env bash
# GIMP 3 end-to-end test of the TTPO plug-in, headless, inside a Debian 13 root (GIMP 3 is
# not in Debian 12). The root is made once by trixie-root.sh (debootstrap; cached under
# .cache/trixie-root, override TTPO_TRIXIE_ROOT) and reused. libttpo and the tiny model
# are built on the host (gimp3-root.sh). Same assertions as test-gimp2.sh (the time estimate
# in the log included), and the restore argument: rdn-x2 gives a 2x layer on a 2x canvas,
# refined (checked against `ttpo restore` on the host by check-restore.py); the call without
# it (older scripts) runs as before; missing network files give the engine's message.
# Needs root, debootstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PHOTO=${TTPO_ASSETS:-$ROOT/.cache/assets}/photos/astronaut.png
START=$(date +%s)
. plugins/gimp/gimp3-root.sh
RESTORE_DIR=${TTPO_ASSETS:-$ROOT/.cache/assets}/restore
test -f "$RESTORE_DIR/esrgan-slim/x2/model.json" || { echo "need $RESTORE_DIR (scripts/fetch-assets.sh)" >&2; exit 1; }
GIMP3_ENV="TTPO_MAX_PIXELS=1000000 TTPO_RESTORE_DIR=/ttpo-test/restore"
gimp3_setup /ttpo-test
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
cargo build --release -p ttpo-cli --bin ttpo >&2
# Only the network the test uses goes into the root; its files are the engine's default folder
# there (TTPO_RESTORE_DIR), as the plug-in passes no folder.
mkdir -p "$W/restore/esrgan-slim"
cp -r "$RESTORE_DIR/esrgan-slim/x2" "$W/restore/esrgan-slim/"

cat > "$W/run.py" <<'PY'
import hashlib
import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gio, Gegl

def load(w, h):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path('/ttpo-test/photo.png'))
    image.scale(w, h)
    return image, image.get_layers()[0]

def pixels(layer, fmt="R'G'B'A float"):
    buf = layer.get_buffer()
    return bytes(buf.get(buf.get_extent(), 1.0, fmt, Gegl.AbyssPolicy.NONE))

def refine(image, layer, folder, seed, steps, strengths, selection, pref, disp, restore=None, metrics=None):
    proc = Gimp.get_pdb().lookup_procedure('plug-in-ttpo-refine')
    cfg = proc.create_config()
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('image', image)
    cfg.set_core_object_array('drawables', [layer])
    for k, v in [('model-folder', folder), ('seed', seed), ('steps', steps), ('strengths', strengths),
                 ('selection', selection), ('preferred', pref), ('dispreferred', disp)]:
        cfg.set_property(k, v)
    if restore is not None:  # left at its default ("", none) otherwise, as older scripts do
        cfg.set_property('restore', restore)
    if metrics is not None:  # the same for metrics ("", the engine's default set)
        cfg.set_property('metrics', metrics)
    res = proc.run(cfg)
    status = res.index(0)
    msg = res.index(1) if res.length() > 1 and status != Gimp.PDBStatusType.SUCCESS else ''
    return status, msg

out = []
image, layer = load(96, 96)
before = pixels(layer)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2,0.4', 0, 0, 0)
layers = image.get_layers()
out.append('rgb status=%s msg=%s layers=%d top=%s' % (st.value_nick, msg, len(layers), layers[0].get_name()))
out.append('original-unchanged=%s' % (pixels(layer) == before))
out.append('new-changed=%s' % (pixels(layers[0]) != before and len(pixels(layers[0])) == len(before)))

image, layer = load(64, 48)
image.convert_grayscale()
image.convert_precision(Gimp.Precision.U16_NON_LINEAR)
layer.add_alpha()
image.select_rectangle(Gimp.ChannelOps.REPLACE, 8, 8, 32, 24)
before = pixels(layer, "Y' u16")
st, msg = refine(image, layer, '/ttpo-test/tiny', 3, 2, '0.3', 1, 1, 0)
layers = image.get_layers()
new = pixels(layers[0], "Y' u16")
changed = [i // 2 for i in range(0, len(new), 2) if new[i:i + 2] != before[i:i + 2]]
outside = [i for i in changed if not (8 <= i % 64 < 40 and 8 <= i // 64 < 32)]
out.append('gray status=%s msg=%s layers=%d alpha=%s changed=%d outside=%d' % (
    st.value_nick, msg, len(layers), layers[0].has_alpha(), len(changed), len(outside)))

image, layer = load(32, 32)
st, msg = refine(image, layer, '/ttpo-test/no-such-model', 7, 2, '0.2', 0, 0, 0)
out.append('missing status=%s msg=%s layers=%d' % (st.value_nick, msg, len(image.get_layers())))

image, layer = load(400, 300)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2', 0, 0, 0)
out.append('tiled status=%s msg=%s layers=%d' % (st.value_nick, msg, len(image.get_layers())))

image, layer = load(1100, 1000)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2', 0, 0, 0)
out.append('large status=%s msg=%s layers=%d' % (st.value_nick, msg, len(image.get_layers())))

def save(image, path):
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None)

# Restore first: rdn-x2 on a 48x40 layer filling the canvas. The new layer is opaque and covers
# the enlarged canvas, so the image saved afterwards is the new layer's pixels.
image, layer = load(48, 40)
save(image, '/ttpo-test/r-before.png')
before = pixels(layer)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2', 0, 0, 0, 'rdn-x2')
layers = image.get_layers()
top = layers[0]
out.append('restore status=%s msg=%s layers=%d top=%s size=%dx%d at=%d,%d canvas=%dx%d orig=%dx%d kept=%s' % (
    st.value_nick, msg, len(layers), top.get_name(), top.get_width(), top.get_height(),
    top.get_offsets()[1], top.get_offsets()[2], image.get_width(), image.get_height(),
    layer.get_width(), layer.get_height(), pixels(layer) == before))
save(image, '/ttpo-test/r-new.png')

image, layer = load(32, 32)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2', 0, 0, 0, 'waifu2x')
out.append('badnet status=%s msg=%s layers=%d' % (st.value_nick, msg, len(image.get_layers())))

image, layer = load(32, 32)
st, msg = refine(image, layer, '/ttpo-test/tiny', 7, 2, '0.2', 0, 0, 0, '', 'bogus')
out.append('badmetric status=%s msg=%s layers=%d' % (st.value_nick, msg, len(image.get_layers())))
open('/ttpo-test/result.txt', 'w').write('\n'.join(out) + '\n')
PY
T0=$(date +%s)
rc=0
inroot timeout 300 gimp-console-3.0 -i --quit --batch-interpreter python-fu-eval \
  -b "exec(open('/ttpo-test/run.py').read())" >"$W/log" 2>&1 || rc=$?
echo "gimp ran $(( $(date +%s) - T0 )) s (exit $rc)"
fail() { echo "FAIL: $*" >&2; echo "---- result" >&2; cat "$W/result.txt" >&2 || true; echo "---- gimp log" >&2; cat "$W/log" >&2; exit 1; }
[ -f "$W/result.txt" ] || fail "the batch script did not finish"
cat "$W/result.txt"
grep -q "^rgb status=success msg= layers=2 top=TTPO (seed 7)$" "$W/result.txt" || fail "no new layer on top"
grep -q "^original-unchanged=True$" "$W/result.txt" || fail "the original layer was modified"
grep -q "^new-changed=True$" "$W/result.txt" || fail "the new layer has the original's pixels"
grep -Eq "^gray status=success msg= layers=2 alpha=True changed=[1-9][0-9]* outside=0$" "$W/result.txt" \
  || fail "grayscale 16-bit with alpha and a selection"
grep -q "^missing status=execution-error msg=TTPO model folder not found.* layers=1$" "$W/result.txt" \
  || fail "missing model folder: no PDB error message"
grep -q "TTPO model folder not found" "$W/log" || fail "missing model folder: no message in GIMP's log"
grep -q "^tiled status=success msg= layers=2$" "$W/result.txt" || fail "400x300 image (tiled): no new layer"
grep -q "^large status=execution-error msg=TTPO cannot process this image at once.* layers=1$" "$W/result.txt" \
  || fail "too-large image: no clear message"
grep -q "^restore status=success msg= layers=2 top=TTPO (seed 7, 2x) size=96x80 at=0,0 canvas=96x80 orig=48x40 kept=True$" \
  "$W/result.txt" || fail "restore rdn-x2: no 96x80 layer on a 96x80 canvas above the unchanged 48x40 original"
target/release/ttpo --progress none restore "$W/r-before.png" -o "$W/r-pure.png" --net rdn-x2 \
  --restore-dir "$RESTORE_DIR" >/dev/null
python3 plugins/gimp/check-restore.py "$W/r-before.png" "$W/r-pure.png" "$W/r-new.png" 2 || fail "restore pixels"
grep -q "^badnet status=calling-error msg=TTPO: Unknown restoration network \"waifu2x\" (known: realesrgan-x4, .* layers=1$" \
  "$W/result.txt" || fail "unknown restore network: no error naming the known ones"
# Missing network files (an empty TTPO_RESTORE_DIR): the engine's message.
mkdir -p "$W/empty-restore"
cat > "$W/nofiles.py" <<'PY'
import gi
gi.require_version('Gimp', '3.0')
from gi.repository import Gimp, Gio
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path('/ttpo-test/photo.png'))
image.scale(32, 32)
proc = Gimp.get_pdb().lookup_procedure('plug-in-ttpo-refine')
cfg = proc.create_config()
cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
cfg.set_property('image', image)
cfg.set_core_object_array('drawables', [image.get_layers()[0]])
for k, v in [('model-folder', '/ttpo-test/tiny'), ('steps', 2), ('strengths', '0.2'), ('restore', 'rdn-x2')]:
    cfg.set_property(k, v)
res = proc.run(cfg)
text = 'nofiles status=%s msg=%s layers=%d\n' % (
    res.index(0).value_nick, res.index(1) if res.length() > 1 else '', len(image.get_layers()))
# The learned metrics without their checkpoints (empty folders): the engine's message.
cfg.set_property('restore', '')
cfg.set_property('metrics', 'reproduction')
res = proc.run(cfg)
text += 'nockpt status=%s msg=%s layers=%d\n' % (
    res.index(0).value_nick, res.index(1) if res.length() > 1 else '', len(image.get_layers()))
open('/ttpo-test/nofiles.txt', 'w').write(text)
PY
mkdir -p "$W/empty-iqa" "$W/empty-torch" "$W/empty-hf"
GIMP3_ENV="TTPO_RESTORE_DIR=/ttpo-test/empty-restore TTPO_IQA_DIR=/ttpo-test/empty-iqa TORCH_HOME=/ttpo-test/empty-torch HF_HUB_CACHE=/ttpo-test/empty-hf" inroot timeout 300 gimp-console-3.0 -i --quit \
  --batch-interpreter python-fu-eval -b "exec(open('/ttpo-test/nofiles.py').read())" >"$W/log-nofiles" 2>&1 || true
cat "$W/nofiles.txt" 2>/dev/null || true
grep -q "^nofiles status=execution-error msg=TTPO is missing a file it needs: .*esrgan-slim/x2/model.json.*@upscalerjs/esrgan-slim.* layers=1$" \
  "$W/nofiles.txt" || { cat "$W/log-nofiles" >&2; fail "missing restore files: not the engine's message"; }
grep -q "^nockpt status=execution-error msg=TTPO is missing a file it needs: .*musiq_koniq_ckpt-e95806b9.pth.*ttpo models download --metrics.* layers=1$" \
  "$W/nofiles.txt" || { cat "$W/log-nofiles" >&2; fail "learned metrics without checkpoints: not the engine's message"; }
grep -q "^badmetric status=calling-error msg=TTPO: invalid option metrics: unknown metric \"bogus\".* layers=1$" \
  "$W/result.txt" || fail "unknown metric: no calling error with the engine's message"
# One estimate per job that ran (rgb, gray, tiled, restore), in Estimate::describe's format.
DUR='([0-9]+ s|[0-9]+ min [0-5][0-9] s|[0-9]+ h [0-5][0-9] min)'
N=$(grep -Ec "^TTPO: this job takes about $DUR in all \(Stage I $DUR, Stage II $DUR, Stage III $DUR\)$" "$W/log" || true)
[ "$N" = 4 ] || fail "$N time estimates in the log, not one per job (4)"
grep -q "no time estimate" "$W/log" && fail "an estimate failed"
echo "estimates: $(grep -m1 '^TTPO: this job takes' "$W/log")"
if grep -E "ttpo|TTPO" "$W/log" | grep -Eiq "crash|segmentation|wire_read|critical"; then fail "the plug-in crashed"; fi
echo "GIMP 3 plug-in test passed ($(( $(date +%s) - START )) s in all)"

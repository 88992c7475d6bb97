#!/usr/bin/env bash
# GIMP 2.10 end-to-end test of the TTPO plug-in, headless (gimp-console), hermetic profile.
# Asserts: a new layer above the original with changed pixels; the original layer
# unchanged; a grayscale float image with alpha and a selection works; a missing model
# folder and a too-large image give PDB error messages (GIMP itself always exits 0); each
# job's time estimate is logged once to stderr before it runs, formatted like the engine's
# Estimate::describe (ttpo_format_duration is also checked on its own). The restore argument
# (last, 11th): rdn-x2 on a layer that fills the canvas gives a 2x new layer on a 2x canvas,
# refined (it differs from the network's output alone, `ttpo restore`), the original layer
# untouched; a 10-argument Script-Fu call (older scripts) is refused by Script-Fu's count
# check; an unknown network and missing network files give clear messages.
# Needs (Debian 12): gimp libgimp2.0-dev pkg-config (installed here via apt when root).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PHOTO=${TTPO_ASSETS:-$ROOT/.cache/assets}/photos/astronaut.png
if ! command -v gimp-console-2.10 >/dev/null || ! pkg-config --exists gimpui-2.0; then
  [ "$(id -u)" = 0 ] || { echo "need: apt-get install gimp libgimp2.0-dev pkg-config" >&2; exit 1; }
  apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gimp libgimp2.0-dev pkg-config >/dev/null
fi
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export GIMP2_DIRECTORY=$T/profile
mkdir -p "$GIMP2_DIRECTORY/gradients"
plugins/gimp/install.sh 2.10 >/dev/null
test -x "$GIMP2_DIRECTORY/plug-ins/ttpo/ttpo"
test -f "$GIMP2_DIRECTORY/plug-ins/ttpo/libttpo.so.1"
cargo build --release -p ttpo --example make_tiny_model >&2
cargo build --release -p ttpo-cli --bin ttpo >&2
RESTORE_DIR=${TTPO_ASSETS:-$ROOT/.cache/assets}/restore
test -f "$RESTORE_DIR/esrgan-slim/x2/model.json" || { echo "need $RESTORE_DIR (scripts/fetch-assets.sh)" >&2; exit 1; }
target/release/examples/make_tiny_model "$T/tiny" >/dev/null
cp "$PHOTO" "$T/photo.png"

# ttpo_format_duration (ttpo-common.c) against the cases of core's Estimate::describe test.
cat > "$T/duration.c" <<'C'
#include "ttpo-common.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    static const struct { double s; const char *want; } cases[] = {
        {0.4, "0 s"}, {59.4, "59 s"}, {59.6, "1 min 00 s"}, {200.0, "3 min 20 s"},
        {3900.0, "1 h 05 min"}, {NAN, "unknown"}, {-1.0, "unknown"}};
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        const char *got = ttpo_format_duration(cases[i].s, buf, sizeof buf);
        if (strcmp(got, cases[i].want) != 0) {
            printf("ttpo_format_duration(%g) = \"%s\", want \"%s\"\n", cases[i].s, got, cases[i].want);
            bad = 1;
        }
    }
    return bad;
}
C
cc -Wall -Wextra -Werror -Iinclude -Iplugins/gimp "$T/duration.c" plugins/gimp/ttpo-common.c \
  $(pkg-config --cflags --libs glib-2.0) -L"$GIMP2_DIRECTORY/plug-ins/ttpo" -l:libttpo.so.1 -lm \
  -Wl,-rpath,"$GIMP2_DIRECTORY/plug-ins/ttpo" -o "$T/duration"
"$T/duration" || { echo "FAIL: ttpo_format_duration" >&2; exit 1; }

cat > "$T/run.scm" <<SCM
(gimp-message-set-handler 1)
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 96 96)
  (file-pnm-save RUN-NONINTERACTIVE image layer "$T/before.ppm" "before.ppm" 1)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2,0.4" 0 0 0 "" "")
  (let* ((layers (gimp-image-get-layers image))
         (top (aref (cadr layers) 0)))
    (gimp-message (string-append "TTPO-LAYERS " (number->string (car layers))
                                 " TOP " (car (gimp-item-get-name top))))
    (file-pnm-save RUN-NONINTERACTIVE image top "$T/new.ppm" "new.ppm" 1)
    (file-pnm-save RUN-NONINTERACTIVE image layer "$T/after.ppm" "after.ppm" 1)))
SCM
cat > "$T/gray.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 64 48)
  (gimp-image-convert-grayscale image)
  (gimp-image-convert-precision image PRECISION-FLOAT-GAMMA)
  (gimp-layer-add-alpha layer)
  (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 8 8 32 24)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 3 2 "0.3" 1 1 0 "" "")
  (gimp-selection-none image)
  (let* ((layers (gimp-image-get-layers image)))
    (gimp-message (string-append "TTPO-GRAY-LAYERS " (number->string (car layers))))
    (gimp-message (string-append "TTPO-GRAY-ALPHA " (number->string (car (gimp-drawable-has-alpha (aref (cadr layers) 0))))))
    (gimp-layer-flatten (aref (cadr layers) 0))
    (gimp-layer-flatten layer)
    (file-pnm-save RUN-NONINTERACTIVE image (aref (cadr layers) 0) "$T/gray-new.pgm" "g.pgm" 1)
    (file-pnm-save RUN-NONINTERACTIVE image layer "$T/gray-orig.pgm" "g.pgm" 1)))
SCM
cat > "$T/errors.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/no-such-model" 7 2 "0.2" 0 0 0 "" ""))
SCM
# scaled_run NAME W H: the photo scaled to W x H, refined; logs "TTPO-NAME-LAYERS <count>".
scaled_run() {
  cat > "$T/$1.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image $2 $3)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "" "")
  (gimp-message (string-append "TTPO-${1^^}-LAYERS " (number->string (car (gimp-image-get-layers image))))))
SCM
}
# Restore first: rdn-x2 on a 48x40 layer filling the canvas, then TTPO.
cat > "$T/restore.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 48 40)
  (file-png-save-defaults RUN-NONINTERACTIVE image layer "$T/r-before.png" "r-before.png")
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "rdn-x2" "")
  (let* ((layers (gimp-image-get-layers image))
         (top (aref (cadr layers) 0)))
    (gimp-message (string-append "TTPO-RESTORE-LAYERS " (number->string (car layers))
                                 " TOP " (car (gimp-item-get-name top))
                                 " SIZE " (number->string (car (gimp-drawable-width top)))
                                 "x" (number->string (car (gimp-drawable-height top)))
                                 " AT " (number->string (car (gimp-drawable-offsets top)))
                                 "," (number->string (cadr (gimp-drawable-offsets top)))
                                 " CANVAS " (number->string (car (gimp-image-width image)))
                                 "x" (number->string (car (gimp-image-height image)))
                                 " ORIG " (number->string (car (gimp-drawable-width layer)))
                                 "x" (number->string (car (gimp-drawable-height layer)))))
    (file-png-save-defaults RUN-NONINTERACTIVE image top "$T/r-new.png" "r-new.png")
    (file-png-save-defaults RUN-NONINTERACTIVE image layer "$T/r-after.png" "r-after.png")))
SCM
# A script written for the 10 arguments before restore and metrics: Script-Fu itself refuses the call
# (it checks the count against the registration), with a clear message.
cat > "$T/old.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0)
  (gimp-message "TTPO-OLD-WENT-ON"))
SCM
cat > "$T/badnet.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "waifu2x" ""))
SCM
# Metrics by name or preset (the 12th argument): an unknown name is a calling error with the
# engine's message; a learned metric without its checkpoint fails with the engine's message
# naming the file (second run below, with empty checkpoint folders).
cat > "$T/badmetric.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "" "bogus"))
SCM
scaled_run tiled 400 300
scaled_run large 1100 1000

START=$(date +%s)
# TTPO_MAX_PIXELS lowers the accepted size (default 64 Mi pixels) so that large.scm's
# 1100x1000 image exercises the too-large message; tiled.scm's 400x300 image is processed
# in tiles (the tiny model's native size is 64 px).
TTPO_RESTORE_DIR=$RESTORE_DIR TTPO_MAX_PIXELS=1000000 timeout 300 gimp-console-2.10 -i -d -f \
  -b "(load \"$T/run.scm\")" -b "(load \"$T/gray.scm\")" -b "(load \"$T/errors.scm\")" \
  -b "(load \"$T/tiled.scm\")" -b "(load \"$T/large.scm\")" \
  -b "(load \"$T/restore.scm\")" -b "(load \"$T/badnet.scm\")" -b "(load \"$T/old.scm\")" \
  -b "(load \"$T/badmetric.scm\")" \
  -b '(gimp-quit 0)' >"$T/log" 2>&1 || true
echo "gimp ran $(( $(date +%s) - START )) s"
# Missing network files: the engine's message (a second run: the folder is the process'
# TTPO_RESTORE_DIR, the engine's default, which the plug-in does not override).
mkdir -p "$T/empty-restore"
cat > "$T/nofiles.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "rdn-x2" "")
  (gimp-message "TTPO-NOFILES-WENT-ON"))
SCM
cat > "$T/nockpt.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 32 32)
  (plug-in-ttpo-refine RUN-NONINTERACTIVE image layer "$T/tiny" 7 2 "0.2" 0 0 0 "" "reproduction")
  (gimp-message "TTPO-NOCKPT-WENT-ON"))
SCM
mkdir -p "$T/empty-iqa" "$T/empty-torch" "$T/empty-hf"
TTPO_RESTORE_DIR=$T/empty-restore TTPO_IQA_DIR=$T/empty-iqa TORCH_HOME=$T/empty-torch HF_HUB_CACHE=$T/empty-hf \
  timeout 300 gimp-console-2.10 -i -d -f -b "(load \"$T/nofiles.scm\")" -b "(load \"$T/nockpt.scm\")" \
  -b '(gimp-quit 0)' >"$T/log-nofiles" 2>&1 || true
fail() { echo "FAIL: $*" >&2; echo "---- gimp log" >&2; cat "$T/log" >&2; exit 1; }

grep -q "TTPO-LAYERS 2 TOP TTPO (seed 7)" "$T/log" || fail "no new layer 'TTPO (seed 7)' on top"
[ -s "$T/new.ppm" ] && [ -s "$T/after.ppm" ] && [ -s "$T/before.ppm" ] || fail "exports missing"
cmp -s "$T/before.ppm" "$T/after.ppm" || fail "the original layer was modified"
[ "$(head -c 15 "$T/before.ppm")" = "$(head -c 15 "$T/new.ppm")" ] || fail "new layer size/format differs"
cmp -s "$T/before.ppm" "$T/new.ppm" && fail "the new layer has the original's pixels"
grep -q "TTPO-GRAY-LAYERS 2" "$T/log" || fail "grayscale float image with alpha: no new layer"
grep -q "TTPO-GRAY-ALPHA 1" "$T/log" || fail "the new layer lost its alpha channel"
python3 - "$T/gray-orig.pgm" "$T/gray-new.pgm" <<'PY' || fail "grayscale selection check"
import sys
def load(p):
    d = open(p, 'rb').read()             # P5, optional "# comment" lines, w h, maxval, data
    head = [t for line in d.split(b"\n")[:4] if not line.startswith(b"#") for t in line.split()]
    w, h, bps = int(head[1]), int(head[2]), 1 if int(head[3]) < 256 else 2
    px = d[len(d) - w * h * bps:]
    return w, h, [px[i * bps:(i + 1) * bps] for i in range(w * h)]
w, h, a = load(sys.argv[1]); _, _, b = load(sys.argv[2])
changed = [(i % w, i // w) for i in range(w * h) if a[i] != b[i]]
assert changed, "no pixel changed"
outside = [(x, y) for x, y in changed if not (8 <= x < 40 and 8 <= y < 32)]
assert not outside, f"{len(outside)} pixels changed outside the selection: {outside[:10]}"
print(f"gray: {len(changed)} pixels changed, all inside the selection")
PY
grep -q "Procedure execution of plug-in-ttpo-refine failed: TTPO model folder not found" "$T/log" \
  || fail "missing model folder: no PDB error message"
grep -q "TTPO-TILED-LAYERS 2" "$T/log" || fail "400x300 image (tiled): no new layer"
grep -q "cannot process this image at once" "$T/log" || fail "too-large image: no clear message"
grep -q "TTPO-LARGE-LAYERS" "$T/log" && fail "too-large image: the batch went on as if it succeeded"
# Restore first: a 2x layer named for it on a 2x canvas, the original layer kept at its size
# and pixels; refined: not the network's output alone (`ttpo restore`, same input).
grep -q "TTPO-RESTORE-LAYERS 2 TOP TTPO (seed 7, 2x) SIZE 96x80 AT 0,0 CANVAS 96x80 ORIG 48x40" "$T/log" \
  || fail "restore rdn-x2: no 96x80 layer on a 96x80 canvas above the 48x40 original"
target/release/ttpo --progress none restore "$T/r-before.png" -o "$T/r-pure.png" --net rdn-x2 \
  --restore-dir "$RESTORE_DIR" >/dev/null
python3 plugins/gimp/check-restore.py "$T/r-before.png" "$T/r-pure.png" "$T/r-new.png" 2 "$T/r-after.png" \
  || fail "restore pixels"
grep -q "Invalid number of arguments for plug-in-ttpo-refine (expected 12 but received 10)" "$T/log" \
  || fail "a 10-argument Script-Fu call: not Script-Fu's count message"
grep -q "TTPO-OLD-WENT-ON" "$T/log" && fail "a 10-argument Script-Fu call went on"
grep -q "Procedure execution of plug-in-ttpo-refine failed on invalid input arguments: TTPO: Unknown restoration network \"waifu2x\" (known: realesrgan-x4, " "$T/log" \
  || fail "unknown restore network: no PDB error naming the known ones"
grep -q "Procedure execution of plug-in-ttpo-refine failed: TTPO is missing a file it needs: .*esrgan-slim/x2/model.json.*@upscalerjs/esrgan-slim" "$T/log-nofiles" \
  || { cat "$T/log-nofiles" >&2; fail "missing restore files: not the engine's message"; }
grep -q "TTPO-NOFILES-WENT-ON" "$T/log-nofiles" && fail "missing restore files: the batch went on"
grep -q "Procedure execution of plug-in-ttpo-refine failed on invalid input arguments: TTPO: invalid option metrics: unknown metric \"bogus\"" "$T/log" \
  || fail "unknown metric: no PDB calling error with the engine's message"
grep -q "Procedure execution of plug-in-ttpo-refine failed: TTPO is missing a file it needs: .*musiq_koniq_ckpt-e95806b9.pth.*ttpo models download --metrics" "$T/log-nofiles" \
  || { cat "$T/log-nofiles" >&2; fail "learned metrics without checkpoints: not the engine's message"; }
grep -q "TTPO-NOCKPT-WENT-ON" "$T/log-nofiles" && fail "learned metrics without checkpoints: the batch went on"
echo "missing files: $(grep -o 'TTPO is missing a file.*' "$T/log-nofiles" | head -1)"
# One estimate per job that ran (rgb, gray, tiled, restore; the missing model and the
# too-large image make no job), in Estimate::describe's format.
DUR='([0-9]+ s|[0-9]+ min [0-5][0-9] s|[0-9]+ h [0-5][0-9] min)'
N=$(grep -Ec "^TTPO: this job takes about $DUR in all \(Stage I $DUR, Stage II $DUR, Stage III $DUR\)$" "$T/log" || true)
[ "$N" = 4 ] || fail "$N time estimates in the log, not one per job (4)"
grep -q "no time estimate" "$T/log" && fail "an estimate failed"
echo "estimates: $(grep -m1 '^TTPO: this job takes' "$T/log")"
if grep -Eq "wire_read|plug-in crashed|Segmentation|terminated" "$T/log"; then fail "the plug-in crashed"; fi
echo "GIMP 2.10 plug-in test passed"

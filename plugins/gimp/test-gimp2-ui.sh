#!/usr/bin/env bash
# Drives the GIMP 2.10 dialogs under Xvfb: the settings dialog (selection switched to
# "Let me pick", then OK), the progress dialog, the candidate picker (Refine), and checks
# that a new layer came out. Saves docs/img/gimp-dialog.png and docs/img/gimp-picker.png
# when TTPO_SCREENSHOTS=1. Needs: gimp libgimp2.0-dev pkg-config xvfb xauth xdotool imagemagick.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PHOTO=${TTPO_ASSETS:-$ROOT/.cache/assets}/photos/coffee.png
if [ -z "${TTPO_IN_XVFB:-}" ]; then
  for tool in gimp-2.10 xvfb-run xdotool import; do
    command -v $tool >/dev/null || {
      [ "$(id -u)" = 0 ] || { echo "need: apt-get install gimp libgimp2.0-dev pkg-config xvfb xauth xdotool imagemagick" >&2; exit 1; }
      apt-get update >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gimp libgimp2.0-dev pkg-config \
        xvfb xauth xdotool imagemagick >/dev/null
      break
    }
  done
  exec env TTPO_IN_XVFB=1 xvfb-run -a -s "-screen 0 1280x900x24" "$0" "$@"
fi
T=$(mktemp -d)
GIMP_PID=
cleanup() { rc=$?; [ -z "$GIMP_PID" ] || kill "$GIMP_PID" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$T"; exit $rc; }
trap cleanup EXIT
export GIMP2_DIRECTORY=$T/profile
mkdir -p "$GIMP2_DIRECTORY/gradients"
plugins/gimp/install.sh 2.10 >/dev/null
cargo build --release -p ttpo --example make_tiny_model >&2
target/release/examples/make_tiny_model "$T/tiny" >/dev/null
export TTPO_MODEL_DIR=$T/tiny   # the dialog's empty model folder means this
cp "$PHOTO" "$T/photo.png"
cat > "$T/ui.scm" <<SCM
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "$T/photo.png" "photo.png")))
       (layer (car (gimp-image-get-active-layer image))))
  (gimp-image-scale image 96 64)
  (gimp-display-new image)
  (plug-in-ttpo-refine RUN-INTERACTIVE image layer "" 0 0 "" 0 0 0)
  (let* ((layers (gimp-image-get-layers image)))
    (if (= (car layers) 2)
        (file-pnm-save RUN-NONINTERACTIVE image (aref (cadr layers) 0) "$T/new-layer.ppm" "n.ppm" 1))))
SCM
GTK2_RC_FILES=/dev/null gimp-2.10 -n -d -f -s -b "(load \"$T/ui.scm\")" -b '(gimp-quit 1)' >"$T/log" 2>&1 &
GIMP_PID=$!
fail() { echo "FAIL: $*" >&2; import -window root "$T/fail.png" 2>/dev/null && echo "screen: $T/fail.png" >&2; cat "$T/log" >&2; KEEP=1; exit 1; }
wait_window() { # name regex, seconds
  for _ in $(seq 1 $(( $2 * 4 ))); do
    W=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | head -1) && [ -n "$W" ] && { echo "$W"; return 0; }
    sleep 0.25
  done
  return 1
}
shot() { [ "${TTPO_SCREENSHOTS:-0}" = 1 ] || return 0; mkdir -p docs/img; import -window "$1" "$2"; echo "saved $2"; }

W=$(wait_window "test-time preference optimization" 60) || fail "settings dialog did not appear"
sleep 1
xdotool windowactivate --sync "$W" 2>/dev/null || xdotool windowfocus --sync "$W"
# Focus starts in the model folder entry; five Tabs reach "Selection" (folder, preset,
# strengths, seed, steps, selection); Down switches a focused GTK 2 combo to the next item
# ("Let me pick") without popping it up; Alt+O is OK.
xdotool key Tab Tab Tab Tab Tab
sleep 0.3
xdotool key Down
sleep 0.5
shot "$W" docs/img/gimp-dialog.png
xdotool key --clearmodifiers alt+o
P=$(wait_window "pick the best and the worst" 90) || fail "candidate picker did not appear"
sleep 1
xdotool windowactivate --sync "$P" 2>/dev/null || xdotool windowfocus --sync "$P"
shot "$P" docs/img/gimp-picker.png
xdotool key --clearmodifiers alt+r   # _Refine (the default response)
for _ in $(seq 1 240); do [ -s "$T/new-layer.ppm" ] && break; kill -0 $GIMP_PID 2>/dev/null || break; sleep 0.5; done
[ -s "$T/new-layer.ppm" ] || fail "no new layer after the picker"
for _ in $(seq 1 60); do kill -0 $GIMP_PID 2>/dev/null || break; sleep 0.5; done
echo "GIMP 2.10 dialog test passed"

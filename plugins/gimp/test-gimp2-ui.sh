#!/usr/bin/env bash
# Drives the GIMP 2.10 dialogs under Xvfb with xdotool; GIMP runs its Script-Fu server
# (plug-in-script-fu-server) and sf-client.py sends it the calls and the checks.
#   pick:   the settings dialog (selection switched to "Let me pick", then OK), the progress
#           dialog, the candidate picker (Refine): a new layer with changed pixels on top.
#   cancel: a long job (steps typed as 1000) stopped with the progress dialog's Cancel: the
#           call returns within seconds, the plug-in process is gone, the image still has its
#           one layer and its pixels are byte-identical (PPM exports compared).
#   kill:   the filter started from the image window (Search Actions, as from the menu), so
#           GIMP's progress is the status bar; its Cancel button makes GIMP SIGKILL the
#           plug-in: the process is gone, GIMP answers later calls, the image is untouched.
# Saves docs/img/gimp-dialog.png and docs/img/gimp-picker.png when TTPO_SCREENSHOTS=1.
# Needs: gimp libgimp2.0-dev pkg-config xvfb xauth xdotool imagemagick python3.
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
START=$(date +%s)
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
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GTK2_RC_FILES=/dev/null gimp-2.10 -n -d -f -s \
  -b "(plug-in-script-fu-server RUN-NONINTERACTIVE \"127.0.0.1\" $PORT \"$T/server.log\")" >"$T/log" 2>&1 &
GIMP_PID=$!

fail() {
  echo "FAIL: $*" >&2
  import -window root "$T/fail.png" 2>/dev/null && echo "screen: $T/fail.png" >&2
  echo "---- gimp log" >&2; cat "$T/log" >&2
  KEEP=1; exit 1
}
sf() { python3 plugins/gimp/sf-client.py "$PORT" "$1"; }
# sf_bg NAME SCHEME: runs the call in the background; NAME.out, NAME.rc and NAME.end (the
# time it returned) appear in $T when it has returned.
sf_bg() { ( rc=0; sf "$2" >"$T/$1.out" 2>&1 || rc=$?; date +%s.%N >"$T/$1.end"; echo $rc >"$T/$1.rc" ) & }
wait_file() { for _ in $(seq 1 $(( $2 * 10 ))); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_window() { # name regex, seconds
  for _ in $(seq 1 $(( $2 * 4 ))); do
    W=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | head -1) && [ -n "$W" ] && { echo "$W"; return 0; }
    sleep 0.25
  done
  return 1
}
focus() { xdotool windowactivate --sync "$1" 2>/dev/null || xdotool windowfocus --sync "$1"; }
shot() { [ "${TTPO_SCREENSHOTS:-0}" = 1 ] || return 0; mkdir -p docs/img; import -window "$1" "$2"; echo "saved $2"; }
plugin_pids() { pgrep -P "$GIMP_PID" -x ttpo || true; }
# new_image W H: the photo scaled, shown in a display; prints the image id.
new_image() { sf "(let* ((i (car (gimp-file-load RUN-NONINTERACTIVE \"$T/photo.png\" \"photo.png\")))) (gimp-image-scale i $1 $2) (gimp-display-new i) i)"; }
layer_of() { sf "(car (gimp-image-get-active-layer $1))"; }
layer_count() { sf "(car (gimp-image-get-layers $1))"; }
save_layer() { sf "(file-pnm-save RUN-NONINTERACTIVE $1 $2 \"$3\" \"x.ppm\" 1)" >/dev/null; }
# The settings dialog: focus starts in the model folder entry; four Tabs reach Steps (folder,
# preset, strengths, seed, steps); Tab selects the entry's text, so typing replaces it;
# Return commits the spin button and presses the default button (OK).
settings_long_job() {
  local w
  w=$(wait_window "test-time preference optimization" 60) || fail "$1: settings dialog did not appear"
  sleep 0.5
  focus "$w"
  xdotool key Tab Tab Tab Tab
  sleep 0.2
  xdotool type 1000
  xdotool key Return
}
# Waits until the progress dialog is up and the engine has run a while; the job must still
# be running then (else it is too short to test a cancel).
progress_running() {
  wait_window "^TTPO$" 30 >/dev/null || fail "$1: progress dialog did not appear"
  sleep 2
  [ -n "$(plugin_pids)" ] || fail "$1: the plug-in is no longer running 2 s into a 1000-step job"
}

for _ in $(seq 1 120); do sf '(car (gimp-version))' >/dev/null 2>&1 && break; kill -0 $GIMP_PID 2>/dev/null || fail "GIMP exited"; sleep 0.5; done
sf '(car (gimp-version))' >/dev/null || fail "the Script-Fu server did not answer"
echo "GIMP up after $(( $(date +%s) - START )) s"

# ---- pick: settings dialog -> progress -> picker -> new layer
T0=$(date +%s)
IMG=$(new_image 96 64); L=$(layer_of $IMG)
save_layer $IMG $L "$T/pick-before.ppm"
sf_bg pick "(plug-in-ttpo-refine RUN-INTERACTIVE $IMG $L \"\" 0 0 \"\" 0 0 0)"
W=$(wait_window "test-time preference optimization" 60) || fail "settings dialog did not appear"
sleep 1
focus "$W"
# Five Tabs reach "Selection" (folder, preset, strengths, seed, steps, selection); Down
# switches a focused GTK 2 combo to the next item ("Let me pick") without popping it up;
# Alt+O is OK.
xdotool key Tab Tab Tab Tab Tab
sleep 0.3
xdotool key Down
sleep 0.5
shot "$W" docs/img/gimp-dialog.png
xdotool key --clearmodifiers alt+o
P=$(wait_window "pick the best and the worst" 90) || fail "candidate picker did not appear"
sleep 1
focus "$P"
shot "$P" docs/img/gimp-picker.png
xdotool key --clearmodifiers alt+r   # _Refine (the default response)
wait_file "$T/pick.rc" 120 || fail "pick: the plug-in call did not return"
# Script-Fu gives (#t) for a procedure without return values that succeeded, (#f) for one
# that returned GIMP_PDB_CANCEL, an error for GIMP_PDB_EXECUTION_ERROR.
[ "$(cat "$T/pick.rc") $(cat "$T/pick.out")" = "0 (#t)" ] || fail "pick: the call failed: $(cat "$T/pick.out")"
[ "$(layer_count $IMG)" = 2 ] || fail "pick: no new layer after the picker"
TOP=$(sf "(aref (cadr (gimp-image-get-layers $IMG)) 0)")
[ "$(sf "(car (gimp-item-get-name $TOP))")" = '"TTPO (seed 0)"' ] || fail "pick: the top layer is not 'TTPO (seed 0)'"
save_layer $IMG $TOP "$T/pick-new.ppm"
save_layer $IMG $L "$T/pick-after.ppm"
cmp -s "$T/pick-before.ppm" "$T/pick-after.ppm" || fail "pick: the original layer was modified"
cmp -s "$T/pick-before.ppm" "$T/pick-new.ppm" && fail "pick: the new layer has the original's pixels"
echo "pick: settings, progress and picker dialogs driven, new layer on top ($(( $(date +%s) - T0 )) s)"

# ---- cancel: the progress dialog's Cancel button
T0=$(date +%s)
IMG=$(new_image 96 64); L=$(layer_of $IMG)
save_layer $IMG $L "$T/cancel-before.ppm"
sf_bg cancel "(plug-in-ttpo-refine RUN-INTERACTIVE $IMG $L \"\" 0 0 \"\" 0 0 0)"
settings_long_job cancel
progress_running cancel
[ -e "$T/cancel.rc" ] && fail "cancel: the call returned before Cancel was pressed"
PD=$(wait_window "^TTPO$" 5) || fail "cancel: no progress dialog"
focus "$PD"
CLICK=$(date +%s.%N)
xdotool key --clearmodifiers alt+c   # the _Cancel button
wait_file "$T/cancel.rc" 20 || fail "cancel: the plug-in call did not return within 20 s of Cancel"
LATENCY=$(python3 -c "print('%.1f' % ($(cat "$T/cancel.end") - $CLICK))")
[ "$(cat "$T/cancel.rc") $(cat "$T/cancel.out")" = "0 (#f)" ] || fail "cancel: the call did not return 'cancelled': $(cat "$T/cancel.out")"
for _ in $(seq 1 50); do [ -z "$(plugin_pids)" ] && break; sleep 0.1; done
[ -z "$(plugin_pids)" ] || fail "cancel: the plug-in process is still there"
[ "$(layer_count $IMG)" = 1 ] || fail "cancel: the image has $(layer_count $IMG) layers, not its one layer"
save_layer $IMG $L "$T/cancel-after.ppm"
cmp -s "$T/cancel-before.ppm" "$T/cancel-after.ppm" || fail "cancel: the original layer was modified"
python3 -c "import sys; sys.exit(0 if $LATENCY < 5 else 1)" || fail "cancel: the call took $LATENCY s to return after Cancel"
echo "cancel: returned cancelled $LATENCY s after Cancel, plug-in gone, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

# ---- kill: GIMP's own progress (the image window's status bar) cancels the plug-in
T0=$(date +%s)
IMG=$(new_image 96 64); L=$(layer_of $IMG)   # the new display is the active one
save_layer $IMG $L "$T/kill-before.ppm"
IW=$(wait_window " GIMP$" 10) || fail "kill: no image window"
xdotool mousemove 1279 899   # off the window: the status bar shows no pointer position
sleep 1
import -window root -depth 8 "ppm:$T/idle.ppm"
focus "$IW"
xdotool key slash   # Help > Search and Run a Command
S=$(wait_window "^Search Actions$" 10) || fail "kill: the action search did not open"
xdotool windowfocus --sync "$S"
xdotool type --delay 50 TTPO
sleep 1
xdotool key Return
settings_long_job kill
progress_running kill
PIDS=$(plugin_pids)
[ -n "$PIDS" ] || fail "kill: the plug-in is no longer running 2 s into a 1000-step job"
xdotool mousemove 1279 899
sleep 0.5
import -window root -depth 8 "ppm:$T/busy.ppm"
eval "$(xdotool getwindowgeometry --shell "$IW")"
XY=$(python3 plugins/gimp/find-statusbar-cancel.py "$T/idle.ppm" "$T/busy.ppm" "$X" "$Y" "$WIDTH" "$HEIGHT") \
  || fail "kill: no progress in the image window's status bar"
CLICK=$(date +%s.%N)
xdotool mousemove $XY click 1   # the status bar's Cancel button
for _ in $(seq 1 50); do [ -z "$(plugin_pids)" ] && break; sleep 0.1; done
GONE=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $CLICK))")
[ -z "$(plugin_pids)" ] || fail "kill: the plug-in process is still there after the status bar's Cancel"
kill -0 "$GIMP_PID" 2>/dev/null || fail "kill: GIMP died"
[ "$(layer_count $IMG)" = 1 ] || fail "kill: the image has $(layer_count $IMG) layers, not its one layer"
save_layer $IMG $L "$T/kill-after.ppm"
cmp -s "$T/kill-before.ppm" "$T/kill-after.ppm" || fail "kill: the original layer was modified"
echo "kill: status-bar Cancel at ${XY/ /,} ended the plug-in (pid $PIDS) in $GONE s, GIMP answers, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

sf '(gimp-quit 1)' >/dev/null 2>&1 || true
for _ in $(seq 1 60); do kill -0 $GIMP_PID 2>/dev/null || break; sleep 0.5; done
echo "GIMP 2.10 dialog tests passed ($(( $(date +%s) - START )) s)"

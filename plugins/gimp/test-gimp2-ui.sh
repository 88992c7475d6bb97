#!/usr/bin/env bash
# Drives the GIMP 2.10 dialogs under Xvfb with xdotool; GIMP runs its Script-Fu server
# (plug-in-script-fu-server) and sf-client.py sends it the calls and the checks.
#   pick:   the settings dialog (selection switched to "Let me pick", then OK), the progress
#           dialog, the candidate picker (Refine): a new layer with changed pixels on top.
#   cancel: a long job (steps typed as 1000): the progress dialog's title shows the time
#           left from the job's estimate; the dialog's Cancel stops it: the call returns within seconds, the plug-in process is gone, the image still has its
#           one layer and its pixels are byte-identical (PPM exports compared).
#   kill:   the filter started from the image window (Search Actions, as from the menu), so
#           GIMP's progress is the status bar; its Cancel button makes GIMP SIGKILL the
#           plug-in: the process is gone, GIMP answers later calls, the image is untouched.
# The model comes from a fake Hugging Face Hub on 127.0.0.1 (models/examples/fake_hub.rs,
# serving the tiny model as the default repo, slowed to ~7 s) into an empty HF_HOME; the
# settings dialog's model field stays empty (= the default model), TTPO_MODEL_DIR is unset.
#   batch:     a non-interactive call with the model missing fails with the clear message
#              and downloads nothing.
#   hub-id:    a Hub id the Hub lacks typed in the model field: the download is offered,
#              fails, and the library's message is shown and returned.
#   dl-cancel: OK, "Download it now?" -> Download, the download dialog's Cancel mid-way: the
#              call returns cancelled, the model does not resolve, the image is unchanged.
#   download:  the same with the download left to finish: the dialog changes while it runs
#              (bar and bytes), then the job runs on the downloaded model: a new layer.
#   chooser:   the cache removed, a model folder picked with the folder button (its "Other…"
#              file dialog): the job runs on it, and it is the remembered model.
# Saves docs/img/gimp-dialog.png, gimp-picker.png, gimp-download-ask.png and
# gimp-download.png when TTPO_SCREENSHOTS=1.
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
cp "$PHOTO" "$T/photo.png"
. plugins/gimp/ui-models.sh
hub_start "$T/tiny" "$T/hub.out"
unset TTPO_MODEL_DIR HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_HUB_OFFLINE HF_TOKEN
export HF_ENDPOINT=$HUB HF_HOME=$T/hf XDG_CACHE_HOME=$T/xdg-cache
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
# The progress dialog's title: "TTPO", then, once the job's estimate is known, the time
# left ("TTPO: about 2 min 05 s left", durations as the engine's Estimate::describe).
PROGRESS='^TTPO(: about .* left)?$'
TIME_LEFT='^TTPO: about ([0-9]+ s|[0-9]+ min [0-5][0-9] s|[0-9]+ h [0-5][0-9] min) left$'
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
# open_settings NAME: a 96x64 image (IMG, L; its pixels in NAME-before.ppm), the interactive
# call in the background, its settings dialog (W) up and focused.
open_settings() {
  IMG=$(new_image 96 64); L=$(layer_of $IMG)
  save_layer $IMG $L "$T/$1-before.ppm"
  sf_bg "$1" "(plug-in-ttpo-refine RUN-INTERACTIVE $IMG $L \"\" 0 0 \"\" 0 0 0 \"\" \"\")"
  W=$(wait_window "test-time preference optimization" 60) || fail "$1: settings dialog did not appear"
  sleep 0.5
  focus "$W"
}
# The settings dialog: focus starts in the model entry; five Tabs reach Steps (model entry,
# folder button, preset, strengths, seed, steps); Tab selects the entry's text, so typing
# replaces it; Return commits the spin button and presses the default button (OK).
settings_long_job() {
  local w
  w=$(wait_window "test-time preference optimization" 60) || fail "$1: settings dialog did not appear"
  sleep 0.5
  focus "$w"
  xdotool key Tab Tab Tab Tab Tab
  sleep 0.2
  xdotool type 1000
  xdotool key Return
}
# Waits until the progress dialog is up and the engine has run a while; the job must still
# be running then (else it is too short to test a cancel).
progress_running() {
  wait_window "$PROGRESS" 30 >/dev/null || fail "$1: progress dialog did not appear"
  sleep 2
  [ -n "$(plugin_pids)" ] || fail "$1: the plug-in is no longer running 2 s into a 1000-step job"
}

for _ in $(seq 1 120); do sf '(car (gimp-version))' >/dev/null 2>&1 && break; kill -0 $GIMP_PID 2>/dev/null || fail "GIMP exited"; sleep 0.5; done
sf '(car (gimp-version))' >/dev/null || fail "the Script-Fu server did not answer"
echo "GIMP up after $(( $(date +%s) - START )) s"

# ---- batch: a non-interactive call never downloads
no_model batch "$T/hf"
IMG=$(new_image 32 32); L=$(layer_of $IMG)
OUT=$(sf "(plug-in-ttpo-refine RUN-NONINTERACTIVE $IMG $L \"\" 0 2 \"0.2\" 0 0 0 \"\" \"\")" 2>&1) && fail "batch: the call succeeded"
grep -q "TTPO model not on this computer: model $REPO (main) is not in the Hugging Face cache" <<<"$OUT" \
  || fail "batch: not the clear message: $OUT"
grep -q "runs from scripts never download" <<<"$OUT" || fail "batch: the message does not say it never downloads: $OUT"
[ ! -e "$T/hf" ] || fail "batch: the non-interactive call wrote to the Hugging Face cache: $(find "$T/hf" | head)"
echo "batch: fails with \"${OUT:0:90}…\", nothing downloaded"

# ---- hub-id: a Hub id typed in the model field that the Hub does not have: the download
# is offered, fails, and the library's message is shown (error dialog) and returned
T0=$(date +%s)
open_settings hubid
failed_download hub-id nobody/missing
wait_file "$T/hubid.rc" 20 || fail "hub-id: the plug-in call did not return after the error dialog"
grep -q "TTPO could not download the model nobody/missing: .*nobody/missing.*127.0.0.1" "$T/hubid.out" \
  || fail "hub-id: not the download's message: $(cat "$T/hubid.out")"
[ "$(layer_count $IMG)" = 1 ] || fail "hub-id: the image has $(layer_count $IMG) layers, not its one layer"
echo "hub-id: download offered, failed with \"$(grep -o 'TTPO could not.*' "$T/hubid.out" | cut -c1-110)…\" ($(( $(date +%s) - T0 )) s)"

# ---- dl-cancel: Cancel during the download
T0=$(date +%s)
open_settings dlcancel
answer_download dl-cancel
cancel_download dl-cancel
[ -e "$T/dlcancel.rc" ] && fail "dl-cancel: the call returned before Cancel"
wait_file "$T/dlcancel.rc" 20 || fail "dl-cancel: the plug-in call did not return within 20 s of Cancel"
[ "$(cat "$T/dlcancel.rc") $(cat "$T/dlcancel.out")" = "0 (#f)" ] \
  || fail "dl-cancel: the call did not return 'cancelled': $(cat "$T/dlcancel.out")"
no_model dl-cancel "$T/hf"
[ "$(layer_count $IMG)" = 1 ] || fail "dl-cancel: the image has $(layer_count $IMG) layers, not its one layer"
save_layer $IMG $L "$T/dlcancel-after.ppm"
cmp -s "$T/dlcancel-before.ppm" "$T/dlcancel-after.ppm" || fail "dl-cancel: the original layer was modified"
PART=$(du -sb "$T/hf" | cut -f1)
echo "dl-cancel: cancelled mid-download ($PART bytes kept for resume), model not found, image unchanged ($(( $(date +%s) - T0 )) s)"

# ---- download: the same, left to finish; then the job runs on the downloaded model
T0=$(date +%s)
open_settings download
answer_download download
watch_download download "$T"
wait_file "$T/download.rc" 120 || fail "download: the plug-in call did not return"
[ "$(cat "$T/download.rc") $(cat "$T/download.out")" = "0 (#t)" ] || fail "download: the call failed: $(cat "$T/download.out")"
read -r ST DIR <<<"$(resolves "$T/hf")"
[ "$ST" = 0 ] && [[ "$DIR" == "$T/hf/hub/models--stabilityai--stable-diffusion-2-1-base/snapshots/"* ]] \
  || fail "download: the model does not resolve into the cache: $ST $DIR"
cmp -s "$T/tiny/unet/diffusion_pytorch_model.safetensors" "$DIR/unet/diffusion_pytorch_model.safetensors" \
  || fail "download: the downloaded UNet differs from the served one"
[ "$(layer_count $IMG)" = 2 ] || fail "download: no new layer after the download"
TOP=$(sf "(aref (cadr (gimp-image-get-layers $IMG)) 0)")
save_layer $IMG $TOP "$T/download-new.ppm"
cmp -s "$T/download-before.ppm" "$T/download-new.ppm" && fail "download: the new layer has the original's pixels"
echo "download: $N shots of the download dialog, its bar in $SHOTS states; model in the cache, job ran on it ($(( $(date +%s) - T0 )) s)"

# ---- pick: settings dialog -> progress -> picker -> new layer
T0=$(date +%s)
open_settings pick
# Six Tabs reach "Selection" (model, folder button, preset, strengths, seed, steps); Down
# switches a focused GTK 2 combo to the next item ("Let me pick") without popping it up;
# Alt+O is OK.
xdotool key Tab Tab Tab Tab Tab Tab
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
sf_bg cancel "(plug-in-ttpo-refine RUN-INTERACTIVE $IMG $L \"\" 0 0 \"\" 0 0 0 \"\" \"\")"
settings_long_job cancel
progress_running cancel
[ -e "$T/cancel.rc" ] && fail "cancel: the call returned before Cancel was pressed"
PD=$(wait_window "$PROGRESS" 5) || fail "cancel: no progress dialog"
TITLE=$(xdotool getwindowname "$PD")
[[ $TITLE =~ $TIME_LEFT ]] || fail "cancel: the progress dialog shows no time left: \"$TITLE\""
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
echo "cancel: progress title \"$TITLE\"; returned cancelled $LATENCY s after Cancel, plug-in gone, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

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
statusbar_cancel "$T"
[ "$(layer_count $IMG)" = 1 ] || fail "kill: the image has $(layer_count $IMG) layers, not its one layer"
save_layer $IMG $L "$T/kill-after.ppm"
cmp -s "$T/kill-before.ppm" "$T/kill-after.ppm" || fail "kill: the original layer was modified"
echo "kill: status-bar Cancel at ${XY/ /,} ended the plug-in (pid $PIDS) in $GONE s, GIMP answers, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

# ---- chooser: the folder button picks the model folder
T0=$(date +%s)
rm -rf "$T/hf"   # the default model is gone: only the chosen folder can serve the job
no_model chooser "$T/hf"
cp -r "$T/tiny" "$T/chosen"
open_settings chooser
choose_folder chooser "$T/chosen"
sleep 0.5
shot "$W" docs/img/gimp-dialog-model.png
focus "$W"
xdotool key --clearmodifiers alt+o   # OK
# "Let me pick" is remembered from the pick run: the picker comes once Stage I+II ran on
# the chosen folder (without it the download question would).
refine_in_picker chooser
wait_file "$T/chooser.rc" 60 || fail "chooser: the plug-in call did not return"
[ "$(cat "$T/chooser.rc") $(cat "$T/chooser.out")" = "0 (#t)" ] || fail "chooser: the call failed: $(cat "$T/chooser.out")"
[ "$(layer_count $IMG)" = 2 ] || fail "chooser: no new layer"
TOP=$(sf "(aref (cadr (gimp-image-get-layers $IMG)) 0)")
save_layer $IMG $TOP "$T/chooser-new.ppm"
cmp -s "$T/chooser-before.ppm" "$T/chooser-new.ppm" && fail "chooser: the new layer has the original's pixels"
# The remembered settings (TtpoParams, the model first) name the chosen folder.
KEPT=$(sf '(cadr (gimp-procedural-db-get-data "plug-in-ttpo-refine"))' | python3 -c 'import re, sys
b = bytes(int(v) & 255 for v in re.findall(r"-?\d+", sys.stdin.read())); print(b[:b.index(0)].decode())')
[ "$KEPT" = "$T/chosen" ] || fail "chooser: the remembered model is \"$KEPT\", not $T/chosen"
echo "chooser: folder picked in the file dialog, job ran on it, remembered ($(( $(date +%s) - T0 )) s)"

sf '(gimp-quit 1)' >/dev/null 2>&1 || true
for _ in $(seq 1 60); do kill -0 $GIMP_PID 2>/dev/null || break; sleep 0.5; done
echo "GIMP 2.10 dialog tests passed ($(( $(date +%s) - START )) s)"

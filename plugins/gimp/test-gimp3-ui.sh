#!/usr/bin/env bash
# Drives the GIMP 3 dialogs under Xvfb, the way test-gimp2-ui.sh does for 2.10. GIMP 3 runs
# in the Debian 13 root (gimp3-root.sh) on the host's Xvfb display (its socket folder is
# bound into the root); xdotool on the host drives the windows; a Python-Fu batch script
# calls the procedure with RUN_INTERACTIVE and writes what it sees to ui-result.txt.
#   pick:   settings dialog (selection "Let me pick", OK), progress dialog, candidate picker
#           (Refine): a new layer "TTPO (seed 0)" on top with changed pixels, original unchanged.
#   cancel: a long job (steps typed as 1000): the progress dialog's title shows the time left
#           from the job's estimate; the dialog's Cancel stops it: the
#           call returns "cancel" within seconds, the plug-in process is gone, the image has
#           its one layer and its pixels are identical.
#   batch, hub-id, dl-cancel, download, chooser: the model tests of test-gimp2-ui.sh (ui-models.sh):
#           the default model from a fake Hub into an empty HF_HOME (TTPO_MODEL_DIR unset):
#           a non-interactive call fails clearly and downloads nothing; Cancel during the
#           download leaves no model and the image unchanged; a finished download (the
#           dialog changing while it runs) feeds the job; a folder picked with the folder
#           button serves a job once the cache is gone.
# Needs root, debootstrap, xvfb xauth xdotool imagemagick (installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PHOTO=${TTPO_ASSETS:-$ROOT/.cache/assets}/photos/coffee.png
if [ -z "${TTPO_IN_XVFB:-}" ]; then
  for tool in xvfb-run xdotool import; do
    command -v $tool >/dev/null || {
      [ "$(id -u)" = 0 ] || { echo "need: apt-get install xvfb xauth xdotool imagemagick" >&2; exit 1; }
      apt-get update >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends xvfb xauth xdotool imagemagick >/dev/null
      break
    }
  done
  exec env TTPO_IN_XVFB=1 xvfb-run -a -s "-screen 0 1280x900x24" "$0" "$@"
fi
START=$(date +%s)
. plugins/gimp/gimp3-root.sh
gimp3_setup /ttpo-ui-test
GIMP_PID=
# GIMP_PID is unshare, which ignores SIGTERM; its child is the timeout around GIMP.
cleanup() { rc=$?; [ -z "$GIMP_PID" ] || kill $(pgrep -P "$GIMP_PID") 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; exit $rc; }
trap cleanup EXIT
cp "$XAUTHORITY" "$W/Xauthority"   # xvfb-run's cookie, for the clients inside the root
printf '(show-welcome-dialog no)\n' >"$W/profile/gimprc"
RES=$W/ui-result.txt

cat > "$W/ui.py" <<'PY'
import os
import time
import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gio, Gegl

def log(line):
    with open('/ttpo-ui-test/ui-result.txt', 'a') as f:
        f.write(line + '\n')

def load(w, h):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path('/ttpo-ui-test/photo.png'))
    image.scale(w, h)
    Gimp.Display.new(image)
    return image, image.get_layers()[0]

def pixels(layer):
    buf = layer.get_buffer()
    return bytes(buf.get(buf.get_extent(), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))

def refine(image, layer, mode=Gimp.RunMode.INTERACTIVE):
    proc = Gimp.get_pdb().lookup_procedure('plug-in-ttpo-refine')
    cfg = proc.create_config()
    cfg.set_property('run-mode', mode)
    cfg.set_property('image', image)
    cfg.set_core_object_array('drawables', [layer])
    return proc.run(cfg)

def wait_for(name):
    for _ in range(600):
        if os.path.exists('/ttpo-ui-test/' + name):
            return
        time.sleep(0.2)

def interactive(phase):
    image, layer = load(96, 64)
    before = pixels(layer)
    log('%s-start' % phase)
    r = refine(image, layer)
    st = r.index(0)
    layers = image.get_layers()
    log('%s-end %.3f' % (phase, time.time()))
    log('%s message=%s' % (phase, r.index(1) if r.length() > 1 else ''))
    log('%s status=%s layers=%d top=%s original-unchanged=%s new-changed=%s' % (
        phase, st.value_nick, len(layers), layers[0].get_name(), pixels(layer) == before,
        pixels(layers[0]) != before))

# batch: the model is not in the (empty) cache; a non-interactive call must not download it.
image, layer = load(32, 32)
r = refine(image, layer, Gimp.RunMode.NONINTERACTIVE)
log('batch status=%s cache-exists=%s message=%s' % (r.index(0).value_nick, os.path.exists('/ttpo-ui-test/hf'),
                                                   r.index(1) if r.length() > 1 else ''))
for phase in ('hubid', 'dlcancel', 'download', 'pick', 'cancel'):
    interactive(phase)

# kill: the harness starts the filter from the image window (as from the menu) and stops it
# with the Cancel button of GIMP's status bar; this script waits, then looks at the image.
image, layer = load(96, 64)
before = pixels(layer)
log('kill-ready')
for _ in range(600):
    if os.path.exists('/ttpo-ui-test/kill-done'):
        break
    time.sleep(0.2)
layers = image.get_layers()
log('kill layers=%d original-unchanged=%s' % (len(layers), pixels(layer) == before))
# chooser: the harness removes the cache, then picks a model folder with the folder button.
wait_for('chooser-go')
interactive('chooser')
log('done')
PY

fail() { echo "FAIL: $*" >&2; exit 1; }   # until GIMP runs (below: with its log)
. plugins/gimp/ui-models.sh
hub_start "$W/tiny" "$W/hub.out"
GIMP3_ENV="DISPLAY=$DISPLAY XAUTHORITY=/ttpo-ui-test/Xauthority HF_ENDPOINT=$HUB HF_HOME=/ttpo-ui-test/hf"
inroot timeout 300 gimp-3.0 -n -d -f -s --quit --batch-interpreter python-fu-eval \
  -b "exec(open('/ttpo-ui-test/ui.py').read())" >"$W/log" 2>&1 &
GIMP_PID=$!

fail() {
  echo "FAIL: $*" >&2
  import -window root "$W/fail.png" 2>/dev/null && cp "$W/fail.png" /tmp/ttpo-gimp3-ui-fail.png && echo "screen: /tmp/ttpo-gimp3-ui-fail.png" >&2
  echo "---- result" >&2; cat "$RES" >&2 || true
  echo "---- gimp log" >&2; cat "$W/log" >&2
  KEEP=1; exit 1
}
wait_line() { for _ in $(seq 1 $(( $2 * 10 ))); do grep -q "$1" "$RES" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# The progress dialog's title: "TTPO", then, once the job's estimate is known, the time
# left ("TTPO: about 2 min 05 s left", durations as the engine's Estimate::describe).
PROGRESS='^TTPO(: about .* left)?$'
TIME_LEFT='^TTPO: about ([0-9]+ s|[0-9]+ min [0-5][0-9] s|[0-9]+ h [0-5][0-9] min) left$'
wait_window() { # name regex, seconds
  for _ in $(seq 1 $(( $2 * 4 ))); do
    W1=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | head -1) && [ -n "$W1" ] && { echo "$W1"; return 0; }
    sleep 0.25
  done
  return 1
}
focus() { xdotool windowactivate --sync "$1" 2>/dev/null || xdotool windowfocus --sync "$1"; }
shot() { :; }   # the docs' screenshots come from test-gimp2-ui.sh
plugin_pids() { pgrep -f "^/ttpo-ui-test/profile/plug-ins/ttpo/ttpo " || true; }

# open_settings NAME: waits for the phase's call and focuses its settings dialog (D).
open_settings() {
  wait_line "^$1-start" 60 || fail "$1: the batch script did not go on"
  D=$(wait_window "test-time preference optimization" 60) || fail "$1: settings dialog did not appear"
  sleep 0.5
  focus "$D"
}

# ---- batch
wait_line "^batch status" 120 || fail "GIMP 3 did not run the batch script"
echo "GIMP 3 up after $(( $(date +%s) - START )) s"
grep -q "^batch status=execution-error cache-exists=False message=TTPO model not on this computer: model $REPO (main) is not in the Hugging Face cache.*runs from scripts never download" "$RES" \
  || fail "batch: not a failure with the clear message, or the cache was written"
no_model batch "$W/hf"
echo "batch: fails with the clear message, nothing downloaded"

# ---- hub-id: a Hub id the Hub lacks, typed in the model field: the download fails with the
# library's message (error dialog, and the call's error)
T0=$(date +%s)
open_settings hubid
failed_download hub-id nobody/missing
wait_line "^hubid status" 20 || fail "hub-id: the call did not return after the error dialog"
grep -q "^hubid message=TTPO could not download the model nobody/missing: .*nobody/missing.*127.0.0.1" "$RES" \
  || fail "hub-id: not the download's message"
grep -q "^hubid status=execution-error layers=1 " "$RES" || fail "hub-id: not an execution error with the one layer"
echo "hub-id: download offered, failed with the library's message ($(( $(date +%s) - T0 )) s)"

# ---- dl-cancel
T0=$(date +%s)
open_settings dlcancel
answer_download dl-cancel
cancel_download dl-cancel
wait_line "^dlcancel status" 20 || fail "dl-cancel: the call did not return within 20 s of Cancel"
grep -q "^dlcancel status=cancel layers=1 top=.* original-unchanged=True new-changed=False$" "$RES" \
  || fail "dl-cancel: not cancelled with the one original, unchanged layer"
no_model dl-cancel "$W/hf"
echo "dl-cancel: cancelled mid-download, model not found, image unchanged ($(( $(date +%s) - T0 )) s)"

# ---- download
T0=$(date +%s)
open_settings download
answer_download download
watch_download download "$W"
wait_line "^download status" 120 || fail "download: the call did not return"
grep -q "^download status=success layers=2 top=TTPO (seed 0) original-unchanged=True new-changed=True$" "$RES" \
  || fail "download: no new layer with changed pixels after the download"
read -r ST DIR <<<"$(resolves "$W/hf")"
[ "$ST" = 0 ] && cmp -s "$W/tiny/unet/diffusion_pytorch_model.safetensors" "$DIR/unet/diffusion_pytorch_model.safetensors" \
  || fail "download: the model does not resolve to the served files: $ST $DIR"
echo "download: $N shots of the download dialog, its bar in $SHOTS states; model in the cache, job ran on it ($(( $(date +%s) - T0 )) s)"

# ---- pick
T0=$(date +%s)
wait_line "^pick-start" 120 || fail "pick: the batch script did not go on"
D=$(wait_window "test-time preference optimization" 60) || fail "pick: settings dialog did not appear"
sleep 1
focus "$D"
# Same keys as for 2.10: six Tabs reach "Selection", Down picks "Let me pick", Alt+O is OK.
xdotool key Tab Tab Tab Tab Tab Tab
sleep 0.3
xdotool key Down
sleep 0.5
xdotool key --clearmodifiers alt+o
P=$(wait_window "pick the best and the worst" 90) || fail "pick: candidate picker did not appear"
sleep 1
focus "$P"
xdotool key --clearmodifiers alt+r
wait_line "^pick status" 120 || fail "pick: the call did not return"
grep -q "^pick status=success layers=2 top=TTPO (seed 0) original-unchanged=True new-changed=True$" "$RES" \
  || fail "pick: no new layer with changed pixels on top of an unchanged original"
echo "pick: settings, progress and picker dialogs driven, new layer on top ($(( $(date +%s) - T0 )) s)"

# ---- cancel
T0=$(date +%s)
wait_line "^cancel-start" 30 || fail "cancel: the batch script did not go on"
D=$(wait_window "test-time preference optimization" 60) || fail "cancel: settings dialog did not appear"
sleep 0.5
focus "$D"
xdotool key Tab Tab Tab Tab Tab   # Steps; Tab selects its text
sleep 0.2
xdotool type 1000
xdotool key Return
PD=$(wait_window "$PROGRESS" 30) || fail "cancel: progress dialog did not appear"
sleep 2
[ -n "$(plugin_pids)" ] || fail "cancel: the plug-in is no longer running 2 s into a 1000-step job"
TITLE=$(xdotool getwindowname "$PD")
[[ $TITLE =~ $TIME_LEFT ]] || fail "cancel: the progress dialog shows no time left: \"$TITLE\""
grep -q "^cancel-end" "$RES" && fail "cancel: the call returned before Cancel was pressed"
focus "$PD"
CLICK=$(date +%s.%N)
xdotool key --clearmodifiers alt+c   # the _Cancel button
wait_line "^cancel-end" 20 || fail "cancel: the call did not return within 20 s of Cancel"
LATENCY=$(python3 -c "print('%.1f' % ($(sed -n 's/^cancel-end //p' "$RES") - $CLICK))")
for _ in $(seq 1 50); do [ -z "$(plugin_pids)" ] && break; sleep 0.1; done
[ -z "$(plugin_pids)" ] || fail "cancel: the plug-in process is still there"
wait_line "^cancel status" 10 || fail "cancel: no result line"
grep -q "^cancel status=cancel layers=1 top=.* original-unchanged=True new-changed=False$" "$RES" \
  || fail "cancel: not cancelled with the one original, unchanged layer"
python3 -c "import sys; sys.exit(0 if $LATENCY < 5 else 1)" || fail "cancel: the call took $LATENCY s to return after Cancel"
echo "cancel: progress title \"$TITLE\"; returned $LATENCY s after Cancel, plug-in gone, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

# ---- kill: GIMP's own progress (the image window's status bar) cancels the plug-in
T0=$(date +%s)
wait_line "^kill-ready" 30 || fail "kill: the batch script did not go on"
IW=$(wait_window " GIMP$" 10) || fail "kill: no image window"
xdotool mousemove 1279 899   # off the window: the status bar shows no pointer position
sleep 1
import -window root -depth 8 "ppm:$W/idle.ppm"
focus "$IW"
xdotool key slash   # Search and Run a Command
S=$(wait_window "^Search Actions$" 10) || fail "kill: the action search did not open"
xdotool windowfocus --sync "$S"
xdotool type --delay 50 TTPO
sleep 1
xdotool key Return
D=$(wait_window "test-time preference optimization" 60) || fail "kill: settings dialog did not appear"
sleep 0.5
focus "$D"
xdotool key Tab Tab Tab Tab Tab
sleep 0.2
xdotool type 1000
xdotool key Return
wait_window "$PROGRESS" 30 >/dev/null || fail "kill: progress dialog did not appear"
sleep 2
statusbar_cancel "$W"
touch "$W/kill-done"
wait_line "^kill layers" 20 || fail "kill: GIMP did not answer the batch script after the kill"
grep -q "^kill layers=1 original-unchanged=True$" "$RES" || fail "kill: not the one original, unchanged layer"
echo "kill: status-bar Cancel at ${XY/ /,} ended the plug-in (pid $PIDS) in $GONE s, GIMP answers, one layer, pixels identical ($(( $(date +%s) - T0 )) s)"

# ---- chooser: the cache removed, the folder button picks the model folder
T0=$(date +%s)
rm -rf "$W/hf"
cp -r "$W/tiny" "$W/chosen"
touch "$W/chooser-go"
open_settings chooser
choose_folder chooser /ttpo-ui-test/chosen
sleep 0.5
focus "$D"
xdotool key --clearmodifiers alt+o   # OK
# "Let me pick" is remembered from the pick run: the picker comes once Stage I+II ran on
# the chosen folder (without it the download question would).
refine_in_picker chooser
wait_line "^chooser status" 60 || fail "chooser: the call did not return"
grep -q "^chooser status=success layers=2 top=TTPO (seed 0) original-unchanged=True new-changed=True$" "$RES" \
  || fail "chooser: no new layer with changed pixels"
echo "chooser: folder picked in the file dialog, job ran on it ($(( $(date +%s) - T0 )) s)"
wait_line "^done" 10 || fail "the batch script did not finish"
for _ in $(seq 1 60); do kill -0 $GIMP_PID 2>/dev/null || break; sleep 0.5; done
echo "GIMP 3 dialog tests passed ($(( $(date +%s) - START )) s in all)"

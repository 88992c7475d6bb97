# Sourced by test-gimp2-ui.sh and test-gimp3-ui.sh (bash, from the repository root): the
# model part of the dialog tests, the same dialogs (ttpo-ui.c) in GIMP 2.10 and 3. Uses the
# caller's fail, wait_window, focus and shot.
#   hub_start MODEL_DIR OUT   serves MODEL_DIR as the default repo ($REPO) from a fake Hub
#                             on 127.0.0.1 (models/examples/fake_hub.rs: 8 KiB pieces 10 ms
#                             apart, ~7 s for the tiny model) until this shell exits; sets
#                             HUB (the endpoint, for HF_ENDPOINT). OUT: a scratch file.
#   resolves HF_HOME          "<status> <folder>" of the default model as libttpo resolves it
#                             with that cache (4 = TTPO_STATUS_MODEL_NOT_FOUND).
#   no_model NAME HF_HOME     fails unless the default model is missing from that cache.
#   answer_download NAME [fails]  in the focused settings dialog: OK, then "Download it
#                             now?" -> Download; returns when the download dialog is up
#                             (with "fails": at once, the dialog may be gone already).
#   failed_download NAME HUB_ID  in the focused settings dialog: HUB_ID typed in the model
#                             field, OK, Download; the download fails at once: the error
#                             dialog must come; it is closed.
#   cancel_download NAME      2 s into the download, its dialog's Cancel.
#   watch_download NAME DIR   screenshots of the download dialog every 0.5 s until it
#                             closes (into DIR); sets N (shots) and SHOTS (distinct states
#                             of the progress bar), fails unless the bar moved twice.
#   choose_folder NAME PATH   in the focused settings dialog (focus in the model entry):
#                             the folder button's "Other…" file dialog picks PATH.
#   refine_in_picker NAME     after OK with "Let me pick" remembered: the picker must come
#                             (not the download question), Refine.
REPO=stabilityai/stable-diffusion-2-1-base
DL_QUESTION="download the model$"
DL_DIALOG="downloading the model$"

hub_start() {
  cargo build --release -p ttpo-models --features fake-hub --example fake_hub >&2
  exec 7> >(exec target/release/examples/fake_hub "$REPO" 0123456789abcdef0123456789abcdef01234567 "$1" 10 >"$2")
  for _ in $(seq 100); do [ -s "$2" ] && break; sleep 0.1; done
  HUB=$(head -1 "$2")
  [ -n "$HUB" ] || { echo "FAIL: the fake Hub did not start" >&2; exit 1; }
}

resolves() {
  HF_HOME=$1 env -u TTPO_MODEL_DIR -u HF_HUB_CACHE -u HUGGINGFACE_HUB_CACHE python3 -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); buf = ctypes.create_string_buffer(4096); n = ctypes.c_size_t()
st = lib.ttpo_model_resolve(None, None, buf, 4096, ctypes.byref(n)); print(st, buf.value.decode())' \
    "$PWD/target/release/libttpo.so"
}

no_model() {
  [ "$(resolves "$2")" = "4 " ] || fail "$1: the default model resolves: $(resolves "$2")"
}

answer_download() {
  local w
  xdotool key Return   # OK (the model entry activates the default button)
  w=$(wait_window "$DL_QUESTION" 30) || fail "$1: no \"Download it now?\" question"
  sleep 0.5
  focus "$w"
  shot "$w" docs/img/gimp-download-ask.png
  xdotool key --clearmodifiers alt+d   # _Download
  [ "${2:-}" = fails ] || wait_window "$DL_DIALOG" 20 >/dev/null || fail "$1: no download dialog"
}

failed_download() {
  xdotool type --delay 20 "$2"
  answer_download "$1" fails
  local e
  e=$(wait_window "^TTPO$" 20) || fail "$1: no error dialog"
  sleep 0.5
  focus "$e"
  xdotool key Escape
}

cancel_download() {
  sleep 2
  local d
  d=$(wait_window "$DL_DIALOG" 5) || fail "$1: the download ended within 2 s (too fast to cancel)"
  focus "$d"
  xdotool key --clearmodifiers alt+c   # the _Cancel button
}

watch_download() {
  local d
  d=$(wait_window "$DL_DIALOG" 5) || fail "$1: no download dialog"
  N=0
  while xdotool search --onlyvisible --name "$DL_DIALOG" >/dev/null 2>&1; do
    import -window "$d" -depth 8 "ppm:$2/dl-$N.ppm" 2>/dev/null || true
    [ $N != 4 ] || shot "$d" docs/img/gimp-download.png
    N=$((N + 1))
    [ $N -lt 200 ] || fail "$1: still downloading after 100 s"
    sleep 0.5
  done
  # Distinct states of the band between the label and the buttons, where the bar is (PPM
  # shots: no timestamps, so equal pixels are equal bytes; the label with the file name is
  # above the band, so a changing label alone does not count).
  SHOTS=$(python3 -c 'import sys
def band(path):
    d = open(path, "rb").read()
    magic, w, h, maxval = d.split(maxsplit=4)[:4]   # import writes no comments
    rows = d[len(d) - int(w) * int(h) * 3:]
    y0, y1 = int(int(h) * 0.30), int(int(h) * 0.62)
    return rows[y0 * int(w) * 3:y1 * int(w) * 3]
print(len({band(f) for f in sys.argv[1:] if open(f, "rb").read(2) == b"P6"}))' "$2"/dl-*.ppm)
  [ "$SHOTS" -ge 3 ] || fail "$1: the download's progress bar showed $SHOTS different states in $N shots (not moving)"
}

# The folder button is a combo of folders ending with "Other…" (GTK 2 and 3), which opens
# the file dialog; there the typed "/" opens the location entry, Delete drops an inline
# completion, Return chooses the folder.
choose_folder() {
  xdotool key Tab space
  sleep 0.8
  xdotool key End Return
  local f
  f=$(wait_window "choose the model folder" 10) || fail "$1: the folder dialog did not open"
  focus "$f"
  sleep 0.5
  xdotool type --delay 50 "$2/"
  sleep 0.5
  xdotool key Delete Return
  for _ in $(seq 20); do xdotool search --onlyvisible --name "choose the model folder" >/dev/null 2>&1 || return 0; sleep 0.25; done
  fail "$1: the folder dialog did not close"
}

refine_in_picker() {
  local p
  p=$(wait_window "pick the best and the worst|$DL_QUESTION" 90) || fail "$1: no picker"
  [ "$(xdotool getwindowname "$p")" = "TTPO — pick the best and the worst" ] \
    || fail "$1: the chosen folder was not used (the download was offered)"
  sleep 0.5
  focus "$p"
  xdotool key --clearmodifiers alt+r   # _Refine
}

# statusbar_cancel DIR: with the plug-in running a long job, finds the Cancel button of the
# image window's ($IW) status-bar progress by comparing DIR/idle.ppm with a shot taken now,
# clicks it, and checks that the plug-in process ends within 5 s and GIMP ($GIMP_PID)
# lives. Sets PIDS, XY and GONE for the caller's report.
statusbar_cancel() {
  local dir=$1
  PIDS=$(plugin_pids)
  [ -n "$PIDS" ] || fail "kill: the plug-in is no longer running 2 s into a 1000-step job"
  xdotool mousemove 1279 899
  sleep 0.5
  import -window root -depth 8 "ppm:$dir/busy.ppm"
  eval "$(xdotool getwindowgeometry --shell "$IW")"
  XY=$(python3 plugins/gimp/find-statusbar-cancel.py "$dir/idle.ppm" "$dir/busy.ppm" "$X" "$Y" "$WIDTH" "$HEIGHT") \
    || fail "kill: no progress in the image window's status bar"
  local click
  click=$(date +%s.%N)
  xdotool mousemove $XY click 1   # the status bar's Cancel button
  for _ in $(seq 1 50); do [ -z "$(plugin_pids)" ] && break; sleep 0.1; done
  GONE=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $click))")
  [ -z "$(plugin_pids)" ] || fail "kill: the plug-in process is still there after the status bar's Cancel"
  kill -0 "$GIMP_PID" 2>/dev/null || fail "kill: GIMP died"
}

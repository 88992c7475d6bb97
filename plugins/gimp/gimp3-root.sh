# Sourced by test-gimp3.sh and test-gimp3-ui.sh (bash, from the repository root).
#   gimp3_setup DIR   makes (once) the Debian 13 root with GIMP 3 (trixie-root.sh), builds
#                     libttpo and the tiny model on the host, and builds and installs the
#                     plug-in inside the root. DIR (e.g. /ttpo-test) is the test folder inside
#                     the root, recreated; sets R (the root) and W (DIR seen from the host):
#                     W/src (sources), W/profile (GIMP3_DIRECTORY), W/tiny (model), W/photo.png.
#   inroot CMD...     runs CMD in the root: a private mount namespace with /proc and /dev/shm
#                     (and the host's /tmp/.X11-unix when DISPLAY is set), a clean environment
#                     plus GIMP3_ENV (space-separated NAME=VALUE words).
gimp3_setup() {
  GIMP3_DIR=$1
  [ "$(id -u)" = 0 ] || { echo "$0 needs root (debootstrap, chroot)" >&2; exit 1; }
  local t0
  t0=$(date +%s)
  R=$(plugins/gimp/trixie-root.sh)
  echo "trixie root ready after $(( $(date +%s) - t0 )) s: $R"
  cargo build --release -p ttpo-ffi >&2
  cargo build --release -p ttpo --example make_tiny_model >&2
  W=$R$GIMP3_DIR
  rm -rf "$W"
  mkdir -p "$W/src/plugins/gimp" "$W/src/include" "$W/profile/gradients"
  cp plugins/gimp/*.c plugins/gimp/*.h plugins/gimp/install.sh "$W/src/plugins/gimp/"
  cp include/ttpo.h "$W/src/include/"
  cp target/release/libttpo.so "$W/libttpo.so"
  target/release/examples/make_tiny_model "$W/tiny" >/dev/null
  cp "${PHOTO:?}" "$W/photo.png"
  inroot "$GIMP3_DIR/src/plugins/gimp/install.sh" 3 >/dev/null
  test -x "$W/profile/plug-ins/ttpo/ttpo" && test -f "$W/profile/plug-ins/ttpo/libttpo.so.1"
}

inroot() {
  # glibc finds $ORIGIN of the plug-in through /proc/self/exe; the namespace and its mounts
  # disappear with the command, nothing to unmount.
  local x11=
  [ -z "${DISPLAY:-}" ] || { x11=1; mkdir -p "$R/tmp/.X11-unix"; }
  # shellcheck disable=SC2086,SC2016
  ROOTDIR=$R X11=$x11 unshare --mount --fork --kill-child /bin/sh -c '
    if [ -n "$X11" ]; then mount --bind /tmp/.X11-unix "$ROOTDIR/tmp/.X11-unix" || exit 1; fi
    exec chroot "$ROOTDIR" /bin/sh -c "mount -t proc proc /proc && mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm && exec \"\$@\"" sh "$@"' sh \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$GIMP3_DIR" LANG=C.UTF-8 \
    GIMP3_DIRECTORY="$GIMP3_DIR/profile" TTPO_LIB="$GIMP3_DIR/libttpo.so" ${GIMP3_ENV:-} "$@"
}

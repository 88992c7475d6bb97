#!/usr/bin/env bash
# Builds and installs the TTPO GIMP plug-in.
#   plugins/gimp/install.sh 2.10   -> ${GIMP2_DIRECTORY:-~/.config/GIMP/2.10}/plug-ins/ttpo/
#   plugins/gimp/install.sh 3      -> ${GIMP3_DIRECTORY:-~/.config/GIMP/3.0}/plug-ins/ttpo/
# The folder gets the plug-in (named ttpo, as GIMP requires) and libttpo.so.<ABI> next to it
# (found through rpath $ORIGIN). Needs a C compiler, pkg-config and libgimp2.0-dev (2.10)
# or libgimp-3.0-dev (3). TTPO_LIB=/path/libttpo.so uses a prebuilt library instead of
# running `cargo build --release -p ttpo-ffi` (e.g. inside a chroot without Rust);
# CARGO_FEATURES=cuda builds the library with CUDA. DESTDIR-like override: TTPO_PLUGIN_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
case "${1:-}" in
  2|2.10) PKG=gimpui-2.0; SRC=ttpo-gimp2.c; BASE=${GIMP2_DIRECTORY:-$HOME/.config/GIMP/2.10} ;;
  3|3.0)  PKG=gimpui-3.0; SRC=ttpo-gimp3.c; BASE=${GIMP3_DIRECTORY:-$HOME/.config/GIMP/3.0} ;;
  *) echo "usage: $0 2.10|3" >&2; exit 2 ;;
esac
DEST=${TTPO_PLUGIN_DIR:-$BASE/plug-ins/ttpo}
if [ -z "${TTPO_LIB:-}" ]; then
  (cd "$ROOT" && cargo build --release -p ttpo-ffi ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} >&2)
  TTPO_LIB=$ROOT/target/release/libttpo.so
fi
pkg-config --exists "$PKG" || { echo "error: pkg-config cannot find $PKG (install the GIMP plug-in SDK)" >&2; exit 1; }
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
# The library's soname is libttpo.so.<TTPO_ABI_VERSION> (include/ttpo.h); the plug-in asks
# for that name, so it is installed under it.
ABI=$(sed -n 's/^#define TTPO_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$ROOT/include/ttpo.h")
cp "$TTPO_LIB" "$BUILD/libttpo.so.$ABI"
ln -s "libttpo.so.$ABI" "$BUILD/libttpo.so"
${CC:-cc} -O2 -Wall -Wextra -Wno-deprecated-declarations -Wno-ignored-qualifiers -I"$ROOT/include" -I"$HERE" \
  "$HERE/$SRC" "$HERE/ttpo-common.c" "$HERE/ttpo-ui.c" -o "$BUILD/ttpo" \
  $(pkg-config --cflags --libs "$PKG") -L"$BUILD" -lttpo -lm -Wl,-rpath,'$ORIGIN'
mkdir -p "$DEST"
install -m 755 "$BUILD/ttpo" "$DEST/ttpo"
install -m 644 "$BUILD/libttpo.so.$ABI" "$DEST/libttpo.so.$ABI"
echo "$DEST"

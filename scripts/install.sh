#!/usr/bin/env bash
# Installs libttpo (shared + static), the headers and a pkg-config file under PREFIX:
#   scripts/install.sh /usr/local        (builds the release library first)
# Afterwards: cc prog.c $(pkg-config --cflags --libs ttpo)
set -euo pipefail
PREFIX=${1:?usage: scripts/install.sh PREFIX}
cd "$(dirname "$0")/.."
cargo build --release -p ttpo-ffi ${TTPO_FEATURES:+--features "$TTPO_FEATURES"}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The soname is libttpo.so.<ABI level> (ffi/build.rs, from ffi/src/abi.rs); the header says
# which level this is. The file is installed under its soname, with the link for -lttpo.
ABI=$(sed -n 's/^#define TTPO_ABI_VERSION \([0-9][0-9]*\)$/\1/p' include/ttpo.h)
[ -n "$ABI" ] || { echo "install.sh: no TTPO_ABI_VERSION in include/ttpo.h" >&2; exit 1; }
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 755 target/release/libttpo.so "$PREFIX/lib/libttpo.so.$ABI"
ln -sf "libttpo.so.$ABI" "$PREFIX/lib/libttpo.so"
install -m 644 target/release/libttpo.a "$PREFIX/lib/libttpo.a"
install -m 644 include/ttpo.h include/ttpo.hpp "$PREFIX/include/"
cat > "$PREFIX/lib/pkgconfig/ttpo.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: ttpo
Description: Test-Time Preference Optimization for image restoration (C API)
Version: $VERSION
Libs: -L\${libdir} -lttpo
Libs.private: -lpthread -ldl -lm
Cflags: -I\${includedir}
PC
echo "installed libttpo $VERSION to $PREFIX"

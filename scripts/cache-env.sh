# Sourced by scripts/test.sh and the benchmark scripts: where the tests' fetched, generated
# and built things live. A per-user cache outside the checkout (TTPO_CACHE, default
# ~/.cache/ttpo), so that a fresh clone on a machine that ran the tests before reuses them
# instead of spending half an hour rebuilding them; every step still verifies or rebuilds what
# it finds (checksums, stamps, cargo's fingerprints), so a cold cache only costs time.
# TTPO_CACHE= (empty) keeps everything inside the checkout. Expects ROOT (the checkout).
CACHE=${TTPO_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/ttpo}
if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE/target"
  [ -e "$ROOT/target" ] || ln -s "$CACHE/target" "$ROOT/target"
  export TTPO_ASSETS=${TTPO_ASSETS:-$CACHE/assets}
  export TTPO_VENV=${TTPO_VENV:-$CACHE/venv}
  export TTPO_TRIXIE_ROOT=${TTPO_TRIXIE_ROOT:-$CACHE/trixie-root}
  export TTPO_SID_ROOT=${TTPO_SID_ROOT:-$CACHE/sid-root}
  export TTPO_REFERENCE=${TTPO_REFERENCE:-$CACHE/reference}
  export TTPO_REFERENCE_FULL=${TTPO_REFERENCE_FULL:-$CACHE/reference-full}
  export TTPO_TFJS_ROOT=${TTPO_TFJS_ROOT:-$CACHE}
fi
export TTPO_ASSETS=${TTPO_ASSETS:-$ROOT/.cache/assets}

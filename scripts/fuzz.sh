#!/usr/bin/env bash
# Builds every cargo-fuzz target (libFuzzer + AddressSanitizer, debug assertions on) and
# runs each for SECONDS (default 20), seeded from the committed fuzz/seeds/<target>.
# Fails if any target finds a crash, a timeout or an out-of-memory; the reproducer is left
# in fuzz/artifacts/<target>/. Works from a fresh clone: installs cargo-fuzz if missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: TTPO_FUZZ_TOOLCHAIN (default nightly), TTPO_FUZZ_JOBS (parallel fuzzing
# processes per target, default 1), TTPO_FUZZ_TARGET_DIR (build dir, default
# <repo>/target/fuzz: inside the cached target dir when scripts/test.sh made `target` a link,
# which saves the ~23-minute cold sanitizer build of candle). See docs/FUZZING.md.
set -euo pipefail

secs=${1:-20}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
toolchain=${TTPO_FUZZ_TOOLCHAIN:-nightly}
jobs=${TTPO_FUZZ_JOBS:-1}
all=(image_decode ffi_image options model_folder job_threads)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
tdir=${TTPO_FUZZ_TARGET_DIR:-$root/target/fuzz}
cd "$root/fuzz"

cargo "+$toolchain" fuzz build --debug-assertions --release --target-dir "$tdir"

# A config value that makes the loader allocate gigabytes is a bug: cap RSS and any
# single allocation at 4 GiB. 60 s for one input is a hang.
common=(-rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=60 -print_final_stats=1)
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    extra=()
    if [ "$jobs" -gt 1 ]; then
        extra=(-fork="$jobs")
    fi
    echo "== $t: ${secs}s"
    if ! cargo "+$toolchain" fuzz run --debug-assertions --release --target-dir "$tdir" "$t" \
        "corpus/$t" "seeds/$t" -- "${common[@]}" "${extra[@]}" \
        -max_total_time="$secs" -artifact_prefix="artifacts/$t/"; then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"

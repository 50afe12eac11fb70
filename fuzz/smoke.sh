#!/usr/bin/env bash
# The fuzz smoke run CI does: build every fuzz target, then run each one briefly from its committed seeds
# (fuzz/seeds/TARGET) with the limits of issue #17 (no input over 1 s, no more than 256 MiB). Exits 1 when
# a target found something (crash, timeout or out-of-memory): the inputs are left in
# ~/.cache/vworkspace-operator/fuzz-smoke/artifacts/TARGET/, the output in fuzz-smoke/TARGET.log.
#
#   bash fuzz/smoke.sh [SECONDS_PER_TARGET]   (default 20; env FUZZ_TARGETS="commit gitsign" to pick some)
#
# Needs the nightly toolchain (installed with rustup when missing) and cargo-fuzz (installed, pinned, when
# missing). Builds into $VWO_FUZZ_TARGET_DIR, by default ~/.cache/vworkspace-operator/fuzz-target: not the
# operator's CARGO_TARGET_DIR (the instrumented builds would evict its artifacts), never the repository.
set -euo pipefail

# Library backtraces off (panics keep theirs with RUST_BACKTRACE): rPGP captures a std Backtrace in its errors
# and its key parser formats them with {:?}, which resolves the backtrace (a one-time ~250 MiB of debug info per
# process, see CAMPAIGN.md, finding 4) and would make every OpenPGP key target run out of memory at once.
export RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0}

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
cache=${VWO_FUZZ_CACHE:-$HOME/.cache/vworkspace-operator}
export CARGO_TARGET_DIR=${VWO_FUZZ_TARGET_DIR:-$cache/fuzz-target}

if ! rustup run nightly rustc --version > /dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if [ "$(cargo fuzz --version 2> /dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

# No sanitizer: the crate is #![forbid(unsafe_code)] and allocates through mimalloc (src/lib.rs), which
# AddressSanitizer cannot see into; the limits that matter here (time, memory) are libFuzzer's own.
# Binaries stripped of debug info (CARGO_PROFILE_RELEASE_STRIP): a smoke run reports findings by input, not
# by symbolized stack, and twelve unstripped binaries took most of 10 GB. fuzz/run.sh keeps them.
(cd "$here/.." && CARGO_PROFILE_RELEASE_STRIP=${CARGO_PROFILE_RELEASE_STRIP:-debuginfo} \
  nice -n 19 cargo +nightly fuzz build --sanitizer none)

targets=${FUZZ_TARGETS:-$(cd "$here/.." && cargo +nightly fuzz list)}
work=$cache/fuzz-smoke
rm -rf "$work"
failed=()
for target in $targets; do
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
  echo "== $target (${seconds}s)"
  if ! nice -n 19 "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$target" \
    -timeout=1 -rss_limit_mb=256 -malloc_limit_mb=256 -max_len=16384 -max_total_time="$seconds" \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$target/" \
    "$work/corpus/$target" "$here/seeds/$target" > "$work/$target.log" 2>&1; then
    tail -40 "$work/$target.log"
    failed+=("$target")
  else
    grep -E '^stat::number_of_executed_units|^Done' "$work/$target.log" || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke run failed: ${failed[*]} (inputs in $work/artifacts)" >&2
  exit 1
fi
echo "fuzz smoke run: every target ran ${seconds}s without a finding"

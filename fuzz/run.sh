#!/usr/bin/env bash
# Fuzz one target for a while, with the limits issue #17 sets (no input over 1 s, no more than 256 MiB),
# from its seeds and its working corpus, and log what it did.
#
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#
# Builds nothing: build first (fuzz/smoke.sh does; or `cargo +nightly fuzz build --sanitizer none` with
# CARGO_TARGET_DIR=$VWO_FUZZ_TARGET_DIR, by default ~/.cache/vworkspace-operator/fuzz-target).
# The working corpus, findings and the log live outside the repository:
#   ~/.cache/vworkspace-operator/fuzz-corpus/TARGET     what libFuzzer found interesting (grows)
#   ~/.cache/vworkspace-operator/fuzz-artifacts/TARGET/ crash-*, timeout-*, oom-* inputs
#   ~/.cache/vworkspace-operator/fuzz-log.tsv           one line per run: when, target, seconds, executions,
#                                                       corpus size, exit code, the command
set -euo pipefail

# Library backtraces off (panics keep theirs with RUST_BACKTRACE): rPGP captures a std Backtrace in its errors
# and its key parser formats them with {:?}, which resolves the backtrace (a one-time ~250 MiB of debug info per
# process, see CAMPAIGN.md, finding 4) and would make every OpenPGP key target run out of memory at once.
export RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0}

target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]}
shift 2

here=$(cd "$(dirname "$0")" && pwd)
cache=${VWO_FUZZ_CACHE:-$HOME/.cache/vworkspace-operator}
target_dir=${VWO_FUZZ_TARGET_DIR:-$cache/fuzz-target}
bin=$target_dir/x86_64-unknown-linux-gnu/release/$target
[ -x "$bin" ] || { echo "no $bin: build first (cargo +nightly fuzz build --sanitizer none)" >&2; exit 2; }

# Longest input worth trying, per target (its seeds are well below).
case $target in
  event_response | notes_record | rekor_entry | ssh_signature | openpgp_signature | allowed_signers) max_len=8192 ;;
  *) max_len=16384 ;;
esac

corpus=$cache/fuzz-corpus/$target
artifacts=$cache/fuzz-artifacts/$target
mkdir -p "$corpus" "$artifacts"
log=$cache/fuzz-log.tsv
out=$cache/fuzz-runs/$target-$(date -u +%Y%m%dT%H%M%SZ).log
mkdir -p "$(dirname "$out")"

cmd=(env "RUST_LIB_BACKTRACE=$RUST_LIB_BACKTRACE" nice -n 19 "$bin" -timeout=1 -rss_limit_mb=256 -malloc_limit_mb=256 "-max_len=$max_len"
  "-max_total_time=$seconds" -print_final_stats=1 "-artifact_prefix=$artifacts/" "$@" "$corpus" "$here/seeds/$target")
start=$(date +%s)
set +e
"${cmd[@]}" > "$out" 2>&1
rc=$?
set -e
elapsed=$(($(date +%s) - start))
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
files=$(find "$corpus" -type f | wc -l)
[ -f "$log" ] || printf 'finished\ttarget\tseconds\texecutions\tcorpus_files\texit\tcommand\n' > "$log"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$elapsed" "${execs:-?}" "$files" "$rc" "${cmd[*]}" >> "$log"
echo "$target: ${elapsed}s, ${execs:-?} executions, corpus $files files, exit $rc (output: $out)"
exit "$rc"

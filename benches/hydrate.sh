#!/usr/bin/env bash
# hydrate of N intents (default 1,000) from one new signed commit — fetch, verify, render, commit (signed by
# the operator's SSH key), note and push, release binary — against rendering alone (`render --repo --rev`
# and `render --dir` of the same tree) and against git alone pushing a commit that changes as many files.
#
# Each timed run first makes a new SSH-signed intent commit that changes every intent (so every output file
# changes), then times `hydrate --once` against a bare remote on disk with a warm cache (the operator's
# steady state). The first run, on a cold cache (clone of the whole repo), is reported separately.
#
#   bash benches/hydrate.sh [N]            (env: RUNS=5, CARGO_TARGET_DIR honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
runs=${RUNS:-5}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vworkspace-operator/target}"
cargo build --release -q
bin="$CARGO_TARGET_DIR/release/vworkspace-operator"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 HOME="$tmp"

ssh-keygen -q -t ed25519 -N "" -C alice@example.com -f "$tmp/alice"
ssh-keygen -q -t ed25519 -N "" -C operator -f "$tmp/operator"
printf 'mode: range\nsshAllowedSigners: |\n  alice@example.com namespaces="git" %s\n' \
  "$(cut -d' ' -f1,2 "$tmp/alice.pub")" > "$tmp/policy.yaml"

git init -q --bare -b main "$tmp/remote.git"
git clone -q "$tmp/remote.git" "$tmp/work" 2>/dev/null
git -C "$tmp/work" checkout -q -B main

# Write N intents; $1 goes into every one of them, so each call changes every file.
. benches/intents.sh
generate() { generate_intents "$tmp/work" "$n" "$1"; }

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

# The intent commit's push is timed too, made as hydrate makes its output push (no delta search): git alone
# sending as many changed files as that push (`pushes` below), a part of a pass that is git's whatever the
# operator does.
pushes=()
commit_signed() {
  git -C "$tmp/work" add -A
  git -C "$tmp/work" -c user.name=alice -c user.email=alice@example.com -c gpg.format=ssh \
    -c user.signingkey="$tmp/alice" commit -q -S -m "$1"
  local start
  start=$(now)
  git -C "$tmp/work" -c pack.window=0 push -q --no-verify origin main
  pushes+=("$(elapsed "$start" "$(now)")")
}


hydrate() {
  RUST_LOG=warn "$bin" hydrate --once --repo "$tmp/remote.git" --cluster-id bench --policy "$tmp/policy.yaml" \
    --signing-key "$tmp/operator" --state-dir "$tmp/state" --log-format text > "$tmp/report.txt"
}

generate 1
commit_signed "intents, generation 1"
start=$(now); hydrate; cold=$(elapsed "$start" "$(now)")
objects=$(git -C "$tmp/remote.git" ls-tree -r --name-only hydrated/bench | wc -l)
echo "cold cache (clone + verify + render + commit + note + push): ${cold}s, ${objects} files"

times=()
for run in $(seq 2 $((runs + 1))); do
  generate "$run"
  commit_signed "intents, generation $run"
  start=$(now); hydrate; t=$(elapsed "$start" "$(now)")
  grep -q "output: committed" "$tmp/report.txt" || { cat "$tmp/report.txt"; exit 1; }
  changed=$(grep -o 'files +[0-9]* ~[0-9]* -[0-9]*' "$tmp/report.txt")
  echo "hydrate run $((run - 1)): ${t}s ($changed)"
  times+=("$t")
done
start=$(now); hydrate; noop=$(elapsed "$start" "$(now)")
grep -q "unchanged" "$tmp/report.txt" || { cat "$tmp/report.txt"; exit 1; }
echo "hydrate with nothing new (fetch, check, no write): ${noop}s"

render_rev=()
render_dir=()
for run in $(seq 1 "$runs"); do
  start=$(now); "$bin" render --repo "$tmp/work" --rev HEAD --cluster-id bench > /dev/null
  render_rev+=("$(elapsed "$start" "$(now)")")
  start=$(now); "$bin" render --dir "$tmp/work/clusters/bench" --cluster-id bench > /dev/null
  render_dir+=("$(elapsed "$start" "$(now)")")
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "best %.3fs, median %.3fs", a[1], a[int((NR+1)/2)]}'; }
echo
echo "$n intents, $objects rendered objects, $runs runs each:"
echo "  hydrate --once (new signed commit changing every intent): $(stats "${times[@]}")"
echo "  render --repo --rev HEAD (rendering alone, from git):      $(stats "${render_rev[@]}")"
echo "  render --dir (rendering alone, from files):                $(stats "${render_dir[@]}")"
echo "  git push of an intent commit changing every file, as hydrate pushes (git alone): $(stats "${pushes[@]:1}")"

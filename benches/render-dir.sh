#!/usr/bin/env bash
# Times `render --dir` over a generated tree of N intents (default 1,000) with the release binary.
#   bash benches/render-dir.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vworkspace-operator/target}"
cargo build --release -q
bin="$CARGO_TARGET_DIR/release/vworkspace-operator"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
. benches/intents.sh
generate_intents "$tree" "$n"
best=""
for run in 1 2 3 4 5; do
  start=$(date +%s.%N)
  "$bin" render --dir "$tree" --cluster-id bench > "$tree.out"
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc -l)
  echo "run $run: ${t}s"
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
objects=$(grep -c '^kind:' "$tree.out")
rm -f "$tree.out"
echo "render --dir over $n intents ($objects objects): best of 5 = ${best}s"

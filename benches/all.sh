#!/usr/bin/env bash
# Every performance figure of docs/operator.md ("Performance"), each from its own bench, in one table with its
# target and the command that produces it, so that a run can be compared with the last one line by line:
#
#   bash benches/all.sh                 # about 35 minutes on 2 CPUs (the e2e stack and the controller phases)
#   ONLY="render verify" bash benches/all.sh   # some of: render dir hydrate verify notes controller peer e2e churn scale
#
# `churn` (about 9 minutes more) and `scale` (the release binary with 5,000 and 10,000 intents, about 20 minutes
# more; the default's controller run has 1,000) are not in the default. Run on a quiet machine: the figures are timings. Each
# bench's own output goes to $OUT (default /tmp/vwo-bench-all/), the table to stdout (and $OUT/table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vwo-bench-all}
mkdir -p "$OUT"
ONLY=${ONLY:-render dir hydrate verify notes controller peer e2e}
want() { [[ " $ONLY " == *" $1 "* ]]; }
rows=()
row() { rows+=("| $1 | $2 | $3 | \`$4\` |"); }

# criterion's estimate (the middle of `time: [low mid high]`) in µs, for the bench whose name contains $2.
criterion_us() {
  awk -v name="$2" '
    index($0, name) { found = 1 }
    found && /time:/ {
      for (i = 1; i <= NF; i++) if ($i == "time:") { v = $(i + 3); u = $(i + 4) }
      if (u == "ns") v /= 1000; else if (u == "ms") v *= 1000; else if (u == "s") v *= 1e6
      printf "%.1f", v; exit
    }' "$1"
}

if want render; then
  for b in application_instance api_server_rules; do
    cargo bench --bench render -- "$b" >"$OUT/render-$b.log" 2>&1
  done
  us=$(criterion_us "$OUT/render-application_instance.log" application_instance)
  row "one ApplicationInstance rendered" "$us µs ($(awk -v u="$us" 'BEGIN { printf "%.1fk/s", 1000 / u }'))" "≥ 50k/s" \
    "cargo bench --bench render -- application_instance"
  # The first bench of the two is the intent seen before (its name is a prefix of the other's).
  row "the API server's rules for one intent (schema, CRD CEL rules, admission policy): the same one again / 4,096 that differ in every string and number" \
    "$(criterion_us "$OUT/render-api_server_rules.log" api_server_rules) / $(criterion_us "$OUT/render-api_server_rules.log" api_server_rules_distinct) µs" \
    "–" "cargo bench --bench render -- api_server_rules"
fi
if want dir; then
  bash benches/render-dir.sh >"$OUT/render-dir.log" 2>&1
  row "\`render --dir\` of 1,000 intents" "$(sed -n 's/.*best of 5 = \(.*\)s$/\1/p' "$OUT/render-dir.log" | awk '{ printf "%.3f s", $1 }')" "< 0.1 s" \
    "bash benches/render-dir.sh"
fi
if want hydrate; then
  bash benches/hydrate.sh >"$OUT/hydrate.log" 2>&1
  row "\`hydrate\` of 1,000 intents (new signed commit changing all); git alone pushing as many changed files" \
    "$(sed -n 's/.*hydrate --once.*: best \(.*\), median \(.*\)$/best \1, median \2/p' "$OUT/hydrate.log"); $(sed -n 's/.*git push of an intent commit.*: best \(.*\), median \(.*\)$/best \1, median \2/p' "$OUT/hydrate.log")" "< 0.1 s" \
    "bash benches/hydrate.sh"
fi
if want verify; then
  bash benches/verify-vs-git.sh >"$OUT/verify.log" 2>&1
  row "\`verify\` of 1,000 SSH-signed commits vs \`git verify-commit\`" \
    "$(sed -n 's/.*, \(.*\) us\/commit$/\1 µs\/commit/p' "$OUT/verify.log"), $(sed -n 's/^speed-up *\(.*\)x$/\1×/p' "$OUT/verify.log")" \
    "≥ 250×" "bash benches/verify-vs-git.sh"
fi
if want notes; then
  bash benches/notes-vs-git.sh >"$OUT/notes.log" 2>&1
  row "notes, 10,000 written and pushed vs \`git notes add\`" \
    "$(sed -n 's/.*(\(.*\) µs\/record)$/\1 µs\/record/p' "$OUT/notes.log"), $(sed -n 's/^speed-up: \(.*\)x$/\1×/p' "$OUT/notes.log")" \
    "≥ 200×" "bash benches/notes-vs-git.sh"
fi
# The controller bench's figures as it prints them: its rows of measure | value | target, and of measure | value
# (Pull mode's); the tables of requests by verb and resource stay in its own output.
controller_rows() { # log, command
  while IFS= read -r line; do
    case $(tr -cd '|' <<<"$line" | wc -c) in
      4) rows+=("${line} \`$2\` |") ;;
      3) rows+=("${line} | \`$2\` |") ;;
    esac
  done < <(grep -E '^\| ' "$1" | grep -vE '^\| (measure|pass|verb|stage) \||^\|---' || true)
}
if want controller; then
  cmd="cargo bench --bench controller"
  cargo bench --bench controller >"$OUT/controller.log" 2>&1
  controller_rows "$OUT/controller.log" "$cmd"
fi
if want peer; then
  cmd="PHASES=peer cargo bench --bench controller"
  PHASES=peer cargo bench --bench controller >"$OUT/peer.log" 2>&1
  controller_rows "$OUT/peer.log" "$cmd"
fi
if want churn; then
  cmd="PHASES=churn cargo bench --bench controller"
  PHASES=churn cargo bench --bench controller >"$OUT/churn.log" 2>&1
  controller_rows "$OUT/churn.log" "$cmd"
fi
if want scale; then
  for n in 5000 10000; do
    cmd="PHASES=rss RSS_N=$n cargo bench --bench controller"
    PHASES=rss RSS_N=$n cargo bench --bench controller >"$OUT/scale-$n.log" 2>&1
    controller_rows "$OUT/scale-$n.log" "$cmd"
  done
fi
if want e2e; then
  cmd="cargo test --test e2e commit_to_ready -- --ignored --nocapture"
  cargo test --test e2e commit_to_ready_latency_bench -- --ignored --nocapture >"$OUT/e2e.log" 2>&1
  while IFS='|' read -r _ stage median worst _; do
    rows+=("| commit pushed → ${stage# } (median / worst of 20) | ${median# }/ ${worst# }s | $([[ $stage == *"operator adds"* ]] && echo "≤ 1 s" || echo "–") | \`$cmd\` |")
  done < <(grep -E "^\| (GitRepository|Kustomization|HelmRelease|intent|operator adds)" "$OUT/e2e.log" || true)
fi

{
  echo "figures of $(git rev-parse --short HEAD) on $(date -u +%Y-%m-%d), $(nproc) CPUs"
  echo
  echo "| measure | value | target | command |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/table.md"

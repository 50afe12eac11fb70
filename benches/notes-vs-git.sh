#!/usr/bin/env bash
# Write 10,000 outcome records as git notes and push them: vworkspace-operator's NotesWriter (criterion
# bench `notes`) against a `git notes add` loop, in one run, on the same shape of data (10,000 commits, one
# JSON-lines record per commit, pushed to a bare remote on disk).
#
# The git loop is timed on a sample (SAMPLE records, default 200: one `git notes add` each, then one
# `git push`) and extrapolated linearly per record to 10,000 — which favours git, whose per-note cost does
# not shrink as the notes tree grows.
#
# Usage: benches/notes-vs-git.sh            (env: SAMPLE=200, CARGO_TARGET_DIR honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=${SAMPLE:-200}
RECORDS=10000
TARGET=${CARGO_TARGET_DIR:-target}

echo "== vworkspace-operator NotesWriter: ${RECORDS} records, one notes commit, CAS push (criterion)"
cargo bench --bench notes -- write_and_push 2>&1 | grep -E "write_and_push|time:" || true
EST="$TARGET/criterion/notes/write_and_push_10000_records/new/estimates.json"
ours_ns=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mean']['point_estimate'])" "$EST")

echo "== git notes add loop: ${SAMPLE} records, then git push"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.org GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.org
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git init -q --bare -b main "$tmp/remote.git"
python3 - "$RECORDS" > "$tmp/stream" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    msg = f"intent change {i}\n"
    body = f"{i}\n"
    sys.stdout.write(f"commit refs/heads/main\ncommitter Alice <alice@example.org> {1700000000 + i} +0000\n"
                     f"data {len(msg)}\n{msg}M 644 inline clusters/c1/n.txt\ndata {len(body)}\n{body}\n")
EOF
git -C "$tmp/remote.git" fast-import --quiet < "$tmp/stream"
git clone -q "$tmp/remote.git" "$tmp/work"
mapfile -t commits < <(git -C "$tmp/work" rev-list -n "$SAMPLE" main)
start=$(date +%s%N)
i=0
for c in "${commits[@]}"; do
  line=$(printf '{"id":"%064d","cluster":"c1","kind":"ApplicationInstance","namespace":"team-%d","name":"app-%d","uid":"00000000-0000-0000-0000-%012d","generation":1,"outcome":"Ready","reason":"HelmReleaseReady","message":"Helm install succeeded for release app","childRefs":{"chartVersion":"1.2.3","helmRelease":"app-%d"},"time":"2026-11-21T00:00:00Z","operatorVersion":"0.1.0"}' "$i" $((i % 50)) "$i" "$i" "$i")
  git -C "$tmp/work" notes --ref vworkspace/c1 add -m "$line" "$c"
  i=$((i + 1))
done
git -C "$tmp/work" push -q origin refs/notes/vworkspace/c1
end=$(date +%s%N)
loop_ns=$((end - start))

python3 - "$ours_ns" "$loop_ns" "$SAMPLE" "$RECORDS" <<'EOF'
import sys
ours, loop, sample, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = loop / sample
extrap = per * n
print(f"NotesWriter, {n} records (mean of criterion samples): {ours/1e9:.3f} s  ({ours/n/1e3:.1f} µs/record)")
print(f"git notes add loop, {sample} records + push:           {loop/1e9:.3f} s  ({per/1e6:.2f} ms/record)")
print(f"git notes add loop extrapolated to {n} records:      {extrap/1e9:.1f} s")
print(f"speed-up: {extrap/ours:.0f}x")
EOF

#!/usr/bin/env bash
# Verify N SSH-signed commits (default 1,000) with `vworkspace-operator verify` (release build) and with a
# `git verify-commit` loop over the same commits, in one run, and print both times and the ratio.
#
#   benches/verify-vs-git.sh                 # build the repo in a temp dir, time both, clean up
#   benches/verify-vs-git.sh --build-only D  # only build the repo, policy and allowed_signers in D
#                                            # (used by benches/verify.rs)
#   N=200 RUNS=3 benches/verify-vs-git.sh    # fewer commits / timing runs
#
# Every commit is made by `git commit-tree -S` with an ed25519 key and changes clusters/bench/app.yaml.
# Both verifiers must accept every commit, or the script fails. git is isolated from the caller's
# configuration (GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1, HOME in the work dir).
set -euo pipefail

N=${N:-1000}
RUNS=${RUNS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)

# Runs in a subshell: the isolated git environment must not leak into the caller (cargo needs HOME).
build_repo() (
    local dir=$1
    mkdir -p "$dir"
    export HOME=$dir GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 TZ=UTC LC_ALL=C
    ssh-keygen -q -t ed25519 -N '' -C bench -f "$dir/key"
    local pub
    pub=$(cut -d' ' -f1,2 "$dir/key.pub")
    echo "bench@example.com $pub" >"$dir/allowed_signers"
    printf 'sshAllowedSigners: |\n  bench@example.com %s\n' "$pub" >"$dir/policy.yaml"
    git init -q -b main "$dir/repo"
    (
        cd "$dir/repo"
        export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
        export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
        local parent="" i blob inner outer commit t=1748779200
        for ((i = 1; i <= N; i++)); do
            export GIT_AUTHOR_DATE="$((t + i)) +0000" GIT_COMMITTER_DATE="$((t + i)) +0000"
            blob=$(printf 'revision: %d\n' "$i" | git hash-object -w --stdin)
            inner=$(printf '100644 blob %s\tapp.yaml\n' "$blob" | git mktree)
            outer=$(printf '040000 tree %s\tbench\n' "$inner" | git mktree)
            outer=$(printf '040000 tree %s\tclusters\n' "$outer" | git mktree)
            commit=$(git -c gpg.format=ssh -c user.signingkey="$dir/key" \
                commit-tree -S ${parent:+-p "$parent"} -m "change $i" "$outer")
            parent=$commit
        done
        git update-ref refs/heads/main "$parent"
        git gc -q
    )
)

if [[ ${1:-} == --build-only ]]; then
    build_repo "$2"
    exit 0
fi

echo "building the release binary ..." >&2
(cd "$here" && cargo build --release --quiet --bin vworkspace-operator)
bin=${CARGO_TARGET_DIR:-$here/target}/release/vworkspace-operator

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building $N SSH-signed commits in $work ..." >&2
build_repo "$work"
cd "$work/repo"
export HOME=$work GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 TZ=UTC LC_ALL=C

now_ns() { date +%s%N; }

# Ours: one process verifying the whole range (every commit changes clusters/bench).
best_ours=""
for ((r = 1; r <= RUNS; r++)); do
    start=$(now_ns)
    "$bin" verify --repo . --policy "$work/policy.yaml" --path clusters/bench --output json main >"$work/ours.jsonl" 2>/dev/null
    took=$(($(now_ns) - start))
    [[ -z $best_ours || $took -lt $best_ours ]] && best_ours=$took
done
verified=$(grep -c '"verdict":"verified"' "$work/ours.jsonl")
[[ $verified -eq $N ]] || { echo "ours verified $verified of $N commits" >&2; exit 1; }

# git: verify-commit per commit, as a script without our tool would do.
git rev-list main >"$work/commits"
start=$(now_ns)
count=0
while read -r c; do
    git -c gpg.ssh.allowedSignersFile="$work/allowed_signers" verify-commit "$c" 2>/dev/null
    count=$((count + 1))
done <"$work/commits"
git_ns=$(($(now_ns) - start))
[[ $count -eq $N ]] || { echo "git verified $count of $N commits" >&2; exit 1; }

awk -v n="$N" -v ours="$best_ours" -v git="$git_ns" -v runs="$RUNS" 'BEGIN {
    printf "commits:                   %d (ssh-ed25519, all accepted by both)\n", n
    printf "vworkspace-operator verify %.1f ms (best of %d runs), %.1f us/commit\n", ours / 1e6, runs, ours / 1e3 / n
    printf "git verify-commit loop     %.1f ms, %.1f ms/commit\n", git / 1e6, git / 1e6 / n
    printf "speed-up                   %.0fx\n", git / ours
}'

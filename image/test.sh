#!/usr/bin/env bash
# Build the image here (image/build-local.sh: no registry pull) and test it: `--version` and `demo` run in
# it as user 65532 on a read-only root filesystem with tmpfs at /tmp and the state directory, as the
# Deployment runs it; its config (user, entrypoint, OCI labels); its size.
#
#   bash image/test.sh [BINARY]        (from anywhere; BINARY as for build-local.sh)
#
# Runs the container with podman when a runtime starts here (the first of: podman's default, crun without
# cgroups, runc); else, or with VWO_IMAGE_TEST_RUNTIME=chroot, in a chroot of the image's mounted root
# filesystem (read-only, tmpfs /tmp and state directory, /proc and a minimal /dev, private mount and PID
# namespaces) as 65532:65532. Says which. Exits non-zero on any failure; the last line counts the checks.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    exec sudo -E env HOME="$HOME" bash "$0" "$@"   # root's containers storage, as in CI
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${VWO_IMAGE_TEST_RUNTIME:-auto}   # auto | podman | chroot
state_dir=/var/lib/vworkspace-operator

log() { printf '[image-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
passed=0
failed=0
pass() { passed=$((passed + 1)); log "PASS $*"; }
fail() { failed=$((failed + 1)); log "FAIL $*"; }
summary() { log "total $(since "$t_start")"; echo "image: $passed passed, $failed failed"; }
abort() { log "FAIL $*"; failed=$((failed + 1)); summary; exit 1; }

t_start=$(now)
work=$(mktemp -d "${TMPDIR:-/tmp}/vwo-image-test.XXXXXX")
mnt=""
cleanup() {
    [ -n "$mnt" ] && podman image unmount "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- build --------------------------------------------------------------------------------------------------
t=$(now)
log "building: image/build-local.sh $*"
if ! bash "$repo/image/build-local.sh" "$@" >"$work/build.out"; then
    abort "image/build-local.sh failed (its messages above)"
fi
image=$(tail -n 1 "$work/build.out")
log "built $image in $(since "$t")"

cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
cargo_license=$(sed -n 's/^license = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)

# --- the image's config -------------------------------------------------------------------------------------
inspect() { podman image inspect --format "$1" "$image"; }
label() { inspect "{{index .Config.Labels \"$1\"}}"; }
user=$(inspect '{{.Config.User}}')
[ "$user" = "65532:65532" ] && pass "config User is $user" || fail "config User is '$user', not 65532:65532"
entrypoint=$(inspect '{{json .Config.Entrypoint}}')
cmd=$(inspect '{{json .Config.Cmd}}')
if [ "$entrypoint" = '["/usr/local/bin/vworkspace-operator"]' ] && [ "$cmd" = '["run"]' ]; then
    pass "config Entrypoint $entrypoint, Cmd $cmd"
else
    fail "config Entrypoint $entrypoint, Cmd $cmd (want [\"/usr/local/bin/vworkspace-operator\"], [\"run\"])"
fi
missing=()
for k in title description source version revision licenses; do
    [ -n "$(label "org.opencontainers.image.$k")" ] || missing+=("$k")
done
label_version=$(label org.opencontainers.image.version)
label_revision=$(label org.opencontainers.image.revision)
label_license=$(label org.opencontainers.image.licenses)
if [ ${#missing[@]} -gt 0 ]; then
    fail "OCI labels missing or empty: ${missing[*]}"
elif [ "$label_version" != "$cargo_version" ] || [ "$label_license" != "$cargo_license" ]; then
    fail "OCI labels: version '$label_version', licenses '$label_license' (Cargo.toml: $cargo_version, $cargo_license)"
else
    pass "OCI labels: version $label_version, revision $label_revision, licenses $label_license, source $(label org.opencontainers.image.source)"
fi

# --- a way to run it ----------------------------------------------------------------------------------------
# Ulimits within this machine's hard limits: podman's defaults (1048576 files) may be above them, and
# raising a hard limit needs CAP_SYS_RESOURCE, which a sandbox may not grant.
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
hard_nproc=$(ulimit -Hu)
{ [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 4096 ]; } && hard_nproc=4096
# shellcheck disable=SC2054 # the commas are mount options
podman_common=(--rm --user 65532:65532 --read-only --network=none
    --ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit "nproc=$hard_nproc:$hard_nproc"
    --tmpfs /tmp:rw,mode=1777 --tmpfs "$state_dir:rw,U,mode=0750")
podman_variant=()
# run_image ENTRYPOINT [ARG...]: stdout and stderr of the command in the image, its exit status.
run_podman() {
    local ep=$1
    shift
    timeout 300 podman run "${podman_variant[@]}" "${podman_common[@]}" --entrypoint "$ep" "$image" "$@"
}
run_chroot() {
    local ep=$1
    shift
    # The image's environment (PATH, HOME) and working directory, as a runtime would set them.
    local envs=() wd
    mapfile -t envs < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
    wd=$(inspect '{{.Config.WorkingDir}}')
    timeout 300 unshare --mount --propagation private --pid --fork --mount-proc="$mnt/proc" \
        bash -c '
            set -e
            root=$1 state=$2 wd=$3; shift 3
            mount -t tmpfs -o mode=1777,size=512m tmpfs "$root/tmp"
            mount -t tmpfs -o mode=0750,uid=65532,gid=65532,size=512m tmpfs "$root$state"
            mount -t tmpfs -o mode=0755,size=1m tmpfs "$root/dev"
            for n in null zero full random urandom tty; do
                [ -e "/dev/$n" ] || continue
                : > "$root/dev/$n"
                mount --bind "/dev/$n" "$root/dev/$n"
            done
            ln -s /proc/self/fd "$root/dev/fd"
            ln -s /proc/self/fd/0 "$root/dev/stdin"
            ln -s /proc/self/fd/1 "$root/dev/stdout"
            ln -s /proc/self/fd/2 "$root/dev/stderr"
            n_env=$1; shift
            envs=("${@:1:$n_env}"); shift "$n_env"
            cd /
            exec chroot --userspec=65532:65532 --groups=65532 "$root" \
                /usr/bin/env -i "${envs[@]}" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$wd" "$@"
        ' bash "$mnt" "$state_dir" "$wd" "${#envs[@]}" "${envs[@]}" "$ep" "$@" </dev/null
}

runner=""
if [ "$mode" != chroot ]; then
    # The first variant that starts --version is the one used.
    variants=("" "--runtime crun --cgroups=disabled" "--runtime runc")
    for v in "${variants[@]}"; do
        read -r -a podman_variant <<<"$v"
        if run_podman /usr/local/bin/vworkspace-operator --version >"$work/probe.out" 2>&1; then
            runner="podman run${v:+ $v}"
            break
        fi
        log "podman run${v:+ $v} cannot start a container here: $(tail -n 1 "$work/probe.out")"
    done
    [ -n "$runner" ] || [ "$mode" = auto ] || abort "no podman runtime starts a container here (VWO_IMAGE_TEST_RUNTIME=podman)"
fi
if [ -z "$runner" ]; then
    command -v unshare >/dev/null && command -v chroot >/dev/null || abort "chroot fallback needs unshare and chroot"
    mnt=$(podman image mount "$image") || abort "podman image mount $image failed"
    runner="chroot of the image's root filesystem ($mnt, read-only; unshare --mount --pid)"
fi
if [ -n "$mnt" ]; then
    run_image() { run_chroot "$@"; }
else
    run_image() { run_podman "$@"; }
fi
log "running the image with: $runner; as 65532:65532, read-only root, tmpfs /tmp and $state_dir"

# --- in the image -------------------------------------------------------------------------------------------
t=$(now)
status=0
run_image /usr/local/bin/vworkspace-operator --version >"$work/version.out" 2>&1 || status=$?
version_out=$(cat "$work/version.out")
if [ "$status" -ne 0 ]; then
    fail "vworkspace-operator --version exited $status: $version_out"
elif [[ "$version_out" != *"vworkspace-operator $cargo_version"* || "$version_out" != *"(git "* ]]; then
    fail "vworkspace-operator --version printed '$version_out' (want 'vworkspace-operator $cargo_version (git …)')"
elif [[ "$version_out" != *"(git $label_revision)"* ]]; then
    fail "vworkspace-operator --version printed '$version_out', the revision label is '$label_revision'"
else
    pass "--version: $version_out ($(since "$t"))"
fi

t=$(now)
status=0
run_image /usr/local/bin/vworkspace-operator demo >"$work/demo.out" 2>&1 || status=$?
result=$(grep -m 1 '^Result:' "$work/demo.out" || true)
if [ "$status" -eq 0 ] && [[ "$result" == "Result: as designed"* ]]; then
    pass "demo: ${result:0:60}… ($(since "$t"))"
else
    tail -n 30 "$work/demo.out"
    fail "demo exited $status${result:+ ($result)}; want exit 0 and 'Result: as designed' (output above)"
fi

t=$(now)
status=0
# The user, the tools the operator runs, HOME and /tmp writable, / mounted read-only.
probe=$(cat <<'EOF'
id
git --version
ssh -V 2>&1
touch "$HOME/.probe" /tmp/.probe && echo writable
awk '$5 == "/" { split($6, o, ","); m = o[1] } END { print "root mount " m }' /proc/self/mountinfo
EOF
)
run_image /bin/sh -c "$probe" >"$work/tools.out" 2>&1 || status=$?
if [ "$status" -eq 0 ] && grep -q 'uid=65532(nonroot) gid=65532(nonroot)' "$work/tools.out" \
    && grep -q '^git version' "$work/tools.out" && grep -q '^OpenSSH' "$work/tools.out" \
    && grep -qx writable "$work/tools.out" && grep -qx 'root mount ro' "$work/tools.out"; then
    pass "tools: $(tr '\n' ';' <"$work/tools.out" | sed 's/;$//') ($(since "$t"))"
else
    cat "$work/tools.out"
    fail "id, git, ssh, writable HOME and /tmp, read-only root: exit $status, output above"
fi

# Without --user, the image's own User (podman only: the chroot always runs as 65532).
if [ -z "$mnt" ]; then
    default_common=()
    for a in "${podman_common[@]}"; do [ "$a" = "--user" ] || [ "$a" = "65532:65532" ] || default_common+=("$a"); done
    uid=$(timeout 60 podman run "${podman_variant[@]}" "${default_common[@]}" --entrypoint /usr/bin/id "$image" \
        2>&1 || true)
    [[ "$uid" == "uid=65532(nonroot) gid=65532(nonroot)"* ]] && pass "default user: $uid" \
        || fail "default user: '$uid' (want uid=65532(nonroot) gid=65532(nonroot))"
fi

# --- size ---------------------------------------------------------------------------------------------------
t=$(now)
size=$(inspect '{{.Size}}')
compressed=""
if podman push --quiet "$image" "oci:$work/oci" >/dev/null 2>&1; then
    compressed=$(find "$work/oci/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.1f", s / 1e6 }')
fi
layers=$(podman image inspect --format '{{len .RootFS.Layers}}' "$image")
log "size: $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB uncompressed, ${compressed:-?} MB as pushed (gzip layers), $layers layers ($(since "$t"))"
rm -rf "$work/oci"

summary
[ "$failed" -eq 0 ]

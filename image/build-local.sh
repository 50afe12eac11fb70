#!/usr/bin/env bash
# Build the operator's image here from the Dockerfile's `runtime` stage, pulling nothing from a container
# registry (image/README.md):
#   1. the base image: Debian's minbase of $VWO_DEBIAN_SUITE made by mmdebstrap from Debian's packages, as
#      debian:*-slim is (no docs, man pages or translations; merged /usr), cached as a tarball under
#      $VWO_IMAGE_CACHE keyed by the suite and the recipe (package list), and imported into the local
#      containers storage;
#   2. the binary "image": a scratch image holding the stripped prebuilt binary at /vworkspace-operator;
#   3. `buildah bud --target runtime` with BASE_IMAGE and BINARY_IMAGE pointing at those two: the runtime
#      stage's own steps (apt-get install from the Debian mirror, the user, the labels) run as written.
#
# Usage: image/build-local.sh [BINARY]
#   BINARY                 default $VWO_BINARY, else $CARGO_TARGET_DIR/release/vworkspace-operator
#                          (CARGO_TARGET_DIR default ~/.cache/vworkspace-operator/target); stripped into a copy
#   VWO_IMAGE              the tag to build (default localhost/vworkspace-operator:local)
#   VWO_IMAGE_CACHE        the base tarball cache (default ~/.cache/vworkspace-operator/image)
#   VWO_DEBIAN_SUITE       default bookworm (the Dockerfile's debian:12.x-slim)
#   VWO_DEBIAN_MIRROR, VWO_DEBIAN_SECURITY_MIRROR   default deb.debian.org's
#   VWO_BASE_MAX_AGE_DAYS  rebuild a cached base older than this (security updates; default 14)
#   BUILDAH_ISOLATION      default chroot (works without a usable OCI runtime or cgroup setup)
# Installs what it needs (buildah, podman, mmdebstrap, binutils, runc, crun) with apt-get when missing. Runs as
# root (again under sudo when started as another user). Prints the image reference on its last line.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    # Root's containers storage, as in CI (rootless would need subuid ranges): again under sudo, same HOME.
    exec sudo -E env HOME="$HOME" bash "$0" "$@"
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CARGO_TARGET_DIR:=$HOME/.cache/vworkspace-operator/target}"
binary=${1:-${VWO_BINARY:-$CARGO_TARGET_DIR/release/vworkspace-operator}}
image=${VWO_IMAGE:-localhost/vworkspace-operator:local}
cache=${VWO_IMAGE_CACHE:-$HOME/.cache/vworkspace-operator/image}
suite=${VWO_DEBIAN_SUITE:-bookworm}
mirror=${VWO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${VWO_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
max_age_days=${VWO_BASE_MAX_AGE_DAYS:-14}
isolation=${BUILDAH_ISOLATION:-chroot}

log() { printf '[build-local %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

t_start=$(now)
[ -f "$binary" ] || die "no binary at $binary: build it (cargo build --release --locked) or pass its path"
[ -x "$binary" ] || die "$binary is not executable"

work=$(mktemp -d "${TMPDIR:-/tmp}/vwo-image.XXXXXX")
bin_ctr=""
cleanup() {
    [ -n "$bin_ctr" ] && buildah rm "$bin_ctr" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------------------------------------
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v strip >/dev/null || need+=(binutils)
# The runtimes test.sh may try (buildah's chroot isolation needs neither).
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
if [ ${#need[@]} -gt 0 ]; then
    t=$(now)
    log "installing ${need[*]} (apt-get)"
    if ! { env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; } >"$work/apt.log" 2>&1; then
        tail -n 30 "$work/apt.log" >&2
        die "apt-get install ${need[*]} failed (log above)"
    fi
    log "installed in $(since "$t")"
fi

# --- the binary ---------------------------------------------------------------------------------------------
t=$(now)
strip --strip-all -o "$work/vworkspace-operator" "$binary" || die "cannot strip $binary (not an ELF binary?)"
chmod 0755 "$work/vworkspace-operator"
version_line=$("$work/vworkspace-operator" --version 2>/dev/null || true)
# "vworkspace-operator 0.1.0 (git <sha>)": the labels say what the binary says.
version=$(sed -n 's/^vworkspace-operator \([^ ]*\) (git \([^)]*\))$/\1/p' <<<"$version_line")
revision=$(sed -n 's/^vworkspace-operator \([^ ]*\) (git \([^)]*\))$/\2/p' <<<"$version_line")
if [ -z "$version" ]; then
    log "cannot read the version from '$binary --version' ($version_line): labels from Cargo.toml and git"
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n1)
    revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
fi
log "binary $binary: stripped to $(du -m "$work/vworkspace-operator" | cut -f1) MB in $(since "$t"); version $version, git $revision"

# --- the base image -----------------------------------------------------------------------------------------
# Everything that decides the base's content is in the recipe; its hash names the cached tarball.
dpkg_excludes=(
    'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
    'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/groff/*' 'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/lintian/*' 'path-exclude=/usr/share/linda/*'
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias'
)
base_packages=()   # minbase only, like debian:*-slim: the Dockerfile installs the rest
recipe="recipe=1 suite=$suite variant=minbase arch=$(dpkg --print-architecture) merged-usr components=main
packages=${base_packages[*]:-}
dpkg=${dpkg_excludes[*]}"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
tarball="$cache/base-$suite-$key.tar"
base_ref="localhost/vworkspace-operator-base:$suite-$key"
mkdir -p "$cache"

if [ -f "$tarball" ] && [ -n "$(find "$tarball" -mtime "+$max_age_days" 2>/dev/null)" ]; then
    log "cached base $tarball is older than $max_age_days days: rebuilding it"
    rm -f "$tarball"
fi
if [ -f "$tarball" ]; then
    log "base: cached $tarball"
else
    t=$(now)
    log "base: mmdebstrap $suite minbase (no cache for key $key)"
    rm -f "$cache"/base-"$suite"-*.tar "$cache"/base-"$suite"-*.tar.tmp   # other recipes' tarballs
    mm_args=(--variant=minbase --format=tar
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
        --customize-hook='rm -f "$1/etc/hostname"; : > "$1/etc/resolv.conf"')
    for o in "${dpkg_excludes[@]}"; do mm_args+=(--dpkgopt="$o"); done
    [ ${#base_packages[@]} -gt 0 ] && mm_args+=(--include="$(IFS=,; echo "${base_packages[*]}")")
    if ! mmdebstrap "${mm_args[@]}" "$suite" "$tarball.tmp" \
        "deb $mirror $suite main" "deb $mirror $suite-updates main" \
        "deb $security_mirror $suite-security main" >"$work/mmdebstrap.log" 2>&1; then
        tail -n 30 "$work/mmdebstrap.log" >&2
        rm -f "$tarball.tmp"
        die "mmdebstrap failed (log above)"
    fi
    # An empty /dev, as in Debian's images (the runtime provides the devices).
    tar --delete --wildcards -f "$tarball.tmp" './dev/?*'
    mv "$tarball.tmp" "$tarball"
    log "base: built $(du -m "$tarball" | cut -f1) MB tarball in $(since "$t")"
fi

# The storage keeps the imported base while it is the cached tarball's (same key, same tarball stamp).
stamp=$(stat -c '%Y-%s' "$tarball")
have=$(podman image inspect --format '{{index .Labels "io.vworkspace.base-tarball"}}' "$base_ref" 2>/dev/null || true)
if [ "$have" != "$stamp" ]; then
    t=$(now)
    old_base=$(podman image inspect --format '{{.Id}}' "$base_ref" 2>/dev/null || true)
    podman import --quiet --change "LABEL io.vworkspace.base-tarball=$stamp" --change 'CMD ["bash"]' \
        "$tarball" "$base_ref" >/dev/null
    [ -z "$old_base" ] || podman rmi "$old_base" >/dev/null 2>&1 || true   # the import it replaces
    log "base: imported as $base_ref in $(since "$t")"
fi
# Bases of other recipes or suites.
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/vworkspace-operator-base:' \
    | grep -vxF "$base_ref" | xargs -r podman rmi >/dev/null 2>&1 || true

# --- the binary image and the runtime stage -----------------------------------------------------------------
t=$(now)
bin_ref="localhost/vworkspace-operator-binary:build-$$"
bin_ctr=$(buildah from --quiet scratch)
buildah copy --quiet "$bin_ctr" "$work/vworkspace-operator" /vworkspace-operator >/dev/null
buildah commit --quiet --rm "$bin_ctr" "$bin_ref" >/dev/null
bin_ctr=""
old_id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
# The context holds nothing: the runtime stage copies only from the binary image.
mkdir -p "$work/context"
log "buildah bud --target runtime ($isolation isolation) -> $image"
status=0
buildah bud --pull=never --isolation="$isolation" --network=host --target runtime \
    --build-arg BASE_IMAGE="$base_ref" --build-arg BINARY_IMAGE="$bin_ref" \
    --build-arg VWO_VERSION="$version" --build-arg VWO_GIT_REVISION="$revision" \
    --build-arg VWO_SOURCE="${VWO_SOURCE:-$(git -C "$repo" remote get-url origin 2>/dev/null || echo "file://$repo")}" \
    -f "$repo/Dockerfile" -t "$image" "$work/context" >"$work/bud.log" 2>&1 || status=$?
# buildah 1.28 leaves the working container of a stage used only by COPY --from (and of a failed step).
for ref in "$bin_ref" "$base_ref"; do
    buildah containers --quiet --filter "ancestor=$ref" 2>/dev/null | xargs -r buildah rm >/dev/null 2>&1 || true
done
podman rmi "$bin_ref" >/dev/null 2>&1 || true
if [ "$status" -ne 0 ]; then
    tail -n 40 "$work/bud.log" >&2
    die "buildah bud failed (exit $status; log above)"
fi
new_id=$(podman image inspect --format '{{.Id}}' "$image")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true   # the previous build of this tag, now untagged
fi
size=$(podman image inspect --format '{{.Size}}' "$image")
log "built $image (${new_id:0:12}, $((size / 1000000)) MB uncompressed) in $(since "$t"); total $(since "$t_start")"
echo "$image"

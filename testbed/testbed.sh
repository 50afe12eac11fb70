#!/usr/bin/env bash
# The project's test bed: builds the pinned Go components from their modules (once, cached) and says where they are.
#
#   testbed/testbed.sh ensure [NAME...]  build what is missing (all but the node, or the named binaries); print the bin directory
#   testbed/testbed.sh ensure-node   build the node's binaries (testbed/node.sh): kubelet, containerd, CNI plugins …
#   testbed/testbed.sh bin NAME      print the path of one binary (building it if needed)
#   testbed/testbed.sh versions      print the pinned version of every component
#   testbed/testbed.sh crds          print the directory of the upstream CRDs the tests install
#   testbed/testbed.sh peer-crds     print the directory of Flux Operator's CRDs (benches/controller/peer.rs only)
#
# Components (each a Go module under testbed/go/, its versions pinned by go.mod + go.sum):
#   kube/                  kube-apiserver, kubectl (k8s.io/kubernetes) and etcd (go.etcd.io/etcd/server/v3)
#   source-controller/     Flux source-controller        kustomize-controller/  Flux kustomize-controller
#   helm-controller/       Flux helm-controller          tools/                 registry (distribution), helm, testbed-http
#   cosign/                cosign (github.com/sigstore/cosign/v3): signs the test chart in the registry with a key
#   node/                  kubelet, kube-proxy, kube-scheduler, kube-controller-manager (k8s.io/kubernetes)
#   runtime/               containerd + containerd-shim-runc-v2 + ctr, CNI plugins, crane, pause (ours)
#   argocd/                Argo CD v3.3 (application-controller, repo-server) and testbed-redis, on demand only
#   flux-operator/         Flux Operator (ResourceSet), the peer of benches/controller/peer.rs, on demand only; Go 1.27.3
#
# Cache: ${VWO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vworkspace-operator/testbed}/<component>-<key>/, where
# the key hashes that module's files and the Go version: a changed pin builds anew, an unchanged one never does.
# The Go module and build caches are Go's own (GOMODCACHE, GOCACHE). Nothing is read from outside the repository
# and the caches, and nothing is downloaded but Go modules from the module proxy.
#
# KUBEBUILDER_ASSETS (setup-envtest's folder with kube-apiserver, etcd, kubectl) is honoured by the Rust harness
# (tests/support/testbed.rs), which then skips those three; the Flux controllers and tools are still built here.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VWO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vworkspace-operator/testbed}

# The go.mod files say `go 1.26.0`; this Go is what the machine has (1.26.x). The checksum database is not
# reachable here: go.sum (committed) pins every module's hash, so nothing unpinned is accepted.
export GOSUMDB=${GOSUMDB:-off}
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0

# The Kubernetes version stamped into kube-apiserver and kubectl: the one go/kube/go.mod pins.
kube_version() { (cd "$HERE/go/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes); }

log() { echo "testbed: $*" >&2; }

# component:binary:package
TARGETS=(
  kube:kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver
  kube:kubectl:k8s.io/kubernetes/cmd/kubectl
  kube:etcd:./cmd/etcd
  source-controller:source-controller:github.com/fluxcd/source-controller
  kustomize-controller:kustomize-controller:github.com/fluxcd/kustomize-controller
  helm-controller:helm-controller:github.com/fluxcd/helm-controller
  tools:registry:github.com/distribution/distribution/v3/cmd/registry
  tools:helm:helm.sh/helm/v4/cmd/helm
  tools:testbed-http:./cmd/testbed-http
  cosign:cosign:github.com/sigstore/cosign/v3/cmd/cosign
)

# The node (testbed/node.sh): built only when named (`ensure kubelet …`, `ensure-node`, `bin kubelet`), never by a
# plain `ensure`: only the suites that run Pods need them.
NODE_TARGETS=(
  node:kubelet:k8s.io/kubernetes/cmd/kubelet
  node:kube-proxy:k8s.io/kubernetes/cmd/kube-proxy
  node:kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler
  node:kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager
  runtime:containerd:github.com/containerd/containerd/v2/cmd/containerd
  runtime:containerd-shim-runc-v2:github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  runtime:ctr:github.com/containerd/containerd/v2/cmd/ctr
  runtime:bridge:github.com/containernetworking/plugins/plugins/main/bridge
  runtime:host-local:github.com/containernetworking/plugins/plugins/ipam/host-local
  runtime:loopback:github.com/containernetworking/plugins/plugins/main/loopback
  runtime:portmap:github.com/containernetworking/plugins/plugins/meta/portmap
  runtime:crane:github.com/google/go-containerregistry/cmd/crane
  runtime:pause:./cmd/pause
)
NODE_NAMES=()
for t in "${NODE_TARGETS[@]}"; do IFS=: read -r _ n _ <<<"$t"; NODE_NAMES+=("$n"); done

# Argo CD (go/argocd/): built only when named (`bin argocd`, `ensure argocd testbed-redis`), never by a plain or a
# node `ensure`: only the opt-in Argo CD engine test (tests/argocd.rs, `--ignored`) runs it.
ON_DEMAND_TARGETS=(
  argocd:argocd:github.com/argoproj/argo-cd/v3/cmd
  argocd:testbed-redis:./cmd/testbed-redis
  flux-operator:flux-operator:github.com/controlplaneio-fluxcd/flux-operator/cmd/operator
)

need_go() { # Go 1.26+ on PATH, or Go's toolchain module from the module proxy (testbed/go-toolchain.sh)
  # shellcheck source=testbed/go-toolchain.sh
  . "$HERE/go-toolchain.sh" || { log "Go 1.26 or newer is needed to build the test bed"; exit 2; }
}

key_of() { # the cache key of one component: its module files, the Go version, this script's build flags
  local comp=$1
  {
    (cd "$HERE/go/$comp" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum)
    go env GOVERSION
    grep -E '^(export GOFLAGS|export CGO)|version.git' "$HERE/testbed.sh"
  } | sha256sum | cut -c1-16
}

ldflags_of() {
  case "$1" in
    kube-apiserver | kubectl | kubelet | kube-proxy | kube-scheduler | kube-controller-manager)
      local v minor; v=$(kube_version); minor=${v#v1.}; minor=${minor%%.*}
      echo "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1" \
        "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
        "-X k8s.io/client-go/pkg/version.gitVersion=$v" ;;
    helm)
      local v; v=$(cd "$HERE/go/tools" && go list -m -f '{{.Version}}' helm.sh/helm/v4)
      echo "-s -w -X helm.sh/helm/v4/internal/version.version=$v" ;;
    cosign) # the stamp's package in a variable, so that key_of's grep (kube's stamps) does not re-key every component
      local v rv=sigs.k8s.io/release-utils/version
      v=$(awk '$1 == "github.com/sigstore/cosign/v3" { print $2 }' "$HERE/go/cosign/go.mod")
      echo "-s -w -X $rv.gitVersion=$v -X $rv.gitTreeState=clean" ;;
    argocd)
      local v; v=$(awk '$1 == "github.com/argoproj/argo-cd/v3" { print $2 }' "$HERE/go/argocd/go.mod")
      echo "-s -w -X github.com/argoproj/argo-cd/v3/common.version=$v" ;;
    *) echo "-s -w" ;;
  esac
}

go_of() { # the go command that builds a component: Go 1.27.3 for flux-operator (its go.mod needs it), else `go`
  if [ "$1" = flux-operator ]; then
    vwo_fetch_go "$VWO_GO127_VERSION" "$VWO_GO127_ZIP_SHA256" >&2 || { log "no Go $VWO_GO127_VERSION"; exit 1; }
    echo "$vwo_go_root/bin/go"
  else
    echo go
  fi
}

bin_path() { # component binary -> cached path (not necessarily built)
  echo "$CACHE/$1-$(key_of "$1")/$2"
}

module_dir() { # GOCMD COMPONENT MODULE: the module's folder in the module cache (downloaded, go.sum-checked)
  local dir
  dir=$(cd "$HERE/go/$2" && GOTOOLCHAIN=local "$1" mod download -json "$3" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { log "module $3 ($2) has no directory in the module cache"; exit 1; }
  echo "$dir"
}

# Flux Operator embeds its web UI (`//go:embed dist/*`), which its release builds with npm and its module does not
# ship: the pinned module (go.sum checks it) is copied out of the module cache into the test bed's cache with
# go/flux-operator/webdist/ as its dist/, and built through a go.mod (a copy of ours, kept in that cache) that
# points the module at the copy. Nothing of it is kept in the repository. Prints the folder.
flux_operator_src() {
  local gocmd=$1 dir src
  src="$CACHE/flux-operator-src-$(key_of flux-operator)"
  if [ ! -f "$src/.complete" ]; then
    dir=$(module_dir "$gocmd" flux-operator github.com/controlplaneio-fluxcd/flux-operator)
    rm -rf "$src"; mkdir -p "$src"
    cp -r "$dir" "$src/flux-operator"; chmod -R u+w "$src"
    mkdir -p "$src/flux-operator/web/dist"; cp "$HERE/go/flux-operator/webdist/"* "$src/flux-operator/web/dist/"
    cp "$HERE/go/flux-operator/go.mod" "$HERE/go/flux-operator/go.sum" "$src/"
    echo "replace github.com/controlplaneio-fluxcd/flux-operator => $src/flux-operator" >>"$src/go.mod"
    touch "$src/.complete"
  fi
  echo "$src"
}

build_one() {
  local comp=$1 name=$2 pkg=$3 out
  out=$(bin_path "$comp" "$name")
  [ -x "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  log "building $name ($comp) ..."
  local t0=$SECONDS
  local gocmd modfile=(); gocmd=$(go_of "$comp")
  [ "$comp" = flux-operator ] && modfile=("-modfile=$(flux_operator_src "$gocmd")/go.mod")
  (cd "$HERE/go/$comp" && GOTOOLCHAIN=local "$gocmd" build "${modfile[@]}" -ldflags "$(ldflags_of "$name")" -o "$out.tmp" "$pkg") || {
    log "building $name failed"; rm -f "$out.tmp"; exit 1; }
  mv "$out.tmp" "$out"
  log "built $name in $((SECONDS - t0)) s"
}

lock() { # one build at a time per cache (two test binaries or two terminals may ask at once)
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
}

ensure() {
  need_go
  lock
  local t comp name pkg want targets=("${TARGETS[@]}")
  [ $# -gt 0 ] && targets+=("${NODE_TARGETS[@]}" "${ON_DEMAND_TARGETS[@]}")
  for t in "${targets[@]}"; do
    IFS=: read -r comp name pkg <<<"$t"
    if [ $# -gt 0 ]; then
      want=no
      for n in "$@"; do [ "$n" = "$name" ] && want=yes; done
      [ $want = yes ] || continue
    fi
    build_one "$comp" "$name" "$pkg"
  done
  # One folder with every binary, for the harness and for people: symlinks into the keyed cache folders.
  local all="$CACHE/bin"
  mkdir -p "$all"
  for t in "${TARGETS[@]}" "${NODE_TARGETS[@]}" "${ON_DEMAND_TARGETS[@]}"; do
    IFS=: read -r comp name pkg <<<"$t"
    [ -x "$(bin_path "$comp" "$name")" ] && ln -sfn "$(bin_path "$comp" "$name")" "$all/$name"
  done
  echo "$all"
}

one() {
  need_go
  lock
  local want=$1 t comp name pkg
  for t in "${TARGETS[@]}" "${NODE_TARGETS[@]}" "${ON_DEMAND_TARGETS[@]}"; do
    IFS=: read -r comp name pkg <<<"$t"
    if [ "$name" = "$want" ]; then build_one "$comp" "$name" "$pkg"; bin_path "$comp" "$name"; return; fi
  done
  log "no component named $want"; exit 2
}

# The upstream CRDs the tests install and validate against, each from the module that pins it:
# module-dir-of(component, module) path-in-module...
CRDS=(
  "source-controller github.com/fluxcd/source-controller config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml config/crd/bases/source.toolkit.fluxcd.io_helmrepositories.yaml config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml config/crd/bases/source.toolkit.fluxcd.io_helmcharts.yaml config/crd/bases/source.toolkit.fluxcd.io_buckets.yaml config/crd/bases/source.toolkit.fluxcd.io_externalartifacts.yaml"
  "kustomize-controller github.com/fluxcd/kustomize-controller config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml"
  "helm-controller github.com/fluxcd/helm-controller config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml"
  "crds github.com/vmware-tanzu/velero config/crd/v1/bases/velero.io_backups.yaml config/crd/v1/bases/velero.io_restores.yaml config/crd/v1/bases/velero.io_schedules.yaml"
  "crds github.com/backube/volsync config/crd/bases/volsync.backube_replicationdestinations.yaml config/crd/bases/volsync.backube_replicationsources.yaml"
  "crds github.com/kubernetes-csi/external-snapshotter/client/v8 config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml config/crd/snapshot.storage.k8s.io_volumesnapshotcontents.yaml"
  "crds github.com/argoproj/argo-workflows/v3 manifests/base/crds/full/argoproj.io_workflows.yaml manifests/base/crds/full/argoproj.io_workflowtemplates.yaml"
  "crds github.com/argoproj/argo-cd/v3 manifests/crds/application-crd.yaml manifests/crds/appproject-crd.yaml"
)

crds() { # copy the CRDs out of the module cache into one folder (keyed like the binaries); print it
  need_go
  local key out entry comp mod dir f
  key=$(for c in source-controller kustomize-controller helm-controller crds; do key_of "$c"; done | sha256sum | cut -c1-16)
  out="$CACHE/crds-$key"
  if [ ! -f "$out/.complete" ]; then
    lock
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    for entry in "${CRDS[@]}"; do
      local rest; read -r comp mod rest <<<"$entry"
      dir=$(module_dir go "$comp" "$mod")
      for f in $rest; do cp "$dir/$f" "$out.tmp/"; done
      echo "$mod $(cd "$HERE/go/$comp" && go list -m -f '{{.Version}}' "$mod") $rest" >>"$out.tmp/SOURCES"
    done
    chmod -R u+w "$out.tmp"; touch "$out.tmp/.complete"; rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  echo "$out"
}

peer_crds() { # Flux Operator's CRDs out of the module cache (keyed like its binary); print the folder
  need_go
  local out gocmd dir
  out="$CACHE/flux-operator-crds-$(key_of flux-operator)"
  if [ ! -f "$out/.complete" ]; then
    lock
    gocmd=$(go_of flux-operator)
    dir=$(module_dir "$gocmd" flux-operator github.com/controlplaneio-fluxcd/flux-operator)
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    cp "$dir"/config/crd/bases/*.yaml "$out.tmp/"
    chmod -R u+w "$out.tmp"; touch "$out.tmp/.complete"; rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  echo "$out"
}

versions() {
  need_go
  echo "kubernetes $(kube_version)"
  (cd "$HERE/go/kube" && go list -m -f 'etcd {{.Version}}' go.etcd.io/etcd/server/v3)
  (cd "$HERE/go/source-controller" && go list -m -f 'source-controller {{.Version}}' github.com/fluxcd/source-controller)
  (cd "$HERE/go/kustomize-controller" && go list -m -f 'kustomize-controller {{.Version}}' github.com/fluxcd/kustomize-controller)
  (cd "$HERE/go/helm-controller" && go list -m -f 'helm-controller {{.Version}}' github.com/fluxcd/helm-controller)
  (cd "$HERE/go/tools" && go list -m -f 'distribution {{.Version}}' github.com/distribution/distribution/v3)
  (cd "$HERE/go/tools" && go list -m -f 'helm {{.Version}}' helm.sh/helm/v4)
  (cd "$HERE/go/cosign" && go list -m -f 'cosign {{.Version}}' github.com/sigstore/cosign/v3)
  # The node's (read from go.mod: no module download for a CI that does not build them).
  local m
  awk '$1 == "github.com/argoproj/argo-cd/v3" { print "argo-cd", $2 }' "$HERE/go/argocd/go.mod"
  awk '{ sub(/^require /, "") } $1 == "github.com/controlplaneio-fluxcd/flux-operator" { print "flux-operator", $2 }' "$HERE/go/flux-operator/go.mod"
  for m in github.com/containerd/containerd/v2:containerd github.com/containernetworking/plugins:cni-plugins \
    github.com/google/go-containerregistry:crane; do
    awk -v m="${m%%:*}" -v n="${m#*:}" '$1 == m { print n, $2 }' "$HERE/go/runtime/go.mod"
  done
}

case "${1:-}" in
  ensure) shift; ensure "$@" ;;
  ensure-node) ensure "${NODE_NAMES[@]}" ;;
  bin) shift; one "${1:?usage: testbed.sh bin NAME}" ;;
  versions) versions ;;
  crds) crds ;;
  peer-crds) peer_crds ;;
  *) sed -n '2,27p' "$0"; exit 2 ;;
esac

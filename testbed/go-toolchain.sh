# Sourced by testbed.sh and .ci/run: make sure `go` (1.26 or newer) is on PATH. A machine without it gets Go's
# own toolchain module (golang.org/toolchain, the one `GOTOOLCHAIN=go1.26.8` would fetch) from the Go module proxy,
# checked against the hash below and unpacked under ~/.cache/vworkspace-operator/go/. Nothing else is downloaded.
VWO_GO_VERSION=1.26.8
# sha256 of golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64.zip as the Go module proxy serves it.
VWO_GO_ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7

vwo_go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v
  v=$(go env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 26 ]; }
}

# Go 1.27.3, only for what needs it (testbed/go/flux-operator, the peer of a bench): the same fetch, its own hash.
VWO_GO127_VERSION=1.27.3
VWO_GO127_ZIP_SHA256=af4c06478303fdd1bfb335fab86c7ccb9b12e529044a946a16a1c4bcc779f8d7

# vwo_fetch_go VERSION SHA256: unpack Go's toolchain module VERSION (checked against SHA256 on amd64) under the
# cache once, and set vwo_go_root to it.
vwo_fetch_go() {
  local version=$1 sha=$2
  vwo_go_root="${XDG_CACHE_HOME:-$HOME/.cache}/vworkspace-operator/go/go$version"
  [ -x "$vwo_go_root/bin/go" ] && return 0
  local arch proxy mod tmp
  arch=$(uname -m)
  case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
  proxy=$(printf '%s' "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1)
  mod="golang.org/toolchain@v0.0.1-go$version.linux-$arch"
  echo "go-toolchain: fetching $mod from $proxy" >&2
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$version.linux-$arch.zip" || { rm -rf "$tmp"; return 1; }
  if [ "$arch" = amd64 ] && ! echo "$sha  $tmp/go.zip" | sha256sum -c --quiet -; then
    echo "go-toolchain: checksum mismatch for $mod" >&2
    rm -rf "$tmp"
    return 1
  fi
  (cd "$tmp" && unzip -q go.zip)
  mkdir -p "$(dirname "$vwo_go_root")"
  rm -rf "$vwo_go_root"
  mv "$tmp/$mod" "$vwo_go_root"
  chmod +x "$vwo_go_root"/bin/* "$vwo_go_root"/pkg/tool/*/* 2>/dev/null || true
  rm -rf "$tmp"
}

if ! vwo_go_ok; then
  vwo_fetch_go "$VWO_GO_VERSION" "$VWO_GO_ZIP_SHA256" || { return 1 2>/dev/null || exit 1; }
  export PATH="$vwo_go_root/bin:$PATH"
  export GOTOOLCHAIN=local
fi

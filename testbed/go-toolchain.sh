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

if ! vwo_go_ok; then
  vwo_go_root="${XDG_CACHE_HOME:-$HOME/.cache}/vworkspace-operator/go/go$VWO_GO_VERSION"
  if [ ! -x "$vwo_go_root/bin/go" ]; then
    vwo_arch=$(uname -m)
    case "$vwo_arch" in x86_64) vwo_arch=amd64 ;; aarch64) vwo_arch=arm64 ;; esac
    vwo_proxy=$(printf '%s' "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1)
    vwo_mod="golang.org/toolchain@v0.0.1-go$VWO_GO_VERSION.linux-$vwo_arch"
    echo "go-toolchain: no Go 1.26+ on PATH; fetching $vwo_mod from $vwo_proxy" >&2
    vwo_tmp=$(mktemp -d)
    curl -fsSL -o "$vwo_tmp/go.zip" "$vwo_proxy/golang.org/toolchain/@v/v0.0.1-go$VWO_GO_VERSION.linux-$vwo_arch.zip"
    if [ "$vwo_arch" = amd64 ] && ! echo "$VWO_GO_ZIP_SHA256  $vwo_tmp/go.zip" | sha256sum -c --quiet -; then
      echo "go-toolchain: checksum mismatch for $vwo_mod" >&2
      rm -rf "$vwo_tmp"
      return 1 2>/dev/null || exit 1
    fi
    (cd "$vwo_tmp" && unzip -q go.zip)
    mkdir -p "$(dirname "$vwo_go_root")"
    rm -rf "$vwo_go_root"
    mv "$vwo_tmp/$vwo_mod" "$vwo_go_root"
    chmod +x "$vwo_go_root"/bin/* "$vwo_go_root"/pkg/tool/*/* 2>/dev/null || true
    rm -rf "$vwo_tmp"
  fi
  export PATH="$vwo_go_root/bin:$PATH"
  export GOTOOLCHAIN=local
fi

#!/usr/bin/env bash
# A one-node Kubernetes cluster of the test bed, where Pods run for real, in namespaces of its own:
#
#   testbed/node.sh run [--] CMD [ARG...]   start the cluster, run CMD in it, stop it; exits with CMD's status
#   testbed/node.sh shell                   the same with an interactive shell as CMD
#
# What runs (all built by testbed/testbed.sh from pinned modules, runc from Debian's package): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (+ containerd-shim-runc-v2, runc, the CNI plugins bridge,
# host-local, loopback, portmap), kubelet, kube-proxy (iptables), and the registry (HTTPS) that holds the images
# built here: `pause` (the sandbox image, testbed/go/runtime/cmd/pause), `busybox` (Debian's busybox-static) and
# `kubectl` (busybox plus the test bed's kubectl), and any image tarball named in VWO_NODE_IMAGES.
#
# Everything runs inside new network, mount and PID namespaces (unshare): the addresses below exist only there,
# no packet leaves the machine, iptables rules live and die with the network namespace, mounts with the mount
# namespace, and when CMD exits (or this script is killed) the PID namespace's init is killed and the kernel
# kills every process in it (containers and shims included). What is left on the host afterwards: empty cgroup
# folders under <subsystem>/vwo-node-*, removed by the outer script, the state folder (removed unless
# VWO_NODE_KEEP=1), and the empty mount points of PRIVATE_DIRS.
#
# Addresses (inside the node's network namespace only):
#   10.244.0.1/24   bridge vwo0: the node's address (kubelet, API server 6443, registry 5000) and the Pods' gateway
#   10.244.0.0/24   Pods (host-local IPAM on the bridge)
#   10.96.0.0/24    Services (kube-proxy iptables); 10.96.0.1 is the `kubernetes` Service
#   127.0.0.1       loopback as usual (etcd)
# CMD gets in its environment: KUBECONFIG (admin), VWO_NODE_STATE (the state folder), VWO_NODE_REGISTRY
# (10.244.0.1:5000), VWO_NODE_CA (the CA that signed the API server's and the registry's certificates, which
# containerd trusts), VWO_NODE_BIN (the test bed's bin folder), PATH with that folder first; for the Rust test
# harness VWO_TEST_KUBECONFIG (= KUBECONFIG) and VWO_STACK_HOST (10.244.0.1). $VWO_NODE_STATE/restart-kubelet.sh
# starts the kubelet again after a test killed it (its PID is in $VWO_NODE_STATE/pids/kubelet).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "node: $*" >&2; }

NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
NODE_NAME=vwo-node
REGISTRY=$NODE_IP:5000
# Host folders the node's processes write to whatever they are told: a private tmpfs on each (the mount point is
# created if missing and left, empty: removing it could detach the tmpfs of a node running beside this one).
PRIVATE_DIRS=(/var/lib/kubelet /var/lib/cni /run/netns /run/containerd /var/log/pods /var/log/containers)
BINS=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy containerd
  containerd-shim-runc-v2 ctr bridge host-local loopback portmap crane registry pause)

outer() {
  if [ "$(id -u)" != 0 ]; then # namespaces, cgroups, mounts: again as root, same environment
    command -v sudo >/dev/null || { log "needs root (namespaces, cgroups, mounts) and there is no sudo"; exit 2; }
    exec sudo -E env HOME="$HOME" PATH="$PATH" bash "$0" run -- "$@"
  fi
  local missing=() t
  for t in runc:runc iptables:iptables busybox:busybox-static openssl:openssl unshare:util-linux; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local bindir state rc=0
  bindir=${VWO_NODE_BIN:-$("$HERE/testbed.sh" ensure "${BINS[@]}")}
  state=$(mktemp -d /tmp/vwo-node.XXXXXX)
  local cg_name d
  cg_name=$(basename "$state" | tr . -)
  # The node's PID 1 is `unshare --fork`'s child: killed, the kernel kills the whole PID namespace.
  unshare --net --mount --pid --fork --mount-proc --propagation private -- \
    env VWO_NODE_BIN="$bindir" VWO_NODE_CGROUP="$cg_name" bash "$HERE/node.sh" _inner "$state" "$@" || rc=$?
  # Empty cgroups the kubelet and runc made (the processes in them are gone with the PID namespace).
  for d in /sys/fs/cgroup/*/"$cg_name" /sys/fs/cgroup/unified/"$cg_name"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  if [ "${VWO_NODE_KEEP:-}" = 1 ]; then log "state kept in $state"; else rm -rf "$state"; fi
  return $rc
}

# ---- inside the namespaces ------------------------------------------------------------------------------------

wait_for() { # description, seconds, command...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "$what did not come up in $secs s"; return 1
}

start() { # name, command... : in the background, output in $S/logs/name.log
  local name=$1; shift
  "$@" >"$S/logs/$name.log" 2>&1 &
  echo $! >"$S/pids/$name"
}

certs() { # RSA keys, as kubeadm makes them
  cd "$S/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vwo-node-ca \
    -keyout ca.key -out ca.crt 2>/dev/null
  local name sans
  for name in apiserver registry; do
    case $name in
      apiserver) sans="IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" ;;
      registry) sans="IP:127.0.0.1,IP:$NODE_IP,DNS:localhost" ;;
    esac
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
      -keyout "$name.key" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans") -out "$name.crt" 2>/dev/null
  done
  # The API server's client certificate for the kubelets (logs, exec): system:masters, which the kubelet's
  # authorization webhook (a SubjectAccessReview) allows.
  openssl req -newkey rsa:2048 -nodes \
    -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
  openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile <(printf 'extendedKeyUsage=clientAuth\n') -out kubelet-client.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() { # file, token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$S/pki/ca.crt"}
users:
- name: u
  user: {token: $2}
contexts:
- name: node
  context: {cluster: node, user: u, namespace: default}
current-context: node
EOF
}

network() {
  ip link set lo up
  ip link add vwo0 type bridge
  ip addr add "$NODE_IP/24" dev vwo0
  ip link set vwo0 up
  # No default route: this namespace has no way out, and an address beyond it fails at once (the kubelet and
  # kube-proxy are told the node's address). The Service range is routed to the bridge so that the node's own
  # processes (the API server calling a webhook's Service) get past routing to kube-proxy's DNAT rules.
  ip route add "$SERVICE_CIDR" dev vwo0
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  # What must not be shared with the host or other nodes: private tmpfs in this mount namespace.
  # (The kubelet's device-plugin folder is always /var/lib/kubelet/device-plugins.)
  local d
  for d in "${PRIVATE_DIRS[@]}"; do
    mkdir -p "$d" && mount -t tmpfs tmpfs "$d"
  done
}

cni_conf() {
  mkdir -p "$S/cni/net.d"
  cat >"$S/cni/net.d/10-vwo.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vwo",
  "plugins": [
    {"type": "bridge", "bridge": "vwo0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  mkdir -p "$S/cni/bin"
  local p
  for p in bridge host-local loopback portmap; do ln -sf "$B/$p" "$S/cni/bin/$p"; done
}

containerd_conf() {
  mkdir -p "$S/containerd/certs.d/$REGISTRY"
  cat >"$S/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "https://$REGISTRY"
[host."https://$REGISTRY"]
  capabilities = ["pull", "resolve"]
  ca = "$S/pki/ca.crt"
EOF
  cat >"$S/containerd/config.toml" <<EOF
version = 3
root = "$S/containerd/root"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$S/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$REGISTRY/pause:testbed"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$S/containerd/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  # Root here may not lower an oom_score_adj (no CAP_SYS_RESOURCE): the sandbox's -998 made runc's init fail
  # ("can't get final child's PID from pipe: EOF"). Never below containerd's own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$S/cni/bin"]
    conf_dir = "$S/cni/net.d"
EOF
}

kubelet_conf() {
  cat >"$S/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: /$VWO_NODE_CGROUP
containerRuntimeEndpoint: unix://$S/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$S/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
podLogsDir: /var/log/pods
volumePluginDir: "$S/kubelet/volume-plugins"
resolvConf: "$S/kubelet/resolv.conf"
# The machine's disk may well be over 90% full: no eviction, no image garbage collection.
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
nodeStatusReportFrequency: 10s
EOF
  : >"$S/kubelet/resolv.conf"
}

proxy_conf() {
  cat >"$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$S/admin.kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
nodePortAddresses: [primary]
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

images() { # pause and busybox, built here and pushed to the registry
  local d=$S/images
  mkdir -p "$d/pause/rootfs" "$d/busybox/rootfs/bin"
  cp "$B/pause" "$d/pause/rootfs/pause"
  tar -C "$d/pause/rootfs" --owner=0 --group=0 -cf "$d/pause.tar" .
  cp "$(command -v busybox)" "$d/busybox/rootfs/bin/busybox"
  local a
  for a in sh sleep cat echo ls true false wget ssl_client httpd nc touch test env id mkdir rm date hostname grep head; do
    ln -s busybox "$d/busybox/rootfs/bin/$a"
  done
  tar -C "$d/busybox/rootfs" --owner=0 --group=0 -cf "$d/busybox.tar" .
  # kubectl: a real Kubernetes client for Pods (in-cluster config: the ServiceAccount's token, the CA checked).
  mkdir -p "$d/kubectl/rootfs/bin"
  cp "$B/kubectl" "$d/kubectl/rootfs/bin/kubectl"
  tar -C "$d/kubectl/rootfs" --owner=0 --group=0 -cf "$d/kubectl.tar" .
  SSL_CERT_FILE=$S/pki/ca.crt crane append --platform linux/amd64 -f "$d/pause.tar" -t "$REGISTRY/pause:base" >/dev/null
  SSL_CERT_FILE=$S/pki/ca.crt crane mutate "$REGISTRY/pause:base" --entrypoint /pause -t "$REGISTRY/pause:testbed" >/dev/null
  SSL_CERT_FILE=$S/pki/ca.crt crane append --platform linux/amd64 -f "$d/busybox.tar" -t "$REGISTRY/busybox:base" >/dev/null
  SSL_CERT_FILE=$S/pki/ca.crt crane mutate "$REGISTRY/busybox:base" --entrypoint /bin/sh --env PATH=/bin \
    -t "$REGISTRY/busybox:testbed" >/dev/null
  SSL_CERT_FILE=$S/pki/ca.crt crane append -b "$REGISTRY/busybox:testbed" -f "$d/kubectl.tar" \
    -t "$REGISTRY/kubectl:testbed" >/dev/null
  # Images built elsewhere (the operator's: image/build-local.sh, then `podman save`): VWO_NODE_IMAGES is a list of
  # NAME:TAG=TARBALL (docker-archive or OCI tarball), pushed as $REGISTRY/NAME:TAG.
  local entry
  for entry in ${VWO_NODE_IMAGES:-}; do
    SSL_CERT_FILE=$S/pki/ca.crt crane push "${entry#*=}" "$REGISTRY/${entry%%=*}" >/dev/null
  done
}

inner() {
  S=$1; shift
  B=$VWO_NODE_BIN
  export PATH="$B:$PATH"
  mkdir -p "$S/logs" "$S/pids" "$S/pki" "$S/kubelet" "$S/etcd"
  # When this shell ends, however it ends, so does every process of the PID namespace (it is PID 1's child).
  network
  certs
  local admin_token node_token
  admin_token=$(openssl rand -hex 16); node_token=$(openssl rand -hex 16)
  printf '%s,admin,admin,system:masters\n%s,system:node:%s,node,system:nodes\n' "$admin_token" "$node_token" \
    "$NODE_NAME" >"$S/pki/tokens.csv"
  kubeconfig "$S/admin.kubeconfig" "$admin_token"
  kubeconfig "$S/kubelet/kubeconfig" "$node_token"

  start etcd etcd --data-dir="$S/etcd" --listen-client-urls=http://127.0.0.1:2379 \
    --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://127.0.0.1:2380 \
    --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=default=http://127.0.0.1:2380 \
    --unsafe-no-fsync --log-level=warn
  start kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 \
    --advertise-address="$NODE_IP" --secure-port=6443 \
    --tls-cert-file="$S/pki/apiserver.crt" --tls-private-key-file="$S/pki/apiserver.key" \
    --client-ca-file="$S/pki/ca.crt" --token-auth-file="$S/pki/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$S/pki/sa.pub" \
    --service-account-signing-key-file="$S/pki/sa.key" --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$S/pki/kubelet-client.crt" --kubelet-client-key="$S/pki/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --allow-privileged=true
  cat >"$S/registry.yaml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $S/registry}}
http: {addr: "$REGISTRY", tls: {certificate: $S/pki/registry.crt, key: $S/pki/registry.key}}
EOF
  start registry registry serve "$S/registry.yaml"
  export KUBECONFIG=$S/admin.kubeconfig
  wait_for kube-apiserver 120 kubectl get --raw /readyz || { tail -20 "$S/logs/kube-apiserver.log" >&2; return 1; }
  wait_for registry 30 curl -sf --cacert "$S/pki/ca.crt" "https://$REGISTRY/v2/"
  images

  start kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" \
    --authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=10257 \
    --root-ca-file="$S/pki/ca.crt" --service-account-private-key-file="$S/pki/sa.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
    --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false --controllers='*' \
    --flex-volume-plugin-dir="$S/kcm-volume-plugins"
  start kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" --authentication-kubeconfig="$KUBECONFIG" \
    --authorization-kubeconfig="$KUBECONFIG" --leader-elect=false --bind-address=127.0.0.1 --secure-port=10259

  cni_conf
  containerd_conf
  start containerd containerd --config "$S/containerd/config.toml"
  wait_for containerd 30 ctr --address "$S/containerd.sock" version || { tail -20 "$S/logs/containerd.log" >&2; return 1; }

  kubelet_conf
  local sub
  for sub in /sys/fs/cgroup/*/; do
    case $sub in */unified/) continue ;; esac
    mkdir -p "$sub$VWO_NODE_CGROUP"
  done
  # The kubelet's command as a script, so a test can kill the kubelet and start it again.
  cat >"$S/restart-kubelet.sh" <<EOF
#!/usr/bin/env bash
echo \$\$ >"$S/pids/kubelet"
exec "$B/kubelet" --config="$S/kubelet/config.yaml" --kubeconfig="$S/kubelet/kubeconfig" \\
  --root-dir="$S/kubelet/root" --cert-dir="$S/kubelet/pki" --hostname-override="$NODE_NAME" \\
  --node-ip="$NODE_IP" --v=2 >>"$S/logs/kubelet.log" 2>&1
EOF
  chmod +x "$S/restart-kubelet.sh"
  "$S/restart-kubelet.sh" &
  proxy_conf
  start kube-proxy kube-proxy --config="$S/kube-proxy.yaml" --v=2
  wait_for "node $NODE_NAME Ready" 120 \
    sh -c "kubectl get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True" ||
    { tail -30 "$S/logs/kubelet.log" >&2; return 1; }
  wait_for "default ServiceAccount" 60 kubectl get serviceaccount default
  log "node $NODE_NAME Ready (state in $S)"

  export VWO_NODE_STATE=$S VWO_NODE_REGISTRY=$REGISTRY VWO_NODE_CA=$S/pki/ca.crt
  # The Rust test harness (tests/support): this API server instead of one of its own, and its git server, chart
  # repository and registry on the bridge's address, where Pods reach them.
  export VWO_TEST_KUBECONFIG=$KUBECONFIG VWO_STACK_HOST=$NODE_IP
  local rc=0
  "$@" || rc=$?
  # Pods stopped first (their sandboxes' network teardown), then the rest; the PID namespace ends what is left.
  kill "$(cat "$S/pids/kubelet")" 2>/dev/null || true
  ctr --address "$S/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null | while read -r t; do
    ctr --address "$S/containerd.sock" -n k8s.io tasks kill -s KILL "$t" >/dev/null 2>&1 || true
  done
  return $rc
}

case "${1:-}" in
  run) shift; [ "${1:-}" = -- ] && shift; [ $# -gt 0 ] || { sed -n '2,6p' "$0"; exit 2; }; outer "$@" ;;
  shell) outer bash -i ;;
  _inner) shift; inner "$@" ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac

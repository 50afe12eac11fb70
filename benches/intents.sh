# Sourced by the shell benches: write N ApplicationInstances of cluster `bench` (20 namespaces) below DIR.
#   generate_intents DIR N [REPLICAS]    REPLICAS goes into every intent (default 2): change it to change all
generate_intents() {
  local root=$1 count=$2 replicas=${3:-2} i ns dir
  for i in $(seq 0 $((count - 1))); do
    ns="team-$((i % 20))"
    dir="$root/clusters/bench/namespaces/$ns"
    mkdir -p "$dir"
    cat > "$dir/applicationinstance-app-$i.yaml" <<YAML
apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: app-$i
  namespace: $ns
  labels: {app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: bench}
spec:
  appRef: {catalogId: nextcloud}
  chart: {sourceType: oci, url: "oci://ghcr.io/nextcloud/helm", name: nextcloud, version: 6.6.4}
  release: {name: app-$i, namespace: $ns}
  values:
    source: inline
    inline: {replicaCount: $replicas, persistence: {enabled: true, size: 50Gi}}
  integrations:
    ingress: {enabled: true, host: app-$i.example.com}
    certManager: {enabled: true}
YAML
  done
}

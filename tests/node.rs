//! Pods run for real (issue #23): the test bed's one-node cluster (`testbed/node.sh`: kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler, containerd + runc, the CNI bridge, kubelet, kube-proxy, all built from
//! pinned modules) runs
//!
//! In a namespace where Pod Security `restricted` is enforced (non-root, seccomp RuntimeDefault, no capabilities,
//! read-only root filesystems):
//!
//! 1. a Pod of the busybox image built here (pulled by containerd from the test bed's registry over TLS) whose
//!    readiness probe (HTTP, by the kubelet) makes it Ready;
//! 2. a Job (the Job controller of kube-controller-manager) whose Pod reaches the first one through its Service
//!    (busybox's wget) and the API server through the `kubernetes` Service (kubectl, in-cluster: the
//!    ServiceAccount's token, the cluster's CA checked), both through kube-proxy's iptables rules, to completion.
//!
//! The node needs root (namespaces, cgroups, mounts). The test runs itself again inside the node
//! (`node.sh run -- <this test binary> --exact …`): the node's addresses exist only in its network namespace.

mod support;

use support::node::{self, apply, kubectl_ok};

const TEST: &str = "a_pod_becomes_ready_and_a_job_completes";

#[test]
fn a_pod_becomes_ready_and_a_job_completes() {
    let Some(node) = node::inside(TEST) else {
        return;
    };
    let registry = &node.registry;
    // Pod Security `restricted` enforced: what the Pods below declare is what the operator's chart must too.
    const POD_SECURITY: &str = "securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, \
         seccompProfile: {type: RuntimeDefault}}";
    const CONTAINER_SECURITY: &str = "securityContext: {readOnlyRootFilesystem: true, \
         allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";
    apply(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: pods
  labels: {pod-security.kubernetes.io/enforce: restricted}
"#,
    );

    apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: pods, labels: {{app: web}}}}
spec:
  automountServiceAccountToken: false
  {POD_SECURITY}
  containers:
  - name: web
    image: {registry}/busybox:testbed
    command: [sh, -c, "mkdir -p /tmp/www && echo ready > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
    readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
    resources: {{limits: {{cpu: 100m, memory: 32Mi}}}}
    {CONTAINER_SECURITY}
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
  volumes: [{{name: tmp, emptyDir: {{}}}}]
"#
    ));
    node.wait_for(
        "pods",
        "pod/web",
        r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        "True",
    );

    // A Service in front of it (kube-proxy's rules); the Job's Pod, started after it, has its address in its
    // environment (no cluster DNS here).
    apply(
        r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: pods}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    // The Job reaches the Pod through its Service (busybox's wget), and the API server through the `kubernetes`
    // Service (kubectl's in-cluster configuration: the ServiceAccount's token, the cluster's CA checked).
    apply(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view, namespace: pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: pods}]
"#,
    );
    apply(&format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: reach, namespace: pods}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      {POD_SECURITY}
      containers:
      - name: reach
        image: {registry}/busybox:testbed
        {CONTAINER_SECURITY}
        command:
        - sh
        - -c
        - |
          sa=/var/run/secrets/kubernetes.io/serviceaccount
          test -s $sa/ca.crt && test -s $sa/token || exit 3
          echo "web: $WEB_SERVICE_HOST:$WEB_SERVICE_PORT, kubernetes: $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
          test "$(wget -q -O- http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/)" = ready || exit 4
          echo reached
      - name: client
        image: {registry}/kubectl:testbed
        {CONTAINER_SECURITY}
        command: [kubectl, get, pod, web, -o, "jsonpath={{.status.podIP}}"]
        env: [{{name: HOME, value: /tmp}}]
        volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      volumes: [{{name: tmp, emptyDir: {{}}}}]
"#
    ));
    node.wait_for(
        "pods",
        "job/reach",
        r#"{.status.conditions[?(@.type=="Complete")].status}"#,
        "True",
    );
    let logs = kubectl_ok(&["-n", "pods", "logs", "job/reach", "-c", "reach"]);
    assert!(logs.contains("reached"), "{logs}");
    let web_ip = kubectl_ok(&[
        "-n",
        "pods",
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    let client = kubectl_ok(&["-n", "pods", "logs", "job/reach", "-c", "client"]);
    assert_eq!(
        client.trim(),
        web_ip.trim(),
        "what kubectl in the Job's Pod read"
    );
}

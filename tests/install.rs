//! The operator installed exactly as users install it, running in Pods on the test bed's node (`testbed/node.sh`:
//! kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, containerd + runc, kube-proxy, all built from
//! pinned modules), with the real Flux controllers, a git server, the chart registry and a control-plane event
//! receiver on the node's bridge address. Nothing is played. One node, the scenarios in order (each builds on
//! the one before; each prints how long it took):
//!
//! a. **install**: `flux/` is applied; helm-controller installs the chart from the registry and waits for the
//!    Deployment (2 replicas, the operator's image built here from the Dockerfile's runtime stage and pulled by
//!    containerd) to become Ready through its probes; one replica holds the Lease; the webhook refuses an invalid
//!    intent when the API server calls it through its Service; a signed commit goes through Flux to the operator,
//!    whose app (a real Deployment) becomes Ready, then the intent; the note is pushed from inside the Pod and the
//!    event posted; no request of the operator is refused (its ServiceAccount's RBAC is enough);
//! b. **failover**: the leader Pod is deleted; the other replica takes the Lease; a change pushed meanwhile is
//!    installed once, with one note and one event;
//! c. **self-upgrade**: `ref.tag` of the chart's OCIRepository is bumped; helm-controller upgrades the release and
//!    new Pods roll out on the new image; no intent is disturbed, no outcome lost or duplicated;
//! d. **the Job engine**: `runCommand.job` Operations run real Jobs (kube-controller-manager's Job controller, the
//!    kubelet): exit 0 is Succeeded with the Job's name in the outputs, exit 1 is Failed with the Pod's reason;
//! e. **Pod Security**: the operator's namespace and the tenant namespace enforce `restricted`; the operator's,
//!    the app's and the Job engine's Pods are all admitted there;
//! f. **faults**: the operator's container is SIGKILLed, then the kubelet; each time a change pushed meanwhile is
//!    installed once (one note, one event), from the state directory that survived.
//!
//! Needs root (the node); the test runs itself again inside the node (`support::node::inside_with`), after
//! building the operator's image outside it (`image/build-local.sh`, from this build's binary).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use kube::Client;
use serde_json::{Value, json};
use support::chart;
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::manifests::yaml_docs;
use support::node::{self, Node};
use support::receiver::Receiver;
use support::stack::{self, CHART, Stack, kubectl, kubectl_ok};
use support::testbed;

const TEST: &str = "the_operator_runs_in_pods_installed_failed_over_and_upgraded_by_flux";
const SYSTEM_NS: &str = "vworkspace-system";
const CLUSTER: &str = "installed";
const TENANT: &str = "team-installed";
const LEASE: &str = "vworkspace-operator-installed";
const OPERATOR_PODS: &str = "app.kubernetes.io/name=vworkspace-operator";

#[test]
fn the_operator_runs_in_pods_installed_failed_over_and_upgraded_by_flux() {
    let images = tempfile::tempdir().unwrap();
    let Some(node) = node::inside_with(TEST, || {
        vec![(
            "vworkspace-operator:0.1.0".to_string(),
            node::operator_image(images.path()),
        )]
    }) else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenarios(node));
}

async fn scenarios(node: Node) {
    let bed = Bed::new(node).await;
    let mut times = Vec::new();
    let mut timed = Instant::now();
    let mut lap = |name: &str| {
        times.push(format!("{name}: {:.1} s", timed.elapsed().as_secs_f64()));
        eprintln!("== scenario {}", times.last().unwrap());
        timed = Instant::now();
    };
    bed.install().await;
    let first = bed.first_app().await;
    bed.no_request_refused();
    lap("a. install (chart, 2 Ready replicas, webhook, first intent Ready with its note)");
    let second = bed.failover().await;
    lap("b. leader failover");
    bed.self_upgrade(&[&first, &second]).await;
    lap("c. self-upgrade");
    bed.job_engine().await;
    lap("d+e. the Job engine under Pod Security restricted");
    bed.faults().await;
    lap("f. faults (operator container, kubelet)");
    bed.no_request_refused();
    eprintln!("scenario times:\n  {}", times.join("\n  "));
}

/// The node's cluster with the stack on it, the cluster repo and its signer, the event receiver.
struct Bed {
    node: Node,
    st: &'static Stack,
    client: Client,
    tmp: tempfile::TempDir,
    remote: GitRemote,
    alice: Signer,
    receiver: Receiver,
    /// Greeting → the commit that set it.
    generations: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Bed {
    async fn new(node: Node) -> Self {
        let st = stack::stack();
        let client = testbed::client().await;
        let tmp = tempfile::tempdir().unwrap();
        let url = st.bare_repo(CLUSTER);
        let remote = GitRemote::clone_of(tmp.path(), &url, st.bare_path(CLUSTER));
        let alice = Signer::new(&tmp.path().join("keys"), "alice@example.com");
        // The cluster path exists from the first commit: a missing path blocks (ClusterPathMissing).
        remote.write("README.md", "cluster repo\n");
        remote.write(
            &format!("clusters/{CLUSTER}/README.md"),
            "intents of this cluster\n",
        );
        remote.commit("init", Some(&alice), &alice.email);
        let receiver = Receiver::start().await;
        Self {
            node,
            st,
            client,
            tmp,
            remote,
            alice,
            receiver,
            generations: Default::default(),
        }
    }

    fn registry(&self) -> &str {
        &self.node.registry
    }

    /// Poll until `check` gives a value; on timeout, fail with what the cluster and the operator's Pods say.
    async fn eventually<T, F, Fut>(&self, what: &str, secs: u64, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let diagnostics = || {
            let get = kubectl(&[
                "get",
                "-A",
                "pods,deployments,leases,ocirepository,helmrelease,gitrepository,kustomization,\
                 applicationinstance,operation,jobs",
                "-o",
                "wide",
            ]);
            format!(
                "--- kubectl get\n{}{}\n--- operator Pods\n{}\n--- helm-controller\n{}\n--- kustomize-controller\n{}\n\
                 --- kubelet\n{}",
                String::from_utf8_lossy(&get.stdout),
                String::from_utf8_lossy(&get.stderr),
                operator_logs(80),
                self.st.log_tail("helm-controller", 30),
                self.st.log_tail("kustomize-controller", 15),
                self.node.log_tail("kubelet", 20),
            )
        };
        stack::eventually(what, secs, diagnostics, check).await
    }

    async fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        testbed::get(&self.client, api_version, kind, ns, name).await
    }

    /// The operator's own HelmRelease (flux/operator.yaml).
    async fn operator_release(&self) -> Option<Value> {
        let hr = "helm.toolkit.fluxcd.io/v2";
        self.get(hr, "HelmRelease", SYSTEM_NS, "vworkspace-operator")
            .await
    }

    /// The intent `web`.
    async fn web(&self) -> Option<Value> {
        let api = "apps.vworkspace.io/v1alpha1";
        self.get(api, "ApplicationInstance", TENANT, "web").await
    }

    /// Package the operator's chart at `version` (appVersion too, so the image tag follows) and push it.
    fn publish_chart(&self, version: &str) {
        let dest = self.tmp.path().display().to_string();
        let chart_dir = chart::chart_dir().display().to_string();
        let (ok, out, err) = chart::helm(&[
            "package",
            &chart_dir,
            "--version",
            version,
            "--app-version",
            version,
            "--destination",
            &dest,
        ]);
        assert!(ok, "helm package: {out}{err}");
        let tgz = format!("{dest}/vworkspace-operator-{version}.tgz");
        let ca = self.st.ca.display().to_string();
        let (ok, out, err) = chart::helm(&["push", &tgz, &self.st.oci_url, "--ca-file", &ca]);
        assert!(ok, "helm push: {out}{err}");
    }

    /// a. What a cluster admin does: the chart in the registry, the Secrets, `flux/` with this cluster's values.
    async fn install(&self) {
        for v in ["0.1.0", "0.1.1"] {
            self.publish_chart(v);
        }
        // The image of 0.1.1: the same build with one more label, so another digest (a new image to roll to).
        let out = Command::new("crane")
            .args([
                "mutate",
                &format!("{}/vworkspace-operator:0.1.0", self.registry()),
            ])
            .args(["--label", "io.vworkspace.test.release=0.1.1", "-t"])
            .arg(format!("{}/vworkspace-operator:0.1.1", self.registry()))
            .env("SSL_CERT_FILE", &self.node.ca)
            .output()
            .expect("crane");
        assert!(
            out.status.success(),
            "crane mutate: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let root = testbed::project_root();
        let mut objects = yaml_docs(&root.join("flux/namespace.yaml"));
        objects
            .push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}));
        let secret = |name: &str, data: Value| {
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": SYSTEM_NS}, "stringData": data})
        };
        objects.push(secret(
            "vworkspace-trust-policy",
            json!({"policy.yaml": policy_yaml(&[&self.alice], "range")}),
        ));
        objects.push(secret(
            "vworkspace-git-signers",
            json!({"alice.sshpub": self.alice.public}),
        ));
        objects.push(secret(
            "vworkspace-control-plane",
            json!({"token": "node-test-token", "hmac-key": "node-test-hmac-key"}),
        ));
        for mut doc in yaml_docs(&root.join("flux/operator.yaml")) {
            match doc["kind"].as_str().unwrap() {
                "OCIRepository" => {
                    doc["spec"]["url"] = json!(format!("{}/vworkspace-operator", self.st.oci_url));
                    doc["spec"]["interval"] = json!("10s");
                }
                "HelmRelease" => {
                    let values = &mut doc["spec"]["values"];
                    values["clusterId"] = json!(CLUSTER);
                    values["repo"]["url"] = json!(self.remote.url());
                    values["image"]["repository"] =
                        json!(format!("{}/vworkspace-operator", self.registry()));
                    values["replicaCount"] = json!(2);
                    values["controlPlane"] =
                        json!({"endpoint": format!("http://{}", self.receiver.addr)});
                    values["fetchInterval"] = json!("2s");
                    values["notesBatchWindow"] = json!("200ms");
                    values["log"] = json!({"format": "text", "level": "info"});
                    doc["spec"]["interval"] = json!("10s");
                }
                other => panic!("flux/operator.yaml: unexpected {other}"),
            }
            objects.push(doc);
        }
        for mut doc in yaml_docs(&root.join("flux/cluster.yaml")) {
            match doc["kind"].as_str().unwrap() {
                "GitRepository" => {
                    doc["spec"]["url"] = json!(self.remote.url());
                    doc["spec"]["interval"] = json!("3s");
                    doc["spec"].as_object_mut().unwrap().remove("secretRef");
                }
                "Kustomization" => {
                    doc["spec"]["path"] = json!(format!("./clusters/{CLUSTER}"));
                    doc["spec"]["interval"] = json!("1m");
                    doc["spec"]["retryInterval"] = json!("5s");
                }
                other => panic!("flux/cluster.yaml: unexpected {other}"),
            }
            objects.push(doc);
        }
        stack::kubectl_apply(self.tmp.path(), "flux.json", &objects);

        // helm-controller installs the chart and waits for the Deployment: 2 replicas Ready through /readyz.
        let started = Instant::now();
        let (_, reason, message) = self
            .eventually("the operator's HelmRelease Ready", 420, || async {
                let hr = self.operator_release().await?;
                testbed::ready_condition(&hr).filter(|(s, _, _)| s == "True")
            })
            .await;
        eprintln!(
            "helm-controller installed the chart and saw it ready in {:.1} s: {reason}: {message}",
            started.elapsed().as_secs_f64()
        );
        for (api_version, kind, name) in [
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingAdmissionPolicy",
                "vworkspace-intents",
            ),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingAdmissionPolicyBinding",
                "vworkspace-intents",
            ),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "vworkspace-operator",
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "vworkspace-operator-workloads",
            ),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "applicationinstances.apps.vworkspace.io",
            ),
        ] {
            assert!(
                self.get(api_version, kind, "", name).await.is_some(),
                "{kind} {name} not installed"
            );
        }
        let pods = self.operator_pods(2, "0.1.0").await;
        let holder = self.lease_holder().await;
        assert!(
            pods.contains(&holder),
            "{holder} leads, not one of {pods:?}"
        );
        self.eventually("the webhook's caBundle set", 60, || async {
            let hooks = self
                .get(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingWebhookConfiguration",
                    "",
                    "vworkspace-operator",
                )
                .await?;
            hooks["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .filter(|b| !b.is_empty())
                .map(|_| ())
        })
        .await;
    }

    /// Wait until the operator's Deployment runs `count` Ready Pods, all on image tag `tag`; their names.
    async fn operator_pods(&self, count: usize, tag: &str) -> Vec<String> {
        let image = format!("{}/vworkspace-operator:{tag}", self.registry());
        self.eventually(
            &format!("{count} Ready operator Pods on {image}"),
            300,
            || async {
                let pods = pods(SYSTEM_NS, OPERATOR_PODS);
                let ready: Vec<String> = pods
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .filter(|p| p["spec"]["containers"][0]["image"] == image.as_str())
                    .filter(|p| pod_ready(p))
                    .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                    .collect();
                (ready.len() == count && pods.len() == count).then_some(ready)
            },
        )
        .await
    }

    async fn lease_holder(&self) -> String {
        let lease = self
            .get("coordination.k8s.io/v1", "Lease", SYSTEM_NS, LEASE)
            .await
            .expect("the operator's Lease");
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Commit the intent `web` (a real Deployment serving `greeting`) with the tenant namespace's gate.
    fn commit_app(&self, greeting: &str) -> String {
        let base = format!("clusters/{CLUSTER}/namespaces/{TENANT}");
        // The tenant namespace: gated, and Pod Security `restricted` enforced (scenario e).
        let ns = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TENANT}\n  labels:\n    managed-by: vworkspace\n    \
             pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/enforce-version: latest\n"
        );
        let binding =
            std::fs::read_to_string(testbed::project_root().join("flux/namespace-binding.yaml"))
                .unwrap()
                .replace("TENANT-NAMESPACE", TENANT);
        let app = format!(
            r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: web
  namespace: {TENANT}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {CLUSTER}
  annotations:
    ops.vworkspace.io/runcommand: job
spec:
  appRef: {{catalogId: {CHART}}}
  chart: {{sourceType: oci, url: "{oci}", name: {CHART}, version: 1.0.0}}
  release: {{name: web, namespace: {TENANT}}}
  values: {{source: inline, inline: {{greeting: "{greeting}", workload: {{image: "{registry}/busybox:testbed"}}}}}}
"#,
            oci = self.st.oci_url,
            registry = self.registry(),
        );
        self.remote.write(&format!("{base}/namespace.yaml"), &ns);
        self.remote
            .write(&format!("{base}/rolebinding.yaml"), &binding);
        self.remote
            .write(&format!("{base}/applicationinstance-web.yaml"), &app);
        let commit = self.remote.commit(
            &format!("web: {greeting}"),
            Some(&self.alice),
            &self.alice.email,
        );
        self.generations
            .lock()
            .unwrap()
            .insert(greeting.to_string(), commit.clone());
        commit
    }

    /// Wait until the app serves `greeting`: its Deployment Ready with it, the intent Ready at its generation,
    /// one Ready note on `commit` and the Ready event of that generation delivered. The intent's generation.
    async fn app_serves(&self, greeting: &str, commit: &str) -> i64 {
        let generation = self
            .eventually(&format!("web Ready serving {greeting:?}"), 300, || async {
                let cm = self.get("v1", "ConfigMap", TENANT, "web-values").await?;
                let deploy = self.get("apps/v1", "Deployment", TENANT, "web-web").await?;
                let app = self.web().await?;
                let generation = app["metadata"]["generation"].as_i64()?;
                let ready = app["status"]["conditions"].as_array()?.iter().any(|c| {
                    c["type"] == "Ready"
                        && c["status"] == "True"
                        && c["reason"] == "HelmReleaseReady"
                        && c["observedGeneration"].as_i64() == Some(generation)
                });
                let env = &deploy["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"];
                (cm["data"]["greeting"] == greeting
                    && env == greeting
                    && deploy["status"]["readyReplicas"] == 1
                    && deploy["status"]["updatedReplicas"] == 1
                    && ready)
                    .then_some(generation)
            })
            .await;
        self.eventually(&format!("one Ready note on {commit}"), 60, || async {
            (self.note_records(commit, "web", "Ready") == 1).then_some(())
        })
        .await;
        let key = self.ready_event_key(generation).await;
        self.eventually(&format!("the event {key}"), 60, || async {
            self.receiver.keys().contains(&key).then_some(())
        })
        .await;
        generation
    }

    /// The records of the notes on `commit` for `name` with `outcome`.
    fn note_records(&self, commit: &str, name: &str, outcome: &str) -> usize {
        let notes_ref = format!("vworkspace/{CLUSTER}");
        let notes = self
            .remote
            .try_git(
                &self.remote.bare,
                &["notes", "--ref", &notes_ref, "show", commit],
            )
            .unwrap_or_default();
        notes
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["name"] == name && r["outcome"] == outcome)
            .count()
    }

    async fn ready_event_key(&self, generation: i64) -> String {
        let app = self.web().await.unwrap();
        format!(
            "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/{TENANT}/web/{}/Ready/True@{generation}",
            app["metadata"]["uid"].as_str().unwrap()
        )
    }

    /// The event keys the control plane has received (each once: delivery is at least once, and a control plane
    /// keeps the first of a key; a new leader re-sends its condition snapshot, under the same keys).
    fn posted(&self) -> BTreeSet<String> {
        self.receiver.keys().into_iter().collect()
    }

    /// Outcomes posted since `before` for the intent `web`: all about `generation` (a change installed once, no
    /// outcome of an older generation posted again under a new key).
    fn only_new_outcomes(&self, before: &BTreeSet<String>, generation: i64) {
        let new: Vec<String> = self
            .posted()
            .difference(before)
            .filter(|k| k.contains(&format!("/ApplicationInstance/{TENANT}/web/")))
            .cloned()
            .collect();
        let stray: Vec<&String> = new
            .iter()
            .filter(|k| !k.ends_with(&format!("@{generation}")))
            .collect();
        assert!(
            stray.is_empty(),
            "outcomes posted that are not about generation {generation}: {stray:?}"
        );
    }

    /// Events posted since `before` for `web` only restate its conditions as they are (a new leader re-sends its
    /// condition snapshot, keyed by the current generation): each is `{type}/{status}@{generation}` of a condition
    /// `app` has now. Nothing changed, so nothing else may be said.
    fn only_restated(&self, before: &BTreeSet<String>, app: &Value) {
        let current: BTreeSet<String> = app["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "/{}/{}@{}",
                    c["type"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                    c["observedGeneration"]
                )
            })
            .collect();
        let stray: Vec<String> = self
            .posted()
            .difference(before)
            .filter(|k| k.contains(&format!("/ApplicationInstance/{TENANT}/web/")))
            .filter(|k| !current.iter().any(|c| k.ends_with(c.as_str())))
            .cloned()
            .collect();
        assert!(
            stray.is_empty(),
            "outcomes posted that the intent's conditions do not say: {stray:?} (conditions: {current:?})"
        );
    }

    /// a (continued). The first intent through Flux to the operator in its Pod; the webhook through its Service.
    async fn first_app(&self) -> String {
        let commit = self.commit_app("installed by the chart");
        self.app_serves("installed by the chart", &commit).await;

        // The API server calls the webhook through its Service (kube-proxy): an intent whose chart host is the
        // cloud metadata address passes the admission policy but not the operator's renderer.
        let mut bad: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(self.remote.work.join(format!(
                "clusters/{CLUSTER}/namespaces/{TENANT}/applicationinstance-web.yaml"
            )))
            .unwrap(),
        )
        .unwrap();
        bad["metadata"]["name"] = json!("metadata-host");
        bad["spec"]["chart"]["url"] = json!("oci://169.254.169.254/charts");
        let file = self.tmp.path().join("bad.json");
        std::fs::write(&file, bad.to_string()).unwrap();
        let refused = kubectl(&[
            "create",
            "--dry-run=server",
            "-f",
            &file.display().to_string(),
        ]);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "admitted: {said}");
        assert!(
            said.contains("admission webhook")
                && said.contains("denied the request")
                && said.contains("169.254.169.254"),
            "not the operator's webhook refusing: {said}"
        );
        commit
    }

    /// b. The leader Pod is deleted; a change pushed meanwhile is installed once by the replica that takes over.
    async fn failover(&self) -> String {
        let leader = self.lease_holder().await;
        let before = self.posted();
        kubectl_ok(&["-n", SYSTEM_NS, "delete", "pod", &leader, "--wait=false"]);
        let commit = self.commit_app("after the failover");
        let new_leader = self
            .eventually("another replica leads", 120, || async {
                let holder = self.lease_holder().await;
                (!holder.is_empty() && holder != leader).then_some(holder)
            })
            .await;
        eprintln!("{leader} deleted; {new_leader} leads");
        let generation = self.app_serves("after the failover", &commit).await;
        self.operator_pods(2, "0.1.0").await;
        // Nothing later adds a second record or another outcome.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert_eq!(self.note_records(&commit, "web", "Ready"), 1);
        self.only_new_outcomes(&before, generation);
        commit
    }

    /// c. The operator upgrades itself: the chart's OCIRepository at the next version.
    async fn self_upgrade(&self, commits: &[&str]) {
        let app_before = self.web().await.unwrap();
        let notes_before: Vec<usize> = commits
            .iter()
            .map(|c| self.note_records(c, "web", "Ready"))
            .collect();
        let before = self.posted();
        kubectl_ok(&[
            "patch",
            "-n",
            SYSTEM_NS,
            "ocirepository",
            "vworkspace-operator",
            "--type=merge",
            "-p",
            r#"{"spec":{"ref":{"tag":"0.1.1"}}}"#,
        ]);
        self.eventually("the release upgraded to 0.1.1 and Ready", 420, || async {
            let hr = self.operator_release().await?;
            let latest = hr["status"]["history"].as_array()?.first()?.clone();
            let (status, reason, _) = testbed::ready_condition(&hr)?;
            (latest["chartVersion"].as_str()?.starts_with("0.1.1")
                && latest["status"] == "deployed"
                && status == "True"
                && reason == "UpgradeSucceeded")
                .then_some(())
        })
        .await;
        let pods = self.operator_pods(2, "0.1.1").await;
        let holder = self
            .eventually("a new Pod leads", 120, || async {
                let h = self.lease_holder().await;
                pods.contains(&h).then_some(h)
            })
            .await;
        eprintln!("upgraded: {pods:?}, {holder} leads");
        // Untouched: the intent (no new generation, still Ready) and its outcomes.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let app_after = self.web().await.unwrap();
        assert_eq!(
            app_after["metadata"]["generation"],
            app_before["metadata"]["generation"]
        );
        let ready = |a: &Value| {
            a["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .cloned()
        };
        assert_eq!(
            ready(&app_after),
            ready(&app_before),
            "the intent's Ready changed"
        );
        let notes_after: Vec<usize> = commits
            .iter()
            .map(|c| self.note_records(c, "web", "Ready"))
            .collect();
        assert_eq!(notes_after, notes_before);
        self.only_restated(&before, &app_after);
    }
}

impl Bed {
    /// d + e. `runCommand.job` Operations run real Jobs in the tenant namespace (Pod Security `restricted`).
    async fn job_engine(&self) {
        let base = format!("clusters/{CLUSTER}/namespaces/{TENANT}");
        for (name, script) in [
            ("hello", "echo hello from a Job; id -u"),
            ("fails", "echo about to fail >&2; exit 1"),
        ] {
            let op = format!(
                r#"apiVersion: ops.vworkspace.io/v1alpha1
kind: Operation
metadata:
  name: {name}
  namespace: {TENANT}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {CLUSTER}
spec:
  targetRef: {{apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: web}}
  type: RunCommand
  engine: job
  parameters: {{image: "{registry}/busybox:testbed", command: [sh, -c, "{script}"]}}
"#,
                registry = self.registry()
            );
            self.remote
                .write(&format!("{base}/operation-{name}.yaml"), &op);
        }
        let commit =
            self.remote
                .commit("run a command twice", Some(&self.alice), &self.alice.email);
        let finished = |name: &'static str, phase: &'static str| async move {
            self.eventually(&format!("Operation {name} {phase}"), 240, || async {
                let op = self
                    .get("ops.vworkspace.io/v1alpha1", "Operation", TENANT, name)
                    .await?;
                (op["status"]["phase"] == phase).then_some(op)
            })
            .await
        };
        let hello = finished("hello", "Succeeded").await;
        let job_name = hello["status"]["outputs"]["jobName"]
            .as_str()
            .expect("outputs.jobName")
            .to_string();
        // The Job controller of kube-controller-manager completed it; its Pod ran as the restricted profile says.
        let job = self
            .get("batch/v1", "Job", TENANT, &job_name)
            .await
            .unwrap();
        assert_eq!(job["status"]["succeeded"], 1, "{job}");
        let logs = kubectl_ok(&["-n", TENANT, "logs", &format!("job/{job_name}")]);
        assert!(
            logs.contains("hello from a Job") && logs.contains("65532"),
            "{logs}"
        );

        let fails = finished("fails", "Failed").await;
        let failed = fails["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
            .cloned()
            .unwrap_or_else(|| panic!("no Failed condition: {fails}"));
        let message = failed["message"].as_str().unwrap();
        assert!(
            message.contains("BackoffLimitExceeded")
                && message.contains("container run terminated: Error (exit code 1)"),
            "the Pod's reason is missing: {message}"
        );
        self.eventually("the Operations' notes", 60, || async {
            (self.note_records(&commit, "hello", "Succeeded") == 1
                && self.note_records(&commit, "fails", "Failed") == 1)
                .then_some(())
        })
        .await;

        // e. Both namespaces enforce `restricted`, and every Pod above was admitted there.
        for ns in [SYSTEM_NS, TENANT] {
            let namespace = self.get("v1", "Namespace", "", ns).await.unwrap();
            assert_eq!(
                namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
                "{ns}"
            );
        }
        let job_pods = pods(TENANT, "batch.kubernetes.io/job-name");
        assert!(job_pods.len() >= 2, "the Jobs' Pods: {job_pods:?}");
    }

    /// f. The operator's container, then the kubelet, killed; a change pushed meanwhile is installed once.
    async fn faults(&self) {
        let leader = self.lease_holder().await;
        let pod: Value = serde_json::from_str(&kubectl_ok(&[
            "-n", SYSTEM_NS, "get", "pod", &leader, "-o", "json",
        ]))
        .unwrap();
        let status = &pod["status"]["containerStatuses"][0];
        let restarts = status["restartCount"].as_i64().unwrap();
        let container = status["containerID"]
            .as_str()
            .unwrap()
            .trim_start_matches("containerd://")
            .to_string();
        let socket = self.node.state.join("containerd.sock");
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", &container])
            .output()
            .expect("ctr");
        assert!(
            out.status.success(),
            "ctr kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let before = self.posted();
        let commit = self.commit_app("after the operator was killed");
        self.eventually("the killed container restarted and Ready", 180, || async {
            let pods = pods(SYSTEM_NS, OPERATOR_PODS);
            let p = pods
                .iter()
                .find(|p| p["metadata"]["name"] == leader.as_str())?;
            (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? > restarts
                && pod_ready(p))
            .then_some(())
        })
        .await;
        let generation = self
            .app_serves("after the operator was killed", &commit)
            .await;
        self.only_new_outcomes(&before, generation);

        // The kubelet killed (SIGKILL) and started again: the containers keep running meanwhile.
        let counts = || {
            pods(SYSTEM_NS, OPERATOR_PODS)
                .iter()
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                        p["status"]["containerStatuses"][0]["restartCount"]
                            .as_i64()
                            .unwrap(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let restarts_before = counts();
        let pid = std::fs::read_to_string(self.node.state.join("pids/kubelet")).unwrap();
        let killed = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
        let before = self.posted();
        let down = self.commit_app("while the kubelet was down");
        // The operator (its container runs on) acts on it; the app's new Pod waits for the kubelet.
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        // In the background, as node.sh started it (its PID goes to pids/kubelet; the node stops it at the end).
        let restarted = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{} </dev/null >/dev/null 2>&1 &",
                self.node.state.join("restart-kubelet.sh").display()
            ))
            .status()
            .expect("start the kubelet again");
        assert!(restarted.success());
        let generation = self.app_serves("while the kubelet was down", &down).await;
        assert_eq!(
            counts(),
            restarts_before,
            "operator containers restarted with the kubelet"
        );
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        for c in [&commit, &down] {
            assert_eq!(self.note_records(c, "web", "Ready"), 1, "notes on {c}");
        }
        self.only_new_outcomes(&before, generation);
    }

    /// No request of the operator was refused: the chart's RBAC is enough for all of the above.
    fn no_request_refused(&self) {
        let logs = operator_logs(100_000);
        let refused: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("forbidden") || l.contains("Forbidden") || l.contains(" 403"))
            .collect();
        assert!(
            refused.is_empty(),
            "the operator was refused:\n{}",
            refused.join("\n")
        );
    }
}

/// The Pods matching `selector` in `ns`.
fn pods(ns: &str, selector: &str) -> Vec<Value> {
    let out = kubectl_ok(&["-n", ns, "get", "pods", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The operator Pods' last log lines (both replicas, prefixed by Pod).
fn operator_logs(lines: usize) -> String {
    let out = kubectl(&[
        "-n",
        SYSTEM_NS,
        "logs",
        "-l",
        OPERATOR_PODS,
        "--prefix",
        &format!("--tail={lines}"),
    ]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

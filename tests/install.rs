//! The operator installed as a user installs it (issue #15), on the whole test bed with nothing played:
//!
//! 1. the chart (`charts/vworkspace-operator`) is packaged at two versions and pushed to the loopback OCI
//!    registry; `flux/operator.yaml` (test values) is applied and the real helm-controller installs the release
//!    from its OCIRepository — CRDs, RBAC, Deployment, admission policy and webhook configuration;
//! 2. the operator process runs with exactly the chart's ServiceAccount permissions (its kubeconfig impersonates
//!    `vworkspace-system:vworkspace-operator`) and the environment of the Deployment helm-controller installed
//!    (file paths and listen addresses made local), with the chart's admission in force (the webhook reached at
//!    `admission.webhook.url`, since nothing resolves the Service here);
//! 3. a GitOps scenario: a signed commit gates a namespace (label + the RoleBinding of
//!    flux/namespace-binding.yaml) and adds an ApplicationInstance → Flux applies it as the chart's intent applier
//!    → the operator verifies, renders and applies → helm-controller installs the app → Ready, with a git note;
//!    no request of the operator is refused at any point (its log has no 403);
//! 4. an upgrade of the operator is a version bump of the chart's OCIRepository: helm-controller upgrades the
//!    release and the Deployment runs the new image.
//!
//! The Deployment itself never runs (the test bed has no kubelet), so helm-controller installs with
//! `disableWait` here (test values, said where they are set).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use support::chart;
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::manifests::yaml_docs;
use support::stack::{self, CHART, kubectl, kubectl_ok};
use support::testbed::{self, free_port};
use vworkspace_operator::api::ApplicationInstance;

const SYSTEM_NS: &str = "vworkspace-system";
const CLUSTER: &str = "installed";
const TENANT: &str = "team-installed";
const OPERATOR: &str = "system:serviceaccount:vworkspace-system:vworkspace-operator";

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll until `check` gives a value; on timeout, fail with `what`, the Flux objects and the logs.
async fn eventually<T, F, Fut>(what: &str, secs: u64, log: &std::path::Path, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let diagnostics = || {
        let st = stack::stack();
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- kubectl get\n{}\n--- operator log\n{}\n--- helm-controller\n{}\n--- kustomize-controller\n{}\n--- source-controller\n{}",
            String::from_utf8_lossy(
                &kubectl(&[
                    "get",
                    "-A",
                    "ocirepository,helmrelease,gitrepository,kustomization,applicationinstance",
                    "-o",
                    "wide"
                ])
                .stdout
            ),
            lines[lines.len().saturating_sub(60)..].join("\n"),
            st.log_tail("helm-controller", 40),
            st.log_tail("kustomize-controller", 30),
            st.log_tail("source-controller", 20),
        )
    };
    stack::eventually(what, secs, diagnostics, check).await
}

/// The operator container of the Deployment the chart installed.
async fn operator_container(client: &Client) -> Value {
    let deploy = testbed::get(
        client,
        "apps/v1",
        "Deployment",
        SYSTEM_NS,
        "vworkspace-operator",
    )
    .await
    .expect("the chart's Deployment");
    deploy["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The Ready condition of the operator's own HelmRelease (flux/operator.yaml): (status, reason, message).
async fn release_ready(client: &Client) -> Option<(String, String, String)> {
    let release = testbed::get(
        client,
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        SYSTEM_NS,
        "vworkspace-operator",
    )
    .await?;
    testbed::ready_condition(&release)
}

/// Package the chart at `version` (appVersion too, so the image tag follows) and push it to the registry.
fn publish_chart(dir: &std::path::Path, version: &str) {
    let st = stack::stack();
    let chart_dir = chart::chart_dir().display().to_string();
    let dest = dir.display().to_string();
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
    let tgz = dir
        .join(format!("vworkspace-operator-{version}.tgz"))
        .display()
        .to_string();
    let (ok, out, err) = chart::helm(&[
        "push",
        &tgz,
        &st.oci_url,
        "--ca-file",
        &st.ca.display().to_string(),
    ]);
    assert!(ok, "helm push: {out}{err}");
}

/// A kubeconfig that is the test bed's admin kubeconfig acting as `user` with a ServiceAccount's groups.
fn impersonating_kubeconfig(dir: &std::path::Path, user: &str) -> PathBuf {
    let text = std::fs::read_to_string(&testbed::server().kubeconfig).unwrap();
    let mut config: Value = serde_saphyr::from_str(&text).unwrap();
    let ns = user.split(':').nth(2).unwrap();
    for u in config["users"].as_array_mut().unwrap() {
        u["user"]["as"] = json!(user);
        u["user"]["as-groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated"
        ]);
    }
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_through_helm_controller_and_the_operator_works_with_exactly_its_permissions()
 {
    let st = stack::stack();
    let client = testbed::client().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("operator.log");
    for v in ["0.1.0", "0.1.1"] {
        publish_chart(tmp.path(), v);
    }

    // The cluster repo: one signed commit to start from.
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

    // What a cluster admin applies: flux/ with this test's values. Velero's namespace exists (velero.rbac).
    let _ = kubectl(&["create", "namespace", "velero"]);
    let webhook_port = free_port();
    let webhook_url = format!("https://127.0.0.1:{webhook_port}/validate");
    let mut objects = yaml_docs(&testbed::project_root().join("flux/namespace.yaml"));
    for mut doc in yaml_docs(&testbed::project_root().join("flux/operator.yaml")) {
        match doc["kind"].as_str().unwrap() {
            "OCIRepository" => {
                doc["spec"]["url"] = json!(format!("{}/vworkspace-operator", st.oci_url));
                doc["spec"]["interval"] = json!("10s");
            }
            "HelmRelease" => {
                let values = &mut doc["spec"]["values"];
                values["clusterId"] = json!(CLUSTER);
                values["repo"]["url"] = json!(remote.url());
                values["image"]["repository"] = json!("registry.test/vworkspace-operator");
                // Nothing resolves the webhook Service's DNS name here: the API server calls the operator
                // process at a URL (a value the chart offers for operators outside the cluster).
                values["admission"] = json!({"webhook": {"url": webhook_url}});
                // The stack's registry listens on loopback: allowed explicitly.
                values["allowChartHosts"] = json!(["127.0.0.1"]);
                // Test-only: no kubelet runs the Deployment, so helm-controller must not wait for it.
                doc["spec"]["install"]["disableWait"] = json!(true);
                doc["spec"]["upgrade"]["disableWait"] = json!(true);
                doc["spec"]["interval"] = json!("10s");
            }
            other => panic!("flux/operator.yaml: unexpected {other}"),
        }
        objects.push(doc);
    }
    for mut doc in yaml_docs(&testbed::project_root().join("flux/cluster.yaml")) {
        match doc["kind"].as_str().unwrap() {
            "GitRepository" => {
                doc["spec"]["url"] = json!(remote.url());
                doc["spec"]["interval"] = json!("5s");
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
    objects.insert(
        1,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "vworkspace-git-signers", "namespace": SYSTEM_NS},
            "stringData": {"alice.sshpub": alice.public},
        }),
    );
    stack::kubectl_apply(tmp.path(), "flux.json", &objects);

    // helm-controller installs the chart (CRDs first), from the registry.
    let started = std::time::Instant::now();
    let (_, reason, message) =
        eventually("the operator's HelmRelease Ready", 180, &log, || async {
            release_ready(&client).await.filter(|(s, _, _)| s == "True")
        })
        .await;
    eprintln!(
        "helm-controller installed the chart in {:.1} s: {reason}: {message}",
        started.elapsed().as_secs_f64()
    );
    stack::wait_crds_established();
    let container = operator_container(&client).await;
    assert_eq!(
        container["image"],
        "registry.test/vworkspace-operator:0.1.0"
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
    ] {
        assert!(
            testbed::get(&client, api_version, kind, "", name)
                .await
                .is_some(),
            "{kind} {name} not installed"
        );
    }

    // The operator process: the installed Deployment's environment, local where it must be, as the chart's
    // ServiceAccount.
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&[&alice], "range")).unwrap();
    let state = tmp.path().join("state");
    let health_port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", impersonating_kubeconfig(tmp.path(), OPERATOR))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match name {
            "VWORKSPACE_POLICY" => policy.display().to_string(),
            // No Secret is mounted: a public repo (no credentials), no control plane.
            "VWORKSPACE_GIT_CREDENTIALS"
            | "VWORKSPACE_CONTROL_PLANE_TOKEN_FILE"
            | "VWORKSPACE_CONTROL_PLANE_HMAC_KEY_FILE"
            | "VWORKSPACE_APPROVAL_KEY_FILE" => continue,
            "VWORKSPACE_METRICS_ADDR" => format!("127.0.0.1:{}", free_port()),
            "VWORKSPACE_HEALTH_ADDR" => format!("127.0.0.1:{health_port}"),
            "VWORKSPACE_WEBHOOK_ADDR" => format!("127.0.0.1:{webhook_port}"),
            "VWORKSPACE_STATE_DIR" | "HOME" => state.display().to_string(),
            "TMPDIR" => tmp.path().display().to_string(),
            "VWORKSPACE_FETCH_INTERVAL" => "1s".into(),
            "VWORKSPACE_NOTES_BATCH_WINDOW" => "200ms".into(),
            "VWORKSPACE_LOG_FORMAT" => "text".into(),
            // The downward API.
            "POD_NAME" => "vworkspace-operator-test".into(),
            "POD_NAMESPACE" => SYSTEM_NS.into(),
            _ => e["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no value"))
                .to_string(),
        };
        cmd.env(name, value);
    }
    assert_eq!(
        container["args"],
        json!(["run"]),
        "the Deployment runs `run` with its environment only"
    );
    let out = std::fs::File::create(&log).unwrap();
    cmd.arg("run")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let _operator = Operator(cmd.spawn().expect("start the operator"));

    // Ready means: CRDs found, caches synced (every watch allowed) and the Lease held (leases allowed).
    let http = reqwest::Client::new();
    eventually("the operator ready (/readyz 200)", 120, &log, || async {
        let r = http
            .get(format!("http://127.0.0.1:{health_port}/readyz"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // It issued its webhook certificates into the chart's Secret and put the CA into the chart's configuration.
    eventually("the webhook's caBundle set", 60, &log, || async {
        let hooks = testbed::get(
            &client,
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

    // The GitOps scenario: a signed commit gates a namespace and adds an intent.
    let ns_yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TENANT}\n  labels:\n    managed-by: vworkspace\n"
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
spec:
  appRef: {{catalogId: {CHART}}}
  chart: {{sourceType: oci, url: "{oci}", name: {CHART}, version: 1.0.0}}
  release: {{name: web, namespace: {TENANT}}}
  values: {{source: inline, inline: {{greeting: installed by the chart}}}}
"#,
        oci = st.oci_url
    );
    let base = format!("clusters/{CLUSTER}/namespaces/{TENANT}");
    remote.write(&format!("{base}/namespace.yaml"), &ns_yaml);
    remote.write(&format!("{base}/rolebinding.yaml"), &binding);
    remote.write(&format!("{base}/applicationinstance-web.yaml"), &app);
    let commit = remote.commit("gate team-installed, add web", Some(&alice), &alice.email);

    let apps: Api<ApplicationInstance> = Api::namespaced(client.clone(), TENANT);
    eventually("web: Ready=True/HelmReleaseReady", 240, &log, || async {
        let a = apps.get_opt("web").await.ok()??;
        a.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "HelmReleaseReady")
            .then_some(())
    })
    .await;
    let installed = testbed::get(&client, "v1", "ConfigMap", TENANT, "web-values")
        .await
        .expect("helm-controller installed the app's chart");
    assert_eq!(installed["data"]["greeting"], "installed by the chart");
    eventually("a Ready note on the intent commit", 60, &log, || async {
        let notes = remote.try_git(
            &remote.bare,
            &[
                "notes",
                "--ref",
                &format!("vworkspace/{CLUSTER}"),
                "show",
                &commit,
            ],
        )?;
        notes
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["name"] == "web" && r["outcome"] == "Ready")
            .then_some(())
    })
    .await;

    // The chart's admission is in force: the webhook (through the chart's configuration) and the policy refuse
    // an intent for another cluster.
    let mut foreign: Value = serde_saphyr::from_str(&app).unwrap();
    foreign["metadata"]["name"] = json!("foreign");
    foreign["metadata"]["labels"]["app.vworkspace.io/cluster-id"] = json!("someone-else");
    let file = tmp.path().join("foreign.json");
    std::fs::write(&file, foreign.to_string()).unwrap();
    let refused = kubectl(&["create", "-f", &file.display().to_string()]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("app.vworkspace.io/cluster-id") && said.contains("someone-else"),
        "{said}"
    );

    // No request of the operator was refused: the chart's RBAC is enough for all of the above.
    let text = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden") || l.contains(" 403"))
        .collect();
    assert!(
        refused.is_empty(),
        "the operator was refused:\n{}",
        refused.join("\n")
    );

    // Upgrading the operator: bump the chart version of the OCIRepository (flux/operator.yaml's `ref.tag`).
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
    eventually("the release upgraded to 0.1.1", 180, &log, || async {
        let hr = testbed::get(
            &client,
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            SYSTEM_NS,
            "vworkspace-operator",
        )
        .await?;
        let latest = hr["status"]["history"].as_array()?.first()?.clone();
        (latest["chartVersion"].as_str()?.starts_with("0.1.1") && latest["status"] == "deployed")
            .then_some(())
    })
    .await;
    assert_eq!(
        operator_container(&client).await["image"],
        "registry.test/vworkspace-operator:0.1.1"
    );
    let (status, reason, _) = release_ready(&client).await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "UpgradeSucceeded")
    );
    // The intents and their children were untouched by the operator's upgrade.
    assert!(
        testbed::get(&client, "v1", "ConfigMap", TENANT, "web-values")
            .await
            .is_some()
    );
}

//! End to end on the whole test bed, with nothing played: the current kube-apiserver + etcd, the real Flux
//! source-, kustomize- and helm-controller, a git server, a Helm chart repository and an OCI registry on loopback
//! (tests/support/stack.rs), and the operator as its own process (`vworkspace-operator run`).
//!
//! The story of the design card: a signed commit of intents is pushed → Flux syncs the cluster path (the
//! GitRepository + Kustomization of `flux/cluster.yaml`, test values only) → the operator verifies and renders →
//! helm-controller installs the chart (its ConfigMap holds the intended values) → the intent is Ready and the
//! Kustomization with `wait: true` goes Ready → a git note on the intent commit and an event at the receiver.
//! No test here writes status for any controller.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use support::chart;
use support::cosign::{self, CosignKey};
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::manifests::yaml_docs;
use support::receiver::Receiver;
use support::stack::{self, CHART, Stack, kubectl, kubectl_ok};
use support::testbed::{self, free_port};
use vworkspace_operator::api::ApplicationInstance;

const SYSTEM_NS: &str = "vworkspace-system";

/// Poll until `check` gives a value; on timeout, fail with `what` and the logs that explain it.
async fn eventually<T, F, Fut>(what: &str, secs: u64, env: &Env, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    stack::eventually(what, secs, || env.diagnostics(), check).await
}

/// One cluster of the test: its id, repo on the git server, gated namespace, Flux objects and operator.
struct Env {
    stack: &'static Stack,
    tmp: tempfile::TempDir,
    client: Client,
    remote: GitRemote,
    alice: Signer,
    bob: Signer,
    cluster: String,
    ns: String,
    operator: Option<Child>,
    /// Where the running operator serves `/metrics` (`host:port`).
    metrics_addr: String,
    /// The operator's `--fetch-interval` (1 s unless a test proves it is not waited for).
    fetch_interval: &'static str,
    /// The trust policy's `charts` section (YAML, appended to Alice's policy; empty: none).
    charts_policy: String,
    /// Shared use of the stack's Flux controllers, or sole use for a test that stops one (held to the end).
    _flux: FluxUse,
}

/// The tests of this binary share one stack and run at once; a test that stops a Flux controller runs alone.
static FLUX: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[allow(dead_code)] // held for its Drop
enum FluxUse {
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    Sole(tokio::sync::RwLockWriteGuard<'static, ()>),
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The base install every test shares, once per test binary: `kubectl apply` of the operator's chart as `helm
/// template` renders it with the values of `flux/operator.yaml` (the project's CRDs, RBAC — the intent applier
/// Flux impersonates among it —, the Deployment and its Service) and `flux/namespace.yaml`, as an admin would.
/// Left out: the admission policy's binding and the webhook configuration, because several operators share this
/// API server here (Env::start_operator installs both per test cluster, scoped to its namespace and Cluster), and
/// flux/'s per-cluster objects (each test applies them with its own values). The Deployment is created but never
/// runs: the test bed has no kubelet; the operator runs as a process. tests/install.rs installs the chart through
/// helm-controller instead.
fn install_base() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let mut values = chart::flux_values();
        values["admission"] = json!({"policy": true, "webhook": {"enabled": false}});
        let mut base = yaml_docs(&testbed::project_root().join("flux/namespace.yaml"));
        base.extend(
            chart::template(&values)
                .into_iter()
                .filter(|o| o["kind"] != "ValidatingAdmissionPolicyBinding"),
        );
        // The chart's Velero RoleBinding lives in Velero's namespace, which a cluster with Velero has.
        let _ = kubectl(&["create", "namespace", "velero"]);
        stack::kubectl_apply(stack::stack().procs.dir(), "base.json", &base);
        stack::wait_crds_established();
    });
}

/// The operator's per-cluster settings as the chart's Deployment sets them (with flux/operator.yaml's values);
/// the test overrides the cluster id and repo URL with its own, and gives file paths and addresses itself.
fn chart_settings() -> Vec<(String, String)> {
    const CLUSTER_SETTINGS: &[&str] = &[
        "VWORKSPACE_BRANCH",
        "VWORKSPACE_NAMESPACE_SELECTOR",
        "VWORKSPACE_VELERO_NAMESPACE",
    ];
    let objects = chart::template(&chart::flux_values());
    let deploy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart's Deployment");
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| CLUSTER_SETTINGS.contains(&e["name"].as_str().unwrap()))
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn env(name: &str) -> Env {
    env_with(name, FluxUse::Shared(FLUX.read().await)).await
}

async fn env_with(name: &str, flux: FluxUse) -> Env {
    let stack = stack::stack();
    install_base();
    let client = testbed::client().await;
    let cluster = format!("e2e-{name}");
    let url = stack.bare_repo(&cluster);
    let tmp = tempfile::tempdir().unwrap();
    let remote = GitRemote::clone_of(tmp.path(), &url, stack.bare_path(&cluster));
    let alice = Signer::new(&tmp.path().join("keys"), "alice@example.com");
    let bob = Signer::new(&tmp.path().join("keys"), "bob@example.com");
    let env = Env {
        stack,
        tmp,
        client,
        remote,
        alice,
        bob,
        ns: format!("{cluster}-apps"),
        cluster,
        operator: None,
        metrics_addr: format!("127.0.0.1:{}", free_port()),
        fetch_interval: "1s",
        charts_policy: String::new(),
        _flux: flux,
    };
    env.remote.write("README.md", "cluster repo\n");
    // The cluster path exists from the first commit: a missing path blocks (ClusterPathMissing).
    env.remote.write(
        &format!("clusters/{}/README.md", env.cluster),
        "intents of this cluster\n",
    );
    env.remote
        .commit("init", Some(&env.alice), &env.alice.email);
    env
}

impl Env {
    fn path(&self, file: &str) -> String {
        format!("clusters/{}/namespaces/{}/{file}", self.cluster, self.ns)
    }

    /// The gated namespace as the control plane writes it into the cluster repo.
    fn namespace_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    managed-by: vworkspace\n",
            ns = self.ns
        )
    }

    /// An ApplicationInstance of the test chart from the OCI registry (`oci`) or the chart repository (`helm`).
    fn app_yaml(&self, name: &str, source: &str, version: &str, values: &str) -> String {
        let url = match source {
            "oci" => &self.stack.oci_url,
            _ => &self.stack.charts_url,
        };
        format!(
            r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
spec:
  appRef: {{catalogId: {CHART}}}
  chart: {{sourceType: {source}, url: "{url}", name: {CHART}, version: {version}}}
  release: {{name: {name}, namespace: {ns}}}
  values: {values}
"#,
            ns = self.ns,
            cluster = self.cluster
        )
    }

    /// Write files into the work clone and commit them, signed by `signer` (or unsigned by Bob), and push to the
    /// git server. Returns the commit.
    fn push(&self, message: &str, files: &[(&str, &str)], signer: Option<&Signer>) -> String {
        for (file, yaml) in files {
            self.remote.write(&self.path(file), yaml);
        }
        let email = signer.map_or(&self.bob.email, |s| &s.email);
        self.remote.commit(message, signer, email)
    }

    /// Flux's GitRepository + Kustomization from flux/cluster.yaml with this test's values, and the chart's
    /// settings as the operator's environment. Flux verifies the HEAD commit against Alice's key (*.sshpub).
    fn install_flux_objects(&self, wait: bool) -> Vec<(String, String)> {
        let docs = yaml_docs(&testbed::project_root().join("flux/cluster.yaml"));
        let settings = chart_settings();
        let mut out = Vec::new();
        for mut doc in docs {
            match doc["kind"].as_str().unwrap() {
                "GitRepository" => {
                    doc["spec"]["url"] = json!(self.remote.url());
                    doc["spec"]["interval"] = json!("10s");
                    doc["spec"].as_object_mut().unwrap().remove("secretRef");
                    doc["spec"]["verify"]["secretRef"]["name"] =
                        json!(format!("{}-signers", self.cluster));
                }
                "Kustomization" => {
                    doc["spec"]["path"] = json!(format!("./clusters/{}", self.cluster));
                    doc["spec"]["sourceRef"]["name"] = json!(self.cluster);
                    doc["spec"]["interval"] = json!("1m");
                    doc["spec"]["retryInterval"] = json!("5s");
                    doc["spec"]["timeout"] = json!("90s");
                    doc["spec"]["wait"] = json!(wait);
                }
                other => panic!("flux/cluster.yaml: unexpected {other}"),
            }
            doc["metadata"]["name"] = json!(self.cluster);
            out.push(doc);
        }
        let signers = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{}-signers", self.cluster), "namespace": SYSTEM_NS},
            "stringData": {"alice.sshpub": self.alice.public},
        });
        out.insert(0, signers);
        stack::kubectl_apply(self.tmp.path(), "flux-objects.json", &out);
        settings
    }

    /// Ask Flux to look now rather than at its next interval (what `flux reconcile source git` does).
    fn nudge_flux(&self) {
        for kind in ["gitrepository", "kustomization"] {
            request_reconcile(SYSTEM_NS, kind, &self.cluster);
        }
    }

    /// `host:port` of the stack's OCI registry.
    fn registry(&self) -> String {
        self.stack.oci_url["oci://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    /// Suspend or resume this cluster's Kustomization (what `flux suspend|resume kustomization` does).
    fn suspend_flux(&self, suspend: bool) {
        kubectl_ok(&[
            "patch",
            "-n",
            SYSTEM_NS,
            "kustomization",
            &self.cluster,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"suspend":{suspend}}}}}"#),
        ]);
    }

    /// Start the operator process with the chart's settings (test values) as its environment, plus what a Deployment would give it.
    fn start_operator(&mut self, settings: &[(String, String)], receiver: Option<&Receiver>) {
        let state = self.tmp.path().join("state");
        let policy = self.write_policy();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"));
        for (k, v) in settings {
            cmd.env(k, v);
        }
        cmd.env("VWORKSPACE_CLUSTER_ID", &self.cluster)
            .env("VWORKSPACE_REPO_URL", self.remote.url())
            .env("KUBECONFIG", &testbed::server().kubeconfig)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("RUST_LOG", "info")
            .args([
                "run",
                "--log-format",
                "text",
                "--fetch-interval",
                self.fetch_interval,
                "--notes-batch-window",
                "200ms",
            ])
            .arg("--policy")
            .arg(&policy)
            .arg("--state-dir")
            .arg(&state)
            .arg(format!("--metrics-addr={}", self.metrics_addr))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            // The stack's registry and chart repository listen on loopback: allowed explicitly.
            .arg("--allow-chart-host=127.0.0.1");
        // The admission webhook, as the Deployment runs it, reached by URL (no Service here), and this test
        // cluster's policy binding: both scoped to its namespace.
        let webhook_port = free_port();
        let configuration = format!("vworkspace-operator-{}", self.cluster);
        cmd.arg(format!("--webhook-addr=127.0.0.1:{webhook_port}"))
            .arg("--webhook-names=127.0.0.1")
            .arg(format!("--webhook-configuration={configuration}"))
            .arg(format!(
                "--webhook-secret={SYSTEM_NS}/webhook-tls-{}",
                self.cluster
            ));
        let scope = json!({"matchLabels": {"kubernetes.io/metadata.name": self.ns}});
        let mut binding = vworkspace_operator::validate::policy::admission_policy_binding();
        binding["metadata"]["name"] = json!(format!("vworkspace-intents-{}", self.cluster));
        binding["spec"]["paramRef"] =
            json!({"name": self.cluster, "parameterNotFoundAction": "Deny"});
        binding["spec"]["matchResources"] = json!({"namespaceSelector": scope});
        let mut hooks = vworkspace_operator::webhook::webhook_configuration(
            json!({"url": format!("https://127.0.0.1:{webhook_port}/validate")}),
        );
        hooks["metadata"]["name"] = json!(configuration);
        hooks["webhooks"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] =
            json!(self.ns);
        stack::kubectl_apply(self.tmp.path(), "admission.json", &[binding, hooks]);
        if let Some(r) = receiver {
            let token = self.tmp.path().join("cp-token");
            std::fs::write(&token, "e2e-token").unwrap();
            cmd.env(
                "VWORKSPACE_CONTROL_PLANE_ENDPOINT",
                format!("http://{}", r.addr),
            )
            .env("VWORKSPACE_CONTROL_PLANE_TOKEN_FILE", &token);
        }
        let log = std::fs::File::create(self.operator_log()).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.operator = Some(cmd.spawn().expect("start the operator"));
    }

    /// Write the operator's trust policy file (Alice's key, and [`Env::charts_policy`]); the running operator
    /// reads it again within its reload interval (2 s).
    fn write_policy(&self) -> PathBuf {
        let policy = self.tmp.path().join("policy.yaml");
        let text = policy_yaml(&[&self.alice], "range") + &self.charts_policy;
        std::fs::write(&policy, text).unwrap();
        policy
    }

    /// `kubectl vwo ARGS…`: the operator binary as the kubectl plugin `kubectl-vwo` (a link on PATH, as krew
    /// installs it), run through the test bed's kubectl, with this cluster's repo and policy. Returns stdout.
    fn kubectl_vwo(&self, args: &[&str]) -> String {
        let plugins = self.tmp.path().join("plugins");
        if !plugins.join("kubectl-vwo").exists() {
            std::fs::create_dir_all(&plugins).unwrap();
            std::os::unix::fs::symlink(
                env!("CARGO_BIN_EXE_vworkspace-operator"),
                plugins.join("kubectl-vwo"),
            )
            .unwrap();
        }
        let path = format!(
            "{}:{}",
            plugins.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(testbed::bin("kubectl"))
            .arg("vwo")
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", &testbed::server().kubeconfig)
            .env("VWORKSPACE_REPO", &self.remote.bare)
            .env("VWORKSPACE_POLICY", self.write_policy())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl vwo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn operator_log(&self) -> PathBuf {
        self.tmp.path().join("operator.log")
    }

    /// What explains a timeout: the intents, children and Flux objects as kubectl shows them, and log tails.
    fn diagnostics(&self) -> String {
        let get = |args: &[&str]| {
            let out = kubectl(args);
            format!(
                "$ kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        let tail = |p: &Path| {
            let t = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        [
            get(&["get", "applicationinstances,helmreleases,ocirepositories,helmrepositories,helmcharts,configmaps", "-n", &self.ns, "-o", "yaml"]),
            get(&["get", "gitrepositories,kustomizations", "-n", SYSTEM_NS, &self.cluster, "-o", "yaml"]),
            format!("-- operator log:\n{}", tail(&self.operator_log())),
            format!("-- helm-controller:\n{}", self.stack.log_tail("helm-controller", 15)),
            format!("-- kustomize-controller:\n{}", self.stack.log_tail("kustomize-controller", 10)),
            format!("-- source-controller:\n{}", self.stack.log_tail("source-controller", 10)),
        ]
        .join("\n")
    }

    async fn app(&self, name: &str) -> Option<ApplicationInstance> {
        Api::<ApplicationInstance>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let app = self.app(name).await?;
        app.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    async fn has_condition(&self, name: &str, type_: &str, status: &str, reason: &str) -> bool {
        self.condition(name, type_)
            .await
            .is_some_and(|(s, r, _)| s == status && r == reason)
    }

    async fn object(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        testbed::get(&self.client, api_version, kind, ns, name).await
    }

    async fn helm_release(&self, name: &str) -> Option<Value> {
        self.object("helm.toolkit.fluxcd.io/v2", "HelmRelease", &self.ns, name)
            .await
    }

    /// The ConfigMap the test chart installs (`<release>-values`): what helm-controller really installed.
    async fn installed(&self, release: &str) -> Option<Value> {
        self.object("v1", "ConfigMap", &self.ns, &format!("{release}-values"))
            .await
            .map(|cm| cm["data"].clone())
    }

    async fn flux_ready(&self, kind: &str) -> Option<(String, String)> {
        let (api_version, ns) = match kind {
            "Kustomization" => ("kustomize.toolkit.fluxcd.io/v1", SYSTEM_NS),
            _ => ("source.toolkit.fluxcd.io/v1", SYSTEM_NS),
        };
        let obj = self.object(api_version, kind, ns, &self.cluster).await?;
        testbed::ready_condition(&obj).map(|(status, reason, _)| (status, reason))
    }

    /// The note records on a commit of the git server's repository, as plain git shows them.
    fn notes(&self, commit: &str) -> Vec<Value> {
        let notes_ref = format!("vworkspace/{}", self.cluster);
        self.remote
            .try_git(
                &self.remote.bare,
                &["notes", "--ref", &notes_ref, "show", commit],
            )
            .map(|text| {
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One sample of the running operator's `/metrics` (`series`: the name with its labels, as printed).
    async fn metric(&self, series: &str) -> Option<f64> {
        let body = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
            .trim()
            .parse()
            .ok()
    }

    fn has_note(&self, commit: &str, name: &str, outcome: &str) -> bool {
        self.notes(commit)
            .iter()
            .any(|r| r["name"] == name && r["outcome"] == outcome)
    }
}

/// Ask a Flux controller to reconcile an object now (its `reconcile.fluxcd.io/requestedAt` annotation, what
/// `flux reconcile` sets). Returns the stamp, which the object's `status.lastHandledReconcileAt` echoes once done.
fn request_reconcile(ns: &str, kind: &str, name: &str) -> String {
    let stamp = format!("{:?}", std::time::SystemTime::now());
    kubectl_ok(&[
        "annotate",
        "--overwrite",
        "-n",
        ns,
        kind,
        name,
        &format!("reconcile.fluxcd.io/requestedAt={stamp}"),
    ]);
    stamp
}

fn values_secret(ns: &str, name: &str, greeting: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"values.yaml": format!("greeting: {greeting}\nreplicaCount: 2\n")},
    })
}

/// The story of the design card on the real Flux controllers: install from an OCI registry and from a Helm
/// repository with values from a Secret, an upgrade to a version that fails, and removal from Git.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_intents_are_installed_by_flux_upgraded_and_removed_through_git() {
    let mut env = env("story").await;
    let receiver = Receiver::start().await;
    // The tenant's namespace and the Secret holding one release's values exist before the commit (the Secret
    // never goes into Git).
    kubectl_ok(&["create", "namespace", &env.ns]);
    kubectl_ok(&["label", "namespace", &env.ns, "managed-by=vworkspace"]);
    stack::kubectl_apply(
        env.tmp.path(),
        "values-secret.json",
        &[values_secret(&env.ns, "docs-values", "hello from a Secret")],
    );

    let web = env.app_yaml(
        "web",
        "oci",
        "1.0.0",
        "{source: inline, inline: {greeting: hello from git}}",
    );
    let docs = env.app_yaml(
        "docs",
        "helm",
        "1.0.0",
        "{source: secretRef, secretRef: {name: docs-values, key: values.yaml}}",
    );
    let ns_yaml = env.namespace_yaml();
    let commit = env.push(
        "intents: web (OCI) and docs (Helm repository)",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-web.yaml", &web),
            ("applicationinstance-docs.yaml", &docs),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(true);
    env.start_operator(&settings, Some(&receiver));

    // helm-controller installed both charts with the intended values.
    let web_cm = eventually(
        "the web chart installed from the OCI registry",
        180,
        &env,
        || env.installed("web"),
    )
    .await;
    assert_eq!(web_cm["greeting"], "hello from git");
    // helm-controller installs an OCI chart as <version>+<digest of the artifact>.
    assert!(
        web_cm["chartVersion"]
            .as_str()
            .unwrap()
            .starts_with("1.0.0+"),
        "{web_cm}"
    );
    let docs_cm = eventually(
        "the docs chart installed from the Helm repository",
        180,
        &env,
        || env.installed("docs"),
    )
    .await;
    assert_eq!(docs_cm["greeting"], "hello from a Secret");
    let docs_values: Value =
        serde_json::from_str(docs_cm["values.json"].as_str().unwrap()).unwrap();
    assert_eq!(docs_values["replicaCount"], 2);

    for name in ["web", "docs"] {
        eventually(
            &format!("{name}: Ready=True/HelmReleaseReady"),
            120,
            &env,
            || async {
                env.has_condition(name, "Ready", "True", "HelmReleaseReady")
                    .await
                    .then_some(())
            },
        )
        .await;
        assert!(
            env.has_condition(name, "Verified", "True", "CommitVerified")
                .await
        );
    }
    // kubectl wait agrees (our conditions are what kubectl reads).
    kubectl_ok(&[
        "wait",
        "-n",
        &env.ns,
        "--for=condition=Ready",
        "applicationinstance/web",
        "applicationinstance/docs",
        "--timeout=60s",
    ]);
    // The Kustomization with wait: true is Ready: kstatus reads our status as Current.
    eventually(
        "the Kustomization (wait: true) Ready",
        120,
        &env,
        || async {
            env.flux_ready("Kustomization")
                .await
                .filter(|(s, _)| s == "True")
        },
    )
    .await;
    // The audit trail on the git server, and the event at the receiver.
    eventually("Ready notes on the intent commit", 60, &env, || async {
        (env.has_note(&commit, "web", "Ready") && env.has_note(&commit, "docs", "Ready"))
            .then_some(())
    })
    .await;
    let uid = env.app("web").await.unwrap().metadata.uid.unwrap();
    eventually("the Ready transition posted", 60, &env, || async {
        receiver
            .keys()
            .iter()
            .any(|k| k.starts_with(&format!("condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/{}/web/{uid}/Ready/True", env.ns)))
            .then_some(())
    })
    .await;

    // An upgrade to 2.0.0, which fails to install: helm-controller fails, remediates (rolls back), and the intent
    // says so as docs/conditions.md promises.
    let web2 = env.app_yaml(
        "web",
        "oci",
        "2.0.0",
        "{source: inline, inline: {greeting: hello from git}}",
    );
    let upgrade = env.push(
        "web: upgrade to 2.0.0",
        &[("applicationinstance-web.yaml", &web2)],
        Some(&env.alice),
    );
    env.nudge_flux();
    // First Ready=False/HelmReleaseFailed + Degraded=True/UpgradeFailed while helm-controller remediates; once it
    // rolled back: Ready=True/RolledBack (the previous release runs) + Degraded=True/UpgradeFailed.
    let degraded = eventually(
        "web: rolled back after the failed upgrade",
        240,
        &env,
        || async {
            let ready = env.condition("web", "Ready").await?;
            (ready.0 == "True" && ready.1 == "RolledBack").then_some(())?;
            env.condition("web", "Degraded").await
        },
    )
    .await;
    assert_eq!(
        (degraded.0.as_str(), degraded.1.as_str()),
        ("True", "UpgradeFailed"),
        "{degraded:?}"
    );
    // The rollback left 1.0.0 installed.
    let installed = env.installed("web").await.unwrap();
    assert!(
        installed["chartVersion"]
            .as_str()
            .unwrap()
            .starts_with("1.0.0+"),
        "{installed}"
    );
    eventually("a note on the upgrade commit", 60, &env, || async {
        env.notes(&upgrade)
            .iter()
            .any(|r| r["name"] == "web")
            .then_some(())
    })
    .await;

    // A chart version that exists in neither repository: source-controller (OCI) or helm-controller (Helm
    // repository, which stops at its source step without updating the HelmRelease's observedGeneration) reports
    // it, and the intent says Ready=False/ChartUnreachable with a Failed note, from either source.
    let missing_web = env.app_yaml(
        "web",
        "oci",
        "9.9.9",
        "{source: inline, inline: {greeting: hello from git}}",
    );
    let missing_docs = env.app_yaml(
        "docs",
        "helm",
        "9.9.9",
        "{source: secretRef, secretRef: {name: docs-values, key: values.yaml}}",
    );
    // And a new instance whose chart fails to install (2.0.0): nothing was ever deployed, so it is not Ready and
    // not Degraded (there is no workload to be unhealthy), with a Failed note.
    let fresh = env.app_yaml(
        "fresh",
        "oci",
        "2.0.0",
        "{source: inline, inline: {greeting: never installed}}",
    );
    let missing = env.push(
        "web and docs: a version that was never published; fresh: a chart that fails to install",
        &[
            ("applicationinstance-web.yaml", &missing_web),
            ("applicationinstance-docs.yaml", &missing_docs),
            ("applicationinstance-fresh.yaml", &fresh),
        ],
        Some(&env.alice),
    );
    env.nudge_flux();
    for name in ["web", "docs"] {
        let ready = eventually(
            &format!("{name}: Ready=False/ChartUnreachable for 9.9.9"),
            180,
            &env,
            || async {
                env.condition(name, "Ready")
                    .await
                    .filter(|c| c.0 == "False" && c.1 == "ChartUnreachable")
            },
        )
        .await;
        assert!(ready.2.contains("9.9.9"), "{name}: {ready:?}");
    }
    let never = eventually(
        "fresh: Ready=False/HelmReleaseFailed once helm-controller gave up",
        240,
        &env,
        || async {
            let degraded = env.condition("fresh", "Degraded").await?;
            env.condition("fresh", "Ready")
                .await
                .filter(|c| c.0 == "False" && c.1 == "HelmReleaseFailed")
                .map(|_| degraded)
        },
    )
    .await;
    assert_eq!(
        (never.0.as_str(), never.1.as_str()),
        ("False", "Recovered"),
        "a release that never installed is not Degraded: {never:?}"
    );
    eventually("a Failed note for the failed install", 60, &env, || async {
        env.notes(&missing)
            .iter()
            .any(|r| r["name"] == "fresh" && r["outcome"] == "Failed")
            .then_some(())
    })
    .await;
    // `kubectl vwo trace` (the binary as a kubectl plugin) on the failed install: the commit and its signature,
    // the failed release, the note, and what to do.
    let trace = env.kubectl_vwo(&["trace", &format!("ai/{}/fresh", env.ns), "-o", "json"]);
    let t: Value = serde_json::from_str(&trace).unwrap_or_else(|e| panic!("{e}: {trace}"));
    assert_eq!(t["origin"]["mode"], "gitops", "{t}");
    assert_eq!(t["origin"]["commit"], missing.as_str(), "{t}");
    assert!(
        t["origin"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("verified: Ssh"),
        "{t}"
    );
    let hr = t["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "HelmRelease")
        .unwrap();
    assert!(
        hr["facts"]["history"].as_str().unwrap().contains("2.0.0"),
        "{hr}"
    );
    assert!(
        t["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["outcome"] == "Failed"),
        "{t}"
    );
    let step = t["next"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["reason"] == "HelmReleaseFailed")
        .unwrap();
    assert_eq!(
        step["remedy"],
        "read the relayed Flux reason; fix chart or values in Git"
    );
    assert_eq!(
        step["command"],
        format!("kubectl describe helmrelease -n {} fresh", env.ns)
    );
    let text = env.kubectl_vwo(&["trace", &format!("ai/{}/fresh", env.ns)]);
    assert!(
        text.contains("What to do next") && text.contains(&missing),
        "{text}"
    );
    // `kubectl vwo status`: the Flux Kustomization of the cluster path is read against the verified view.
    let status: Value = serde_json::from_str(&env.kubectl_vwo(&[
        "status",
        "--cluster-id",
        &env.cluster,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(status["mode"], "gitops", "{status}");
    assert!(
        status["flux"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "Kustomization"),
        "{status}"
    );
    assert!(
        status["intents"]["ApplicationInstance"]["not_ready"]
            .as_u64()
            .unwrap()
            >= 1,
        "{status}"
    );
    eventually("Failed notes for the missing version", 60, &env, || async {
        let notes = env.notes(&missing);
        ["web", "docs"]
            .iter()
            .all(|n| {
                notes.iter().any(|r| {
                    r["name"] == *n && r["outcome"] == "Failed" && r["reason"] == "ChartUnreachable"
                })
            })
            .then_some(())
    })
    .await;

    // docs removed from Git: Flux prunes the intent, our finalizer holds it until helm-controller uninstalled the
    // release and the children are gone.
    env.remote
        .remove(&env.path("applicationinstance-docs.yaml"));
    env.remote
        .commit("docs: remove", Some(&env.alice), &env.alice.email);
    env.nudge_flux();
    eventually(
        "docs: intent, HelmRelease and installed ConfigMap gone",
        180,
        &env,
        || async {
            (env.app("docs").await.is_none()
                && env.helm_release("docs").await.is_none()
                && env.installed("docs").await.is_none())
            .then_some(())
        },
    )
    .await;
    assert!(
        env.object(
            "source.toolkit.fluxcd.io/v1",
            "HelmRepository",
            &env.ns,
            "docs"
        )
        .await
        .is_none(),
        "the chart source of docs is gone too"
    );
}

/// Fail closed under real Flux. Bob's unsigned change with Alice's signed commit on top passes Flux's HEAD-only
/// verification and is synced; the operator, verifying the whole range, blocks it and keeps the release at the
/// verified version. A hand edit of a synced intent is Blocked `SpecMismatch` until Flux's drift correction puts
/// the Git spec back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_hand_edited_intents_are_blocked_while_flux_syncs_them() {
    let mut env = env("closed").await;
    let api = env.app_yaml(
        "api",
        "oci",
        "1.0.0",
        "{source: inline, inline: {greeting: v1}}",
    );
    let ui = env.app_yaml(
        "ui",
        "oci",
        "1.0.0",
        "{source: inline, inline: {greeting: ui}}",
    );
    let ns_yaml = env.namespace_yaml();
    env.push(
        "intents: api and ui",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-api.yaml", &api),
            ("applicationinstance-ui.yaml", &ui),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    env.start_operator(&settings, None);
    for name in ["api", "ui"] {
        eventually(
            &format!("{name} installed and Ready"),
            180,
            &env,
            || async {
                env.has_condition(name, "Ready", "True", "HelmReleaseReady")
                    .await
                    .then_some(())
            },
        )
        .await;
    }

    // Bob's unsigned upgrade of api, then a signed commit of Alice's on top: Flux verifies HEAD only and syncs.
    let api2 = env.app_yaml(
        "api",
        "oci",
        "1.1.0",
        "{source: inline, inline: {greeting: v2}}",
    );
    env.push(
        "api: upgrade (unsigned)",
        &[("applicationinstance-api.yaml", &api2)],
        None,
    );
    env.remote.write("README.md", "cluster repo, reviewed\n");
    let head = env
        .remote
        .commit("docs: readme", Some(&env.alice), &env.alice.email);
    env.nudge_flux();
    eventually(
        "Flux synced the unsigned change (its Kustomization at the signed head)",
        120,
        &env,
        || async {
            let app = env.app("api").await?;
            (app.spec.chart.as_ref()?.version == "1.1.0").then_some(())
        },
    )
    .await;
    let gitrepo = env
        .object(
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            SYSTEM_NS,
            &env.cluster,
        )
        .await
        .unwrap();
    assert!(
        gitrepo["status"]["artifact"]["revision"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&head),
        "Flux's artifact is the signed head: {}",
        gitrepo["status"]["artifact"]
    );
    // Until the operator has fetched Bob's commit, the synced spec differs from its verified view (SpecMismatch);
    // once it has, the reason is the unsigned commit itself.
    let message = eventually("api Blocked UnsignedCommit", 60, &env, || async {
        env.condition("api", "Blocked")
            .await
            .filter(|c| c.0 == "True" && c.1 == "UnsignedCommit")
            .map(|c| c.2)
    })
    .await;
    assert!(message.contains("spec.chart.version"), "{message}");
    // The release stays at the verified version; ui, untouched by the unsigned commit, stays Ready.
    let hr = env.helm_release("api").await.unwrap();
    let oci = env
        .object(
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            &env.ns,
            "api",
        )
        .await
        .unwrap();
    assert_eq!(oci["spec"]["ref"]["tag"], "1.0.0", "{hr}");
    assert_eq!(env.installed("api").await.unwrap()["greeting"], "v1");
    assert!(
        env.has_condition("ui", "Ready", "True", "HelmReleaseReady")
            .await
    );

    // A hand edit of ui (another field manager than Flux): Blocked SpecMismatch. Flux undoes such an edit at its
    // next Kustomization reconcile (it was still reconciling after the nudge above, within seconds): the edit is
    // made while the Kustomization is suspended (`flux suspend kustomization`), as between two reconciles.
    env.suspend_flux(true);
    kubectl_ok(&[
        "patch",
        "-n",
        &env.ns,
        "applicationinstance",
        "ui",
        "--type=merge",
        "--field-manager=kubectl-edit",
        "-p",
        r#"{"spec":{"values":{"inline":{"greeting":"edited by hand"}}}}"#,
    ]);
    eventually("ui Blocked SpecMismatch", 60, &env, || async {
        env.has_condition("ui", "Blocked", "True", "SpecMismatch")
            .await
            .then_some(())
    })
    .await;
    assert_eq!(
        env.installed("ui").await.unwrap()["greeting"],
        "ui",
        "the edit never reached the release"
    );
    // Flux's drift correction: kustomize-controller re-applies the Git spec on its next reconcile, which lifts
    // the block without anyone touching the operator.
    env.suspend_flux(false);
    env.nudge_flux();
    eventually(
        "ui unblocked after Flux restored the Git spec",
        120,
        &env,
        || async {
            let app = env.app("ui").await?;
            let restored = app.spec.values.as_ref()?.inline.as_ref()?["greeting"] == "ui";
            (restored
                && env
                    .has_condition("ui", "Blocked", "False", "Unblocked")
                    .await)
                .then_some(())
        },
    )
    .await;
}

/// `hydrate` commits the rendering of verified intent to its own branch, signed by the operator's key; a second
/// GitRepository (verifying that key) + Kustomization syncs the branch and helm-controller installs from it. No
/// operator runs in this cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrated_branch_synced_by_flux_is_installed_by_helm_controller() {
    let env = env("hydrate").await;
    kubectl_ok(&["create", "namespace", &env.ns]);
    let app = env.app_yaml(
        "site",
        "oci",
        "1.1.0",
        "{source: inline, inline: {greeting: hydrated}}",
    );
    let ns_yaml = env.namespace_yaml();
    let commit = env.push(
        "intents: site",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-site.yaml", &app),
        ],
        Some(&env.alice),
    );
    let operator_key = Signer::new(
        &env.tmp.path().join("operator"),
        "vworkspace-operator@vworkspace.invalid",
    );
    let policy = env.tmp.path().join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&[&env.alice], "range")).unwrap();
    let out_branch = format!("hydrated/{}", env.cluster);
    let hydrate = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .args([
            "hydrate",
            "--repo",
            &env.remote.url(),
            "--cluster-id",
            &env.cluster,
            "--out-branch",
            &out_branch,
        ])
        .arg("--policy")
        .arg(&policy)
        .arg("--signing-key")
        .arg(&operator_key.key)
        .arg("--allow-chart-host=127.0.0.1")
        .arg("--state-dir")
        .arg(env.tmp.path().join("state"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        hydrate.status.success(),
        "hydrate: {}{}",
        String::from_utf8_lossy(&hydrate.stdout),
        String::from_utf8_lossy(&hydrate.stderr)
    );

    let name = format!("{}-hydrated", env.cluster);
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-signers"), "namespace": SYSTEM_NS},
            "stringData": {"operator.sshpub": operator_key.public}}),
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": SYSTEM_NS},
            "spec": {"interval": "10s", "url": env.remote.url(), "ref": {"branch": out_branch},
                "verify": {"mode": "HEAD", "secretRef": {"name": format!("{name}-signers")}}}}),
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": SYSTEM_NS},
            "spec": {"interval": "1m", "retryInterval": "5s", "path": "./", "prune": true, "wait": false,
                "sourceRef": {"kind": "GitRepository", "name": name}}}),
    ];
    stack::kubectl_apply(env.tmp.path(), "hydrated-flux.json", &objects);

    let cm = eventually(
        "the hydrated HelmRelease installed by helm-controller",
        180,
        &env,
        || env.installed("site"),
    )
    .await;
    assert_eq!(cm["greeting"], "hydrated");
    assert!(
        cm["chartVersion"].as_str().unwrap().starts_with("1.1.0+"),
        "{cm}"
    );
    // The hydrated commit Flux synced names the intent commit in its trailer.
    let message = env
        .remote
        .git(&env.remote.bare, &["log", "-1", "--format=%B", &out_branch]);
    assert!(message.contains(&commit), "{message}");
    let src = env
        .object(
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            SYSTEM_NS,
            &name,
        )
        .await
        .unwrap();
    let verified = src["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "SourceVerified")
        .cloned();
    assert_eq!(
        verified.as_ref().map(|c| c["status"].clone()),
        Some(json!("True")),
        "Flux verified the operator's signature: {verified:?}"
    );
    // There is no ApplicationInstance in this cluster: the intent stayed in Git.
    assert!(env.app("site").await.is_none());
}

/// The Kustomization's Ready condition: (status, message, lastAttemptedRevision).
async fn kustomization_ready(env: &Env) -> Option<(String, String, String)> {
    let k = testbed::get(
        &env.client,
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        SYSTEM_NS,
        &env.cluster,
    )
    .await?;
    let ready = k["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    Some((
        ready["status"].as_str()?.to_string(),
        ready["message"].as_str().unwrap_or_default().to_string(),
        k["status"]["lastAttemptedRevision"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_intents_pushed_to_git_are_refused_at_admission_and_flux_reports_why() {
    let mut env = env("admission").await;
    let ns_yaml = env.namespace_yaml();
    let web = env.app_yaml(
        "web",
        "oci",
        "1.0.0",
        "{source: inline, inline: {greeting: hello}}",
    );
    env.push(
        "intents: web",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-web.yaml", &web),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    env.start_operator(&settings, None);
    eventually("web admitted and applied by Flux", 180, &env, || async {
        env.app("web").await.map(|_| ())
    })
    .await;

    // Two signed commits a reviewer missed: a password inline (the operator's webhook refuses it), then a
    // version range (the CRD's own rule refuses it). Flux dry-runs a commit before applying any of it, so
    // nothing of either reaches the cluster, and the Kustomization says why, in render's words.
    for (name, values, version, words) in [
        (
            "leaky",
            "{source: inline, inline: {db: {password: hunter2}}}",
            "1.0.0",
            "admission webhook \"intents.vworkspace.io\" denied the request: spec.values.inline.db.password: \
             InlineSecretMaterialRejected: key names secret material",
        ),
        (
            "ranged",
            "{source: inline, inline: {greeting: hi}}",
            "\"^1.0\"",
            "spec.chart.version: Invalid value: \"^1.0\": ^1.0 is not an exact semver version",
        ),
    ] {
        let yaml = env.app_yaml(name, "oci", version, values);
        let file = format!("applicationinstance-{name}.yaml");
        let commit = env.push(
            &format!("intents: {name}"),
            &[(&file, &yaml)],
            Some(&env.alice),
        );
        env.nudge_flux();
        let message = eventually(
            &format!("the Kustomization refusing {commit}"),
            120,
            &env,
            || async {
                let (status, message, revision) = kustomization_ready(&env).await?;
                (status == "False" && revision.contains(&commit) && message.contains(name))
                    .then_some(message)
            },
        )
        .await;
        assert!(message.contains(words), "{message}");
        assert!(env.app(name).await.is_none(), "{name} reached the cluster");
        // Take it out of Git again (the fix a control plane would push).
        env.remote.remove(&env.path(&file));
        let fixed = env.remote.commit(
            &format!("remove {name}"),
            Some(&env.alice),
            &env.alice.email,
        );
        env.nudge_flux();
        eventually(
            &format!("the Kustomization Ready at {fixed}"),
            120,
            &env,
            || async {
                let (status, _, revision) = kustomization_ready(&env).await?;
                (status == "True" && revision.contains(&fixed)).then_some(())
            },
        )
        .await;
    }
    // The valid intent was never disturbed.
    assert!(env.app("web").await.is_some());
}

/// The Flux source-controller stopped (SIGKILL) and started again, with a signed change pushed while it is down.
/// The operator reads Git itself and sees the new commit at once, while the live intent cannot follow until
/// source-controller is back: the unchanged intent must stay Verified and Ready on its old commit (never
/// Blocked: Flux lagging is not tampering), the installed release must stay, and once source-controller is back
/// the change is installed, with exactly one Ready note per intent commit. Runs alone (it stops a controller the
/// other tests of this binary use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_controller_stopped_and_started_again_blocks_nothing() {
    let mut env = env_with("srcstop", FluxUse::Sole(FLUX.write().await)).await;
    kubectl_ok(&["create", "namespace", &env.ns]);
    kubectl_ok(&["label", "namespace", &env.ns, "managed-by=vworkspace"]);
    let web = env.app_yaml(
        "web",
        "oci",
        "1.0.0",
        "{source: inline, inline: {greeting: before}}",
    );
    let ns_yaml = env.namespace_yaml();
    let first = env.push(
        "web 1.0.0",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-web.yaml", &web),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    env.start_operator(&settings, None);
    eventually("web: Ready on the first commit", 180, &env, || async {
        (env.has_condition("web", "Ready", "True", "HelmReleaseReady")
            .await
            && env.has_note(&first, "web", "Ready"))
        .then_some(())
    })
    .await;
    let blocked_since = |app: &ApplicationInstance| {
        app.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Blocked"))
            .map(|c| (c.status.clone(), c.last_transition_time.0))
    };
    let before = blocked_since(&env.app("web").await.unwrap()).unwrap();
    assert_eq!(before.0, "False");

    env.stack.kill_flux("source-controller");
    let web2 = env.app_yaml(
        "web",
        "oci",
        "1.1.0",
        "{source: inline, inline: {greeting: after}}",
    );
    let second = env.push(
        "web 1.1.0",
        &[("applicationinstance-web.yaml", &web2)],
        Some(&env.alice),
    );
    // 20 s down: the operator fetches every second, so it has judged the lagging intent against the new
    // commit many times over.
    let down = std::time::Instant::now();
    while down.elapsed() < std::time::Duration::from_secs(20) {
        let app = env.app("web").await.unwrap();
        let status = app.status.clone().unwrap();
        let cond = |t: &str| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
                .unwrap()
        };
        assert_eq!(
            blocked_since(&app).unwrap(),
            before,
            "web was Blocked while source-controller was down: {:?}",
            cond("Blocked")
        );
        let verified = cond("Verified");
        assert_eq!(verified.0, "True", "{verified:?}");
        assert_eq!(status.intent_commit.as_deref(), Some(first.as_str()));
        assert_eq!(cond("Ready").0, "True", "{:?}", cond("Ready"));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let installed = env.installed("web").await.unwrap();
    assert_eq!(installed["greeting"], "before");

    env.stack.restart_flux("source-controller");
    env.nudge_flux();
    let installed = eventually(
        "web 1.1.0 installed after source-controller is back",
        180,
        &env,
        || async {
            env.installed("web")
                .await
                .filter(|cm| cm["greeting"] == "after")
        },
    )
    .await;
    assert!(
        installed["chartVersion"]
            .as_str()
            .unwrap()
            .starts_with("1.1.0+"),
        "{installed}"
    );
    eventually("a Ready note on the second commit", 120, &env, || async {
        env.has_note(&second, "web", "Ready").then_some(())
    })
    .await;
    let app = env.app("web").await.unwrap();
    assert_eq!(blocked_since(&app).unwrap(), before, "never Blocked");
    assert_eq!(
        app.status.unwrap().intent_commit.as_deref(),
        Some(second.as_str())
    );
    for commit in [&first, &second] {
        let ready = env
            .notes(commit)
            .into_iter()
            .filter(|r| r["name"] == "web" && r["outcome"] == "Ready")
            .count();
        assert_eq!(ready, 1, "Ready notes on {commit}: {:?}", env.notes(commit));
    }
}

/// The trust policy's `charts` section for one registry prefix: a cosign signature by one of `keys`.
fn charts_policy(prefix: &str, keys: &[&CosignKey]) -> String {
    let entries: String = keys
        .iter()
        .map(|k| {
            let pem: String = k
                .public
                .lines()
                .map(|l| format!("            {l}\n"))
                .collect();
            format!("        - name: {}\n          key: |\n{pem}", k.name)
        })
        .collect();
    format!(
        "charts:\n  default: required\n  rules:\n    - prefix: {prefix}\n      cosignKeys:\n{entries}"
    )
}

/// Chart trust on the real source- and helm-controller, with charts signed by the real cosign: a chart signed by
/// a trusted key installs and its note names the digest and the signer; an unsigned chart and one signed by
/// another key are refused (ChartUnverified, noted); a digest pin keeps the reviewed bytes when the tag is
/// pushed again; and a key removed from the policy while the operator runs makes the next reconcile refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_must_carry_the_signatures_the_trust_policy_names() {
    let mut env = env("charts").await;
    let receiver = Receiver::start().await;
    let dir = env.tmp.path().join("signing");
    let registry = env.registry();
    let base = format!("oci://{registry}/trust-{}", env.cluster);
    let repo = |name: &str| format!("{base}/{name}");
    let release = CosignKey::generate(&dir, "release");
    let intruder = CosignKey::generate(&dir, "intruder");
    let retiring = CosignKey::generate(&dir, "retiring");
    let push_signed = |name: &str, app_version: &str, key: Option<&CosignKey>| {
        let digest = cosign::push_chart(env.stack, &dir, &repo(name), "1.0.0", app_version);
        if let Some(key) = key {
            key.sign(
                &cosign::chart_reference(&repo(name), &digest),
                &env.stack.ca,
            );
        }
        digest
    };
    let signed = push_signed("signed", "1.0.0", Some(&release));
    push_signed("unsigned", "1.0.0", None);
    push_signed("other", "1.0.0", Some(&intruder));
    push_signed("rotated", "1.0.0", Some(&retiring));
    let pinned = push_signed("pinned", "1.0.0", Some(&release));
    env.charts_policy = charts_policy(&base, &[&release, &retiring]);

    let app = |name: &str, digest: Option<&str>| {
        let pin = digest.map_or_else(String::new, |d| format!(", digest: \"{d}\""));
        env.app_yaml(
            name,
            "oci",
            "1.0.0",
            "{source: inline, inline: {greeting: signed}}",
        )
        .replace(
            &format!("\"{}\"", env.stack.oci_url),
            &format!("\"{}\"", repo(name)),
        )
        .replace("version: 1.0.0}", &format!("version: 1.0.0{pin}}}"))
    };
    let ns_yaml = env.namespace_yaml();
    let names = ["signed", "unsigned", "other", "rotated", "pinned"];
    let intents: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            let digest = (*n == "pinned").then_some(pinned.as_str());
            (format!("applicationinstance-{n}.yaml"), app(n, digest))
        })
        .collect();
    let mut files: Vec<(&str, &str)> = vec![("namespace.yaml", &ns_yaml)];
    files.extend(intents.iter().map(|(f, y)| (f.as_str(), y.as_str())));
    let commit = env.push(
        "intents: signed and unsigned charts",
        &files,
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    env.start_operator(&settings, Some(&receiver));

    // Signed by a key of the rule: installed, and Ready says which bytes run and who signed them.
    for name in ["signed", "rotated", "pinned"] {
        eventually(&format!("{name} verified and Ready"), 180, &env, || async {
            env.has_condition(name, "Ready", "True", "HelmReleaseReady")
                .await
                .then_some(())
        })
        .await;
    }
    let (_, _, message) = env.condition("signed", "Ready").await.unwrap();
    assert!(
        message.contains(&format!("chart {signed} verified")),
        "{message}"
    );
    assert!(
        message.contains("signed by one of the cosign keys release (SHA256:"),
        "{message}"
    );
    let oci = env
        .object(
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            &env.ns,
            "signed",
        )
        .await
        .unwrap();
    assert_eq!(oci["spec"]["verify"]["provider"], "cosign", "{oci}");
    assert!(
        testbed::condition(&oci, "SourceVerified").is_some_and(|(s, _, _)| s == "True"),
        "{oci}"
    );

    // Unsigned, or signed by a key the policy does not name: source-controller refuses, nothing is installed.
    for name in ["unsigned", "other"] {
        let (_, _, message) = eventually(&format!("{name} refused"), 120, &env, || async {
            env.condition(name, "Ready")
                .await
                .filter(|(s, r, _)| s == "False" && r == "ChartUnverified")
        })
        .await;
        assert!(
            message.contains(&format!("{}/vwo-test:1.0.0", repo(name))),
            "{message}"
        );
        assert!(message.contains("at sha256:"), "{message}");
        assert!(
            message.contains("expects one of the cosign keys release"),
            "{message}"
        );
        assert!(
            env.installed(name).await.is_none(),
            "{name} must not be installed"
        );
    }

    // The audit trail: the digest and the signer on the note, Failed for the refused charts; the event too.
    eventually("notes on the intent commit", 60, &env, || async {
        (env.has_note(&commit, "signed", "Ready") && env.has_note(&commit, "unsigned", "Failed"))
            .then_some(())
    })
    .await;
    let notes = env.notes(&commit);
    let note = notes
        .iter()
        .find(|r| r["name"] == "signed" && r["outcome"] == "Ready")
        .unwrap();
    assert_eq!(note["childRefs"]["chartDigest"], signed, "{note}");
    let signer = note["childRefs"]["chartSigner"].as_str().unwrap();
    assert!(signer.contains("release (SHA256:"), "{note}");
    let refused = notes.iter().find(|r| r["name"] == "unsigned").unwrap();
    assert_eq!(refused["reason"], "ChartUnverified", "{refused}");
    eventually("the Ready event carries the digest", 60, &env, || async {
        let events = receiver.events.lock().unwrap().clone();
        events
            .iter()
            .any(|e| e.to_string().contains(&signed))
            .then_some(())
    })
    .await;
    // Both deliveries were timed: the notes on the remote, the events accepted by the receiver.
    for channel in ["notes", "events"] {
        let series =
            format!("vworkspace_operator_outcome_delivery_seconds_count{{channel=\"{channel}\"}}");
        eventually(
            &format!("{channel} delivery latency observed"),
            30,
            &env,
            || async { (env.metric(&series).await? > 0.0).then_some(()) },
        )
        .await;
    }

    // The pinned chart's tag is pushed again with other bytes (signed by the same key): Flux never reads the tag,
    // so what runs stays the reviewed digest.
    let retagged = push_signed("pinned", "6.6.6", Some(&release));
    assert_ne!(retagged, pinned);
    let oci = |name: &'static str| {
        let env = &env;
        async move {
            env.object(
                "source.toolkit.fluxcd.io/v1",
                "OCIRepository",
                &env.ns,
                name,
            )
            .await
        }
    };
    let stamp = request_reconcile(&env.ns, "ocirepository", "pinned");
    let source = eventually("the pinned source reconciled again", 60, &env, || async {
        oci("pinned")
            .await
            .filter(|o| o["status"]["lastHandledReconcileAt"] == stamp.as_str())
    })
    .await;
    assert_eq!(source["spec"]["ref"], json!({"digest": pinned}), "{source}");
    let revision = source["status"]["artifact"]["revision"].as_str().unwrap();
    assert!(
        revision.ends_with(&pinned) && !revision.contains(&retagged),
        "{source}"
    );
    let hr = env.helm_release("pinned").await.unwrap();
    assert_eq!(hr["status"]["history"][0]["ociDigest"], pinned, "{hr}");

    // The retiring key leaves the policy while the operator runs: the keys Secret is renamed, source-controller
    // verifies again, and the chart it signed is refused although its release still runs.
    env.charts_policy = charts_policy(&base, &[&release]);
    env.write_policy();
    let (_, _, message) = eventually(
        "rotated refused once its key is gone",
        120,
        &env,
        || async {
            env.condition("rotated", "Ready")
                .await
                .filter(|(s, r, _)| s == "False" && r == "ChartUnverified")
        },
    )
    .await;
    assert!(
        message.contains("expects cosign key release (SHA256:"),
        "{message}"
    );
    eventually("the refusal noted", 60, &env, || async {
        env.has_note(&commit, "rotated", "Failed").then_some(())
    })
    .await;
    // The signed chart, whose key stays, is still Ready.
    assert!(
        env.has_condition("signed", "Ready", "True", "HelmReleaseReady")
            .await
    );
}

/// `kubectl patch --type=merge` of one HelmRelease of the test's namespace: someone else's edit of a child (what
/// `flux suspend` or a hand edit does). The operator owns none of these fields, so they stay.
fn patch_helm_release(env: &Env, name: &str, patch: Value) {
    kubectl_ok(&[
        "patch",
        "-n",
        &env.ns,
        "helmrelease",
        name,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// The HelmRelease and chart-source states Flux writes that the story does not pass through, and those a hand
/// edit of a child brings, each told as docs/conditions.md's state table says: an artifact helm-controller cannot
/// load, Flux out of retries, values it cannot compose, a dependency not ready, a suspended HelmRelease, drift
/// found in `warn` mode. All on the real source- and helm-controller; nothing here writes a status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_release_states_are_told_as_flux_reports_them() {
    let mut env = env("states").await;
    kubectl_ok(&["create", "namespace", &env.ns]);
    kubectl_ok(&["label", "namespace", &env.ns, "managed-by=vworkspace"]);
    stack::kubectl_apply(
        env.tmp.path(),
        "values-secret.json",
        &[values_secret(&env.ns, "valued-values", "from a Secret")],
    );
    let registry = env.registry();
    let broken_repo = format!("oci://{registry}/states-{}/broken", env.cluster);
    cosign::push_unloadable_chart(env.stack, &broken_repo, "1.0.0");
    let inline = |greeting: &str| format!("{{source: inline, inline: {{greeting: {greeting}}}}}");
    let broken = env
        .app_yaml("broken", "oci", "1.0.0", &inline("never loaded"))
        .replace(
            &format!("\"{}\"", env.stack.oci_url),
            &format!("\"{broken_repo}\""),
        );
    let held = |version: &str| env.app_yaml("held", "oci", version, &inline("held"));
    let valued = |secret: &str| {
        env.app_yaml(
            "valued",
            "helm",
            "1.0.0",
            &format!("{{source: secretRef, secretRef: {{name: {secret}, key: values.yaml}}}}"),
        )
    };
    let waits = env.app_yaml("waits", "helm", "1.0.0", &inline("waits"));
    let drifts = env.app_yaml("drifts", "helm", "1.0.0", &inline("as installed"));
    let fails = env.app_yaml("fails", "oci", "2.0.0", &inline("never installed"));
    let ns_yaml = env.namespace_yaml();
    let (held_1, valued_ok) = (held("1.0.0"), valued("valued-values"));
    let (held_2, valued_missing) = (held("1.1.0"), valued("absent-values"));
    let commit = env.push(
        "intents: six states",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-broken.yaml", &broken),
            ("applicationinstance-held.yaml", &held_1),
            ("applicationinstance-valued.yaml", &valued_ok),
            ("applicationinstance-waits.yaml", &waits),
            ("applicationinstance-drifts.yaml", &drifts),
            ("applicationinstance-fails.yaml", &fails),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    // The operator never fetches on its interval here: the second commit reaches its view because Flux's
    // GitRepository and Kustomization name it (source::flux_watch).
    env.fetch_interval = "1h";
    env.start_operator(&settings, None);

    // An artifact helm-controller cannot load: Ready=False/ArtifactFailed on a HelmRelease whose status never
    // observed a generation. The chart is unreachable, and the note says Failed.
    let (_, _, message) = eventually("broken: ChartUnreachable", 180, &env, || async {
        env.condition("broken", "Ready")
            .await
            .filter(|(s, r, _)| s == "False" && r == "ChartUnreachable")
    })
    .await;
    assert!(
        message.contains("ArtifactFailed: Could not load chart"),
        "{message}"
    );
    // Flux out of retries on an install that keeps failing: said, and what retries.
    let (_, _, message) = eventually("fails: Flux stopped retrying", 240, &env, || async {
        env.condition("fails", "Ready").await.filter(|(s, r, m)| {
            s == "False" && r == "HelmReleaseFailed" && m.contains("Flux stopped retrying")
        })
    })
    .await;
    assert!(
        message.contains("(RetriesExceeded: Failed to install after 2 attempt(s))"),
        "{message}"
    );
    for name in ["held", "valued", "waits", "drifts"] {
        eventually(&format!("{name} Ready"), 180, &env, || async {
            env.has_condition(name, "Ready", "True", "HelmReleaseReady")
                .await
                .then_some(())
        })
        .await;
    }
    eventually("notes for the first commit", 60, &env, || async {
        (env.has_note(&commit, "broken", "Failed") && env.has_note(&commit, "fails", "Failed"))
            .then_some(())
    })
    .await;

    // A dependency someone added (`dependsOn`, which the operator never renders) that is not there: a wait.
    patch_helm_release(
        &env,
        "waits",
        json!({"spec": {"dependsOn": [{"name": "absent"}]}}),
    );
    let (_, _, message) = eventually("waits: DependencyNotReady", 120, &env, || async {
        env.condition("waits", "Ready")
            .await
            .filter(|(s, r, _)| s == "False" && r == "DependencyNotReady")
    })
    .await;
    assert!(message.contains("absent"), "{message}");
    patch_helm_release(&env, "waits", json!({"spec": {"dependsOn": null}}));
    eventually("waits Ready again", 120, &env, || async {
        env.has_condition("waits", "Ready", "True", "HelmReleaseReady")
            .await
            .then_some(())
    })
    .await;

    // `flux suspend helmrelease held`, then a commit upgrades it and points valued at a Secret that does not exist.
    patch_helm_release(&env, "held", json!({"spec": {"suspend": true}}));
    let second = env.push(
        "held to 1.1.0; valued from a missing Secret",
        &[
            ("applicationinstance-held.yaml", &held_2),
            ("applicationinstance-valued.yaml", &valued_missing),
        ],
        Some(&env.alice),
    );
    env.nudge_flux();
    let (_, _, message) = eventually("held: HelmReleaseSuspended", 180, &env, || async {
        env.condition("held", "Ready")
            .await
            .filter(|(s, r, _)| s == "False" && r == "HelmReleaseSuspended")
    })
    .await;
    assert!(
        message.contains(&format!("flux resume helmrelease -n {} held", env.ns)),
        "{message}"
    );
    // Values helm-controller cannot compose: failed before any Helm action; what runs is unchanged, not
    // Degraded; noted Failed on the commit that brought them.
    let (_, _, message) = eventually("valued: ValuesError", 180, &env, || async {
        env.condition("valued", "Ready").await.filter(|(s, r, m)| {
            s == "False" && r == "HelmReleaseFailed" && m.contains("ValuesError")
        })
    })
    .await;
    assert!(message.contains("no Helm action ran"), "{message}");
    assert!(
        env.has_condition("valued", "Degraded", "False", "Recovered")
            .await
    );
    assert_eq!(
        env.installed("valued").await.unwrap()["greeting"],
        "from a Secret"
    );
    eventually("valued noted Failed", 60, &env, || async {
        env.has_note(&second, "valued", "Failed").then_some(())
    })
    .await;
    // Flux applied the second commit before or while the operator fetched it (its fetch interval is an hour):
    // the intents waited for the view, and nothing was ever Blocked.
    assert!(
        !env.notes(&second).iter().any(|r| r["outcome"] == "Blocked"),
        "{:?}",
        env.notes(&second)
    );
    // Waiting states are no outcome: neither the dependency nor the suspension was noted.
    assert!(
        !env.notes(&commit)
            .iter()
            .any(|r| r["name"] == "waits" && r["outcome"] != "Ready")
    );
    assert!(!env.notes(&second).iter().any(|r| r["name"] == "held"));
    patch_helm_release(&env, "held", json!({"spec": {"suspend": false}}));
    eventually("held Ready at 1.1.0 once resumed", 180, &env, || async {
        let installed = env.installed("held").await?;
        (env.has_condition("held", "Ready", "True", "HelmReleaseReady")
            .await
            && installed["chartVersion"].as_str()?.starts_with("1.1.0+"))
        .then_some(())
    })
    .await;

    // The gauges know what Flux applied (from the watch of its Kustomization): the view and Flux agree.
    eventually("view_differs_from_flux 0", 120, &env, || async {
        (env.metric("vworkspace_operator_view_differs_from_flux")
            .await?
            == 0.0)
            .then_some(())
    })
    .await;

    // Drift detection someone turned on in `warn` mode finds a hand edit of what the release installed:
    // Degraded=True/Drifted, still Ready (the release runs).
    patch_helm_release(
        &env,
        "drifts",
        json!({"spec": {"driftDetection": {"mode": "warn"}}}),
    );
    eventually(
        "helm-controller observed the drift detection",
        120,
        &env,
        || async {
            let hr = env.helm_release("drifts").await?;
            (hr["status"]["observedGeneration"] == hr["metadata"]["generation"]).then_some(())
        },
    )
    .await;
    kubectl_ok(&[
        "patch",
        "-n",
        &env.ns,
        "configmap",
        "drifts-values",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"edited by hand"}}"#,
    ]);
    request_reconcile(&env.ns, "helmrelease", "drifts");
    let (_, _, message) = eventually("drifts: Degraded=True/Drifted", 120, &env, || async {
        env.condition("drifts", "Degraded")
            .await
            .filter(|(s, r, _)| s == "True" && r == "Drifted")
    })
    .await;
    assert!(message.contains("has drifted"), "{message}");
    assert!(
        env.has_condition("drifts", "Ready", "True", "HelmReleaseReady")
            .await
    );
}

/// Bench (ignored by `cargo test`; run with `cargo test --test e2e commit_to_ready -- --ignored --nocapture`):
/// commit pushed → intent Ready on the real Flux stack, 20 signed commits each changing one intent's values, the
/// operator at its default `--fetch-interval` (30 s, so it must not be what it waits for). Flux is asked to look
/// at once after each push, as a Flux notification Receiver (a git host's webhook) would. Prints per stage the
/// median and the worst, and what the operator adds: from Flux's Kustomization having applied the commit to the
/// HelmRelease carrying it, plus from the HelmRelease being Ready to the intent being Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bench: prints a table"]
async fn commit_to_ready_latency_bench() {
    use std::time::Instant;
    let mut env = env("latency").await;
    let ns_yaml = env.namespace_yaml();
    let app = |env: &Env, greeting: &str| {
        env.app_yaml(
            "timed",
            "helm",
            "1.0.0",
            &format!("{{source: inline, inline: {{greeting: {greeting}}}}}"),
        )
    };
    let first = app(&env, "g0");
    env.push(
        "intents: timed",
        &[
            ("namespace.yaml", &ns_yaml),
            ("applicationinstance-timed.yaml", &first),
        ],
        Some(&env.alice),
    );
    let settings = env.install_flux_objects(false);
    env.fetch_interval = "30s";
    env.start_operator(&settings, None);
    eventually("timed Ready", 240, &env, || async {
        env.has_condition("timed", "Ready", "True", "HelmReleaseReady")
            .await
            .then_some(())
    })
    .await;
    const STAGES: [&str; 6] = [
        "GitRepository artifact",
        "Kustomization applied",
        "operator verdict (intentCommit)",
        "HelmRelease applied",
        "HelmRelease Ready",
        "intent Ready",
    ];
    let mut runs: Vec<[f64; 6]> = Vec::new();
    for round in 1..=20 {
        let greeting = format!("g{round}");
        let yaml = app(&env, &greeting);
        let commit = env.push(
            &format!("timed: {greeting}"),
            &[("applicationinstance-timed.yaml", &yaml)],
            Some(&env.alice),
        );
        let pushed = Instant::now();
        env.nudge_flux();
        let mut at: [Option<f64>; 6] = [None; 6];
        while at.iter().any(Option::is_none) {
            assert!(pushed.elapsed().as_secs() < 300, "round {round}: {at:?}");
            let now = pushed.elapsed().as_secs_f64();
            let git = env
                .object(
                    "source.toolkit.fluxcd.io/v1",
                    "GitRepository",
                    SYSTEM_NS,
                    &env.cluster,
                )
                .await
                .unwrap_or_default();
            let ks = env
                .object(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    SYSTEM_NS,
                    &env.cluster,
                )
                .await
                .unwrap_or_default();
            let intent = env
                .object(
                    "apps.vworkspace.io/v1alpha1",
                    "ApplicationInstance",
                    &env.ns,
                    "timed",
                )
                .await
                .unwrap_or_default();
            let hr = env.helm_release("timed").await.unwrap_or_default();
            let ends = |v: &Value| v.as_str().is_some_and(|r| r.ends_with(&commit));
            let hr_carries =
                hr["metadata"]["annotations"]["app.vworkspace.io/intent-commit"] == commit.as_str();
            let hr_ready = hr_carries
                && hr["status"]["observedGeneration"] == hr["metadata"]["generation"]
                && testbed::condition(&hr, "Ready").is_some_and(|(s, _, _)| s == "True");
            let intent_ready = intent["status"]["intentCommit"] == commit.as_str()
                && testbed::condition(&intent, "Ready")
                    .is_some_and(|(s, r, _)| s == "True" && r == "HelmReleaseReady")
                && env
                    .installed("timed")
                    .await
                    .is_some_and(|cm| cm["greeting"] == greeting.as_str());
            let reached = [
                ends(&git["status"]["artifact"]["revision"]),
                ends(&ks["status"]["lastAppliedRevision"]),
                intent["status"]["intentCommit"] == commit.as_str(),
                hr_carries,
                hr_ready,
                intent_ready,
            ];
            for (slot, done) in at.iter_mut().zip(reached) {
                if done && slot.is_none() {
                    *slot = Some(now);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        runs.push(at.map(Option::unwrap));
    }
    let stat = |f: &dyn Fn(&[f64; 6]) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    println!(
        "\ncommit pushed → … ({} commits; seconds after the push; polled every 50 ms)",
        runs.len()
    );
    println!("| stage | median | worst |\n|---|---|---|");
    for (i, stage) in STAGES.iter().enumerate() {
        let (median, worst) = stat(&|r| r[i]);
        println!("| {stage} | {median:.2} | {worst:.2} |");
    }
    let (median, worst) = stat(&|r| (r[3] - r[1]).max(0.0) + (r[5] - r[4]).max(0.0));
    println!(
        "| operator adds (HelmRelease applied − Kustomization applied) + (intent Ready − HelmRelease Ready) | {median:.2} | {worst:.2} |"
    );
}

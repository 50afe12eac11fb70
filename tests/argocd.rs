//! The Argo CD engine (`--engine argocd`) against a real kube-apiserver carrying Argo CD's own CRDs (from the
//! pinned module, testbed/go/crds): a real git remote with ssh-signed commits, the operator rendering an
//! Application and its AppProject, the notes on the intent commits. Argo CD's application-controller cannot be
//! built here (CONTRIBUTING.md, "Argo CD"): the tests play it by writing the status it writes, and say so.

mod support;

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::gitfix::{GitRemote, Signer};
use support::testbed;
use vworkspace_operator::api::{ApplicationInstance, Cluster};
use vworkspace_operator::controller::run::Operator;
use vworkspace_operator::render::HelmEngine;

const ARGO: &str = "argoproj.io/v1alpha1";

/// One test's world: a tenant namespace, Argo CD's namespace, a signed cluster repo.
struct World {
    tmp: tempfile::TempDir,
    client: Client,
    remote: GitRemote,
    signer: Signer,
    cluster: String,
    ns: String,
    argocd: String,
}

async fn world(name: &str) -> World {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let client = testbed::client().await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&client, &crds).await;
    let (ns, argocd) = (format!("t-{name}"), format!("argocd-{name}"));
    testbed::namespace(&client, &ns, true).await;
    testbed::namespace(&client, &argocd, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let (remote, signer) = support::operator::signed_repo(tmp.path());
    World {
        tmp,
        client,
        remote,
        signer,
        cluster: format!("c-{name}"),
        ns,
        argocd,
    }
}

impl World {
    async fn start(&self) -> Operator {
        self.start_with(Vec::new()).await
    }

    /// The operator, allowing these chart hosts although internal (the test bed's loopback registry).
    async fn start_with(&self, allowed_chart_hosts: Vec<String>) -> Operator {
        let mut config = support::operator::gitops_config(
            self.tmp.path(),
            &self.remote,
            &self.signer,
            &self.cluster,
        );
        config.settings.allowed_chart_hosts = allowed_chart_hosts;
        config.settings.helm_engine = HelmEngine::parse("argocd", &self.argocd).unwrap();
        Operator::start(self.client.clone(), config).await.unwrap()
    }

    /// An instance of the Nextcloud chart from an OCI registry at `version`.
    fn app_yaml(&self, name: &str, version: &str) -> String {
        format!(
            r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
  annotations:
    ops.vworkspace.io/upgrade: helm
spec:
  appRef: {{catalogId: nextcloud}}
  chart: {{sourceType: oci, url: "oci://registry.example/charts", name: nextcloud, version: {version}}}
  release: {{name: {name}, namespace: {ns}}}
  values: {{source: inline, inline: {{replicaCount: 1}}}}
  integrations: {{ingress: {{enabled: true, host: cloud.example.com}}}}
"#,
            ns = self.ns,
            cluster = self.cluster
        )
    }

    /// Commit a signed manifest and apply it as Flux's kustomize-controller would; the commit.
    async fn publish(&self, operator: &Operator, name: &str, yaml: &str) -> String {
        let value: Value = serde_saphyr::from_str(yaml).unwrap();
        let kind = value["kind"].as_str().unwrap();
        let file = format!(
            "clusters/{}/namespaces/{}/{}-{name}.yaml",
            self.cluster,
            self.ns,
            kind.to_lowercase()
        );
        self.remote.write(&file, yaml);
        let commit = self.remote.commit(
            &format!("publish {name}"),
            Some(&self.signer),
            &self.signer.email,
        );
        operator.sync_now().await;
        self.api(&value["apiVersion"], kind, &self.ns)
            .await
            .patch(
                name,
                &PatchParams::apply("kustomize-controller").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap();
        commit
    }

    async fn api(&self, api_version: &Value, kind: &str, ns: &str) -> Api<DynamicObject> {
        let probe = json!({"apiVersion": api_version, "kind": kind});
        let ar = testbed::api_resource(&self.client, &probe).await;
        Api::namespaced_with(self.client.clone(), ns, &ar)
    }

    async fn application(&self, name: &str) -> Option<Value> {
        testbed::get(&self.client, ARGO, "Application", &self.ns, name).await
    }

    async fn project(&self, name: &str) -> Option<Value> {
        let project = format!("{}.{name}", self.ns);
        testbed::get(&self.client, ARGO, "AppProject", &self.argocd, &project).await
    }

    async fn app(&self, name: &str) -> Option<ApplicationInstance> {
        Api::<ApplicationInstance>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn cond(&self, name: &str, type_: &str) -> Option<(String, String)> {
        let app = self.app(name).await?;
        let c = app
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status, c.reason))
    }

    /// Play Argo CD's application-controller: the status it writes after comparing and syncing `revision`
    /// (`op`: the last sync's phase and message), with the revisions of its successful syncs.
    async fn argo_status(
        &self,
        name: &str,
        revision: &str,
        sync: &str,
        health: &str,
        op: (&str, &str),
        history: &[&str],
    ) {
        let source = self.application(name).await.unwrap()["spec"]["source"].clone();
        assert_eq!(
            source["targetRevision"], revision,
            "the spec is at {revision}"
        );
        let status = json!({
            "sync": {"status": sync, "revision": revision,
                     "comparedTo": {"source": source, "destination": {"server": "https://kubernetes.default.svc", "namespace": self.ns}}},
            "health": {"status": health},
            "sourceType": "Helm",
            "reconciledAt": "2026-12-06T00:00:00Z",
            "operationState": {"phase": op.0, "message": op.1, "startedAt": "2026-12-06T00:00:00Z",
                "operation": {"sync": {"revision": revision}},
                "syncResult": {"revision": revision, "source": source}},
            "history": history.iter().enumerate().map(|(i, r)| json!({
                "id": i, "revision": r, "deployStartedAt": "2026-12-06T00:00:00Z",
                "deployedAt": "2026-12-06T00:00:00Z", "source": {"repoURL": source["repoURL"], "targetRevision": r}})).collect::<Vec<_>>(),
        });
        // Argo CD's Application has no status subresource: the controller patches the object. Strict: Argo
        // CD's own schema must take this status as written.
        self.api(&json!(ARGO), "Application", &self.ns)
            .await
            .patch(
                name,
                &PatchParams::default().validation_strict(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }

    /// Ready through the engine, with the chart's ConfigMap at `version` (the test chart's `<release>-values`).
    async fn ready_at(&self, name: &str, version: &str) -> Option<()> {
        let cm = testbed::get(
            &self.client,
            "v1",
            "ConfigMap",
            &self.ns,
            &format!("{name}-values"),
        )
        .await?;
        (self.cond(name, "Ready").await == s("True", "HelmReleaseReady")
            && cm["data"]["chartVersion"] == version)
            .then_some(())
    }

    fn note(&self, commit: &str) -> Option<Value> {
        let notes_ref = format!("vworkspace/{}", self.cluster);
        let text = self.remote.try_git(
            &self.remote.bare,
            &["notes", "--ref", &notes_ref, "show", commit],
        )?;
        serde_json::from_str(text.lines().last()?).ok()
    }
}

/// Poll until `check` returns Some, or fail after 60 s with `what` (the test bed's poll).
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    support::stack::eventually(what, 60, String::new, check).await
}

fn s(a: &str, b: &str) -> Option<(String, String)> {
    Some((a.to_string(), b.to_string()))
}

#[tokio::test]
async fn an_instance_runs_through_argocd_then_upgrades_fails_without_rollback_and_is_removed() {
    let w = world("argo").await;
    let operator = w.start().await;
    let v1 = w.publish(&operator, "nc", &w.app_yaml("nc", "1.0.0")).await;

    // The Application in the tenant's namespace, owned by the instance; its AppProject in Argo CD's namespace,
    // scoped to the tenant, mapped back by label (no owner reference across namespaces).
    let application = eventually("Application applied", || w.application("nc")).await;
    let spec = &application["spec"];
    assert_eq!(spec["project"], format!("{}.nc", w.ns));
    assert_eq!(
        spec["source"]["repoURL"],
        "oci://registry.example/charts/nextcloud"
    );
    assert_eq!(spec["source"]["targetRevision"], "1.0.0");
    assert_eq!(spec["source"]["helm"]["valuesObject"]["replicaCount"], 1);
    assert_eq!(
        spec["source"]["helm"]["valuesObject"]["nextcloud"]["host"], "cloud.example.com",
        "the catalog's integration values reach the Application: {spec}"
    );
    assert_eq!(spec["destination"]["namespace"], w.ns.as_str());
    assert_eq!(
        application["metadata"]["finalizers"],
        json!(["resources-finalizer.argocd.argoproj.io"])
    );
    assert_eq!(
        application["metadata"]["ownerReferences"][0]["kind"],
        "ApplicationInstance"
    );
    assert_eq!(
        application["metadata"]["annotations"]["app.vworkspace.io/intent-commit"],
        v1.as_str()
    );
    let project = eventually("AppProject applied", || w.project("nc")).await;
    assert!(project["metadata"]["ownerReferences"].is_null());
    assert_eq!(
        project["metadata"]["labels"]["app.vworkspace.io/application-instance-namespace"],
        w.ns.as_str()
    );
    assert_eq!(project["spec"]["sourceNamespaces"], json!([w.ns]));
    assert_eq!(
        project["spec"]["sourceRepos"],
        json!(["oci://registry.example/charts/nextcloud"])
    );
    assert_eq!(project["spec"]["clusterResourceWhitelist"], json!([]));

    // Not yet compared: waiting, never Ready.
    eventually("Reconciling while Argo CD has not reported", || async {
        (w.cond("nc", "Ready").await == s("Unknown", "Reconciling")).then_some(())
    })
    .await;
    // Argo CD (played) syncs 1.0.0: Synced, Healthy.
    w.argo_status(
        "nc",
        "1.0.0",
        "Synced",
        "Healthy",
        ("Succeeded", "successfully synced"),
        &["1.0.0"],
    )
    .await;
    eventually("Ready through Argo CD", || async {
        (w.cond("nc", "Ready").await == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let note = eventually("a note on the intent commit", || async { w.note(&v1) }).await;
    assert_eq!(note["outcome"], "Ready");
    assert_eq!(note["childRefs"]["application"], format!("{}/nc", w.ns));
    assert_eq!(note["childRefs"]["chartVersion"], "1.0.0");
    // The Cluster says which engine runs, and looks for its CRD.
    let cluster = eventually("Cluster status", || async {
        let c = Api::<Cluster>::all(w.client.clone())
            .get_opt(&w.cluster)
            .await
            .unwrap()?;
        c.status.filter(|s| s.helm_engine.is_some())
    })
    .await;
    assert_eq!(cluster.helm_engine.as_deref(), Some("argocd"));
    assert_eq!(
        (
            cluster.controllers[0].name.as_str(),
            cluster.controllers[0].installed
        ),
        ("argocd", true)
    );

    // Upgrade to 1.1.0: the Application's target revision moves; until Argo CD compared it, the old Ready
    // does not speak for it.
    let v2 = w.publish(&operator, "nc", &w.app_yaml("nc", "1.1.0")).await;
    eventually("Application at 1.1.0", || async {
        let a = w.application("nc").await?;
        (a["spec"]["source"]["targetRevision"] == "1.1.0").then_some(())
    })
    .await;
    eventually("upgrading", || async {
        (w.cond("nc", "Reconciling").await == s("True", "HelmReleaseUpgrading")).then_some(())
    })
    .await;
    assert_ne!(w.cond("nc", "Ready").await, s("True", "HelmReleaseReady"));
    // The sync fails (played): Argo CD does not roll back, so the instance is not Ready and Degraded.
    w.argo_status(
        "nc",
        "1.1.0",
        "OutOfSync",
        "Healthy",
        (
            "Failed",
            "one or more objects failed to apply, reason: Deployment.apps \"nc\" is invalid",
        ),
        &["1.0.0"],
    )
    .await;
    eventually("failed upgrade: not Ready, Degraded", || async {
        (w.cond("nc", "Ready").await == s("False", "HelmReleaseFailed")
            && w.cond("nc", "Degraded").await == s("True", "UpgradeFailed"))
        .then_some(())
    })
    .await;
    let note = eventually("a note on the upgrade commit", || async { w.note(&v2) }).await;
    assert_eq!(note["outcome"], "Degraded");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("not rolled back"),
        "{note}"
    );

    // Removal: the Application goes first (Argo CD's resources finalizer holds it while it uninstalls, played
    // here), the AppProject once the Application is gone, then the instance.
    Api::<ApplicationInstance>::namespaced(w.client.clone(), &w.ns)
        .delete("nc", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Deleting while Argo CD uninstalls", || async {
        let a = w.application("nc").await?;
        (w.cond("nc", "Deleting").await == s("True", "WaitingForChildResources")
            && a["metadata"]["deletionTimestamp"].is_string())
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        w.project("nc").await.is_some(),
        "the AppProject went before its Application"
    );
    assert!(w.app("nc").await.is_some());
    w.api(&json!(ARGO), "Application", &w.ns)
        .await
        .patch(
            "nc",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually("everything gone", || async {
        (w.application("nc").await.is_none()
            && w.project("nc").await.is_none()
            && w.app("nc").await.is_none())
        .then_some(())
    })
    .await;
    operator.stop().await;
}

/// An `upgrade.helm` Operation on the Argo CD engine: the instance's Application moves to the target version
/// with the values patch (the Operation writes nothing itself), and the Operation follows the Application to
/// Succeeded once Argo CD (played) has synced it, healthy, at that version.
#[tokio::test]
async fn an_upgrade_operation_moves_the_application_and_follows_it_to_its_outcome() {
    let w = world("argo-op").await;
    let operator = w.start().await;
    w.publish(&operator, "nc", &w.app_yaml("nc", "1.0.0")).await;
    eventually("Application applied", || w.application("nc")).await;
    w.argo_status(
        "nc",
        "1.0.0",
        "Synced",
        "Healthy",
        ("Succeeded", "ok"),
        &["1.0.0"],
    )
    .await;
    eventually("Ready", || async {
        (w.cond("nc", "Ready").await == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let op = format!(
        r#"apiVersion: ops.vworkspace.io/v1alpha1
kind: Operation
metadata:
  name: up
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
spec:
  targetRef: {{apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: nc}}
  type: Upgrade
  engine: helm
  parameters: {{targetVersion: 1.2.0, valuesPatch: {{replicaCount: 3}}}}
"#,
        ns = w.ns,
        cluster = w.cluster
    );
    w.publish(&operator, "up", &op).await;
    let application = eventually("the Application at 1.2.0", || async {
        let a = w.application("nc").await?;
        (a["spec"]["source"]["targetRevision"] == "1.2.0").then_some(a)
    })
    .await;
    assert_eq!(
        application["spec"]["source"]["helm"]["valuesObject"]["replicaCount"],
        3
    );
    let phase = |op: Option<vworkspace_operator::api::Operation>| {
        op.and_then(|o| o.status?.phase)
            .map(|p| p.as_str().to_string())
    };
    let ops = Api::<vworkspace_operator::api::Operation>::namespaced(w.client.clone(), &w.ns);
    eventually("Running while Argo CD has not compared 1.2.0", || async {
        let op = ops.get_opt("up").await.unwrap();
        let status = op.as_ref().and_then(|o| o.status.clone());
        (phase(op).as_deref() == Some("Running")
            && status
                .and_then(|s| s.engine_ref)
                .is_some_and(|r| r.kind == "Application"))
        .then_some(())
    })
    .await;
    w.argo_status(
        "nc",
        "1.2.0",
        "Synced",
        "Healthy",
        ("Succeeded", "ok"),
        &["1.0.0", "1.2.0"],
    )
    .await;
    eventually("the Operation Succeeded", || async {
        (phase(ops.get_opt("up").await.unwrap()).as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    operator.stop().await;
}

/// What `render` shows for review is what the API server takes: every object the Argo CD engine renders
/// (OCI and Helm repository charts, with integrations) passes Argo CD's real CRD schemas with strict field
/// validation (a server-side dry run), and an intent whose values come from a Secret is refused by name.
#[tokio::test]
async fn rendered_applications_and_projects_pass_argo_cds_own_schemas_strictly() {
    let w = world("argo-schema").await;
    let renderer = vworkspace_operator::render::renderer(None, Some(&w.cluster), "velero")
        .unwrap()
        .with_helm_engine(HelmEngine::parse("argocd", &w.argocd).unwrap());
    let mut checked = 0;
    for (source_type, url) in [
        ("oci", "oci://registry.example/charts"),
        ("helm", "https://charts.example.com"),
    ] {
        let yaml = w
            .app_yaml("wiki", "2.0.0")
            .replace("sourceType: oci", &format!("sourceType: {source_type}"))
            .replace("oci://registry.example/charts", url);
        let app: ApplicationInstance = serde_saphyr::from_str(&yaml).unwrap();
        for obj in renderer.render_application(&app).unwrap() {
            let ns = obj["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            w.api(&obj["apiVersion"], obj["kind"].as_str().unwrap(), &ns)
                .await
                .patch(
                    &name,
                    &PatchParams::apply("render-check")
                        .dry_run()
                        .validation_strict(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap_or_else(|e| panic!("{} {ns}/{name} refused: {e}", obj["kind"]));
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    let secret = w.app_yaml("wiki", "2.0.0").replace(
        "values: {source: inline, inline: {replicaCount: 1}}",
        "values: {source: secretRef, secretRef: {name: wiki-values, key: values.yaml}}",
    );
    let app: ApplicationInstance = serde_saphyr::from_str(&secret).unwrap();
    let err = renderer.render_application(&app).unwrap_err();
    assert_eq!(err.field(), "spec.values.source");
}

/// Argo CD's application-controller and repo-server, for real: built from their module by the test bed
/// (`testbed.sh bin argocd`, on demand), out of cluster with a Redis of the test bed's (miniredis), and the
/// garbage collector of kube-controller-manager. The
/// controller runs with in-cluster configuration (`KUBERNETES_SERVICE_HOST`, and the API server's token and CA
/// at the service-account path, in a private mount namespace) because the Applications the operator renders name
/// the local cluster as `https://kubernetes.default.svc`, which Argo CD resolves only from in-cluster config.
struct RealArgo {
    procs: testbed::Procs,
}

impl RealArgo {
    async fn start(w: &World, ca: &std::path::Path) -> Self {
        let (argocd, redis, helm) = (
            testbed::bin("argocd"),
            testbed::bin("testbed-redis"),
            testbed::bin("helm"),
        );
        let part_of = json!({"app.kubernetes.io/part-of": "argocd"});
        for (kind, name, data) in [
            ("ConfigMap", "argocd-cm", json!({})),
            ("ConfigMap", "argocd-rbac-cm", json!({})),
            (
                "ConfigMap",
                "argocd-cmd-params-cm",
                json!({"application.namespaces": w.ns}),
            ),
            ("ConfigMap", "argocd-tls-certs-cm", json!({})),
            ("ConfigMap", "argocd-ssh-known-hosts-cm", json!({})),
            ("ConfigMap", "argocd-gpg-keys-cm", json!({})),
            (
                "Secret",
                "argocd-secret",
                json!({"server.secretkey": "dGVzdGJlZA=="}),
            ),
        ] {
            let obj = json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "namespace": w.argocd, "labels": part_of}, "data": data});
            testbed::apply(&w.client, &obj).await.unwrap();
        }
        let procs = testbed::Procs::new("vwo-argocd-");
        let dir = procs.dir().to_path_buf();
        let port = testbed::free_port;
        let (redis_addr, repo_addr) = (
            format!("127.0.0.1:{}", port()),
            format!("127.0.0.1:{}", port()),
        );
        procs.spawn(
            "redis",
            std::process::Command::new(redis)
                .arg("-listen")
                .arg(&redis_addr),
        );
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            helm.parent().unwrap().display()
        );
        for d in ["home", "tmp", "sa"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let repo_port = repo_addr.rsplit(':').next().unwrap().to_string();
        procs.spawn(
            "repo-server",
            std::process::Command::new(&argocd)
                .env("ARGOCD_BINARY_NAME", "argocd-repo-server")
                .env("PATH", &path)
                .env("HOME", dir.join("home"))
                .env("TMPDIR", dir.join("tmp"))
                .env("SSL_CERT_FILE", ca)
                .env("ARGOCD_GPG_ENABLED", "false")
                .args([
                    "--address",
                    "127.0.0.1",
                    "--port",
                    &repo_port,
                    "--disable-tls",
                ])
                .args([
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-port",
                    &port().to_string(),
                ])
                .args(["--redis", &redis_addr, "--loglevel", "info"]),
        );
        // In-cluster configuration: the API server's admin token and its certificate (which carries its CA and
        // names kubernetes.default.svc and 127.0.0.1) where client-go looks for a service account's.
        let server = testbed::server();
        let certs = server
            .procs
            .as_ref()
            .expect("the test bed's own API server")
            .dir()
            .join("certs");
        std::fs::write(dir.join("sa/token"), &server.token).unwrap();
        std::fs::copy(certs.join("apiserver.crt"), dir.join("sa/ca.crt")).unwrap();
        std::fs::write(dir.join("sa/namespace"), &w.argocd).unwrap();
        let api_port = server.url.rsplit(':').next().unwrap().to_string();
        // The garbage collector (kube-controller-manager's): Argo CD's resources finalizer deletes with foreground
        // propagation, which only the garbage collector completes.
        let kubeconfig = server.kubeconfig.display().to_string();
        procs.spawn(
            "garbage-collector",
            std::process::Command::new(testbed::bin("kube-controller-manager"))
                .arg(format!("--kubeconfig={kubeconfig}"))
                .arg(format!("--authentication-kubeconfig={kubeconfig}"))
                .arg(format!("--authorization-kubeconfig={kubeconfig}"))
                .args([
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    "--controllers=garbagecollector",
                ])
                .arg(format!("--secure-port={}", port()))
                .arg(format!("--cert-dir={}", dir.join("kcm").display())),
        );
        let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && \
                      cp \"$SA\"/* /run/secrets/kubernetes.io/serviceaccount/ && exec \"$ARGOCD\" \"$@\"";
        procs.spawn(
            "application-controller",
            std::process::Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "argocd",
                ])
                .env("SA", dir.join("sa"))
                .env("ARGOCD", &argocd)
                .env("ARGOCD_BINARY_NAME", "argocd-application-controller")
                .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
                .env("KUBERNETES_SERVICE_PORT", &api_port)
                .env("HOME", dir.join("home"))
                .env("TMPDIR", dir.join("tmp"))
                .args(["--namespace", &w.argocd, "--application-namespaces", &w.ns])
                .args([
                    "--redis",
                    &redis_addr,
                    "--repo-server",
                    &repo_addr,
                    "--repo-server-plaintext",
                ])
                .args([
                    "--metrics-port",
                    &port().to_string(),
                    "--app-resync",
                    "10",
                    "--loglevel",
                    "info",
                ]),
        );
        Self { procs }
    }

    fn logs(&self) -> String {
        format!(
            "application-controller:\n{}\nrepo-server:\n{}",
            self.procs.log_tail("application-controller", 30),
            self.procs.log_tail("repo-server", 30)
        )
    }
}

/// The same story as the played test, on the real Argo CD: install from the loopback OCI registry (Argo CD's
/// native OCI source, as the operator renders it), Ready, note; upgrade; an upgrade to a chart version that fails
/// to apply (Degraded, not rolled back); removal (Argo CD uninstalls, then the project goes).
#[tokio::test]
#[ignore = "builds Argo CD from its module (about 7 CPU-minutes, cached): cargo test --test argocd -- --ignored"]
async fn the_real_argocd_installs_upgrades_fails_and_uninstalls_an_instance() {
    let stack = support::stack::stack();
    let w = world("argo-real").await;
    let argo = RealArgo::start(&w, &stack.ca).await;
    let operator = w.start_with(vec!["127.0.0.1".into()]).await;
    let yaml = |version: &str| {
        format!(
            r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: wiki
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
spec:
  appRef: {{catalogId: vwo-test}}
  chart: {{sourceType: oci, url: "{url}", name: vwo-test, version: {version}}}
  release: {{name: wiki, namespace: {ns}}}
  values: {{source: inline, inline: {{greeting: hello-from-argocd}}}}
"#,
            ns = w.ns,
            cluster = w.cluster,
            url = stack.oci_url
        )
    };
    let v1 = w.publish(&operator, "wiki", &yaml("1.0.0")).await;
    support::stack::eventually(
        "Ready at 1.0.0 through the real Argo CD",
        240,
        || argo.logs(),
        || w.ready_at("wiki", "1.0.0"),
    )
    .await;
    let cm = testbed::get(&w.client, "v1", "ConfigMap", &w.ns, "wiki-values")
        .await
        .unwrap();
    assert_eq!(cm["data"]["greeting"], "hello-from-argocd");
    let note = eventually("a Ready note", || async { w.note(&v1) }).await;
    assert_eq!(note["outcome"], "Ready");

    let v2 = w.publish(&operator, "wiki", &yaml("1.1.0")).await;
    support::stack::eventually(
        "Ready at 1.1.0",
        240,
        || argo.logs(),
        || w.ready_at("wiki", "1.1.0"),
    )
    .await;
    let note = eventually("a Ready note on the upgrade", || async { w.note(&v2) }).await;
    assert_eq!(note["outcome"], "Ready");

    // 2.0.0 fails to apply (an invalid ConfigMap name): Argo CD retries once, then gives up; nothing rolls back.
    let v3 = w.publish(&operator, "wiki", &yaml("2.0.0")).await;
    support::stack::eventually(
        "failed upgrade: not Ready, Degraded",
        300,
        || argo.logs(),
        || async {
            (w.cond("wiki", "Ready").await == s("False", "HelmReleaseFailed")
                && w.cond("wiki", "Degraded").await == s("True", "UpgradeFailed"))
            .then_some(())
        },
    )
    .await;
    let note = eventually("a Degraded note", || async { w.note(&v3) }).await;
    assert_eq!(note["outcome"], "Degraded");

    Api::<ApplicationInstance>::namespaced(w.client.clone(), &w.ns)
        .delete("wiki", &DeleteParams::default())
        .await
        .unwrap();
    support::stack::eventually(
        "uninstalled and gone",
        240,
        || argo.logs(),
        || async {
            let cm = testbed::get(&w.client, "v1", "ConfigMap", &w.ns, "wiki-values").await;
            (cm.is_none()
                && w.application("wiki").await.is_none()
                && w.project("wiki").await.is_none()
                && w.app("wiki").await.is_none())
            .then_some(())
        },
    )
    .await;
    operator.stop().await;
}

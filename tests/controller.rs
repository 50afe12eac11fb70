//! The operator against a real kube-apiserver (the test bed, testbed/), a real git remote with ssh-signed
//! commits, and a real HTTP receiver for the control-plane event post. The tests play Flux's helm-controller
//! and the engines by writing the status they would write; everything else is real.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::receiver::Receiver;
use support::testbed;
use vworkspace_operator::api::{
    APP_FINALIZER, ApplicationInstance, Cluster, OPERATION_FINALIZER, Operation,
};
use vworkspace_operator::controller::run::{LeaseSettings, Operator, OperatorConfig};
use vworkspace_operator::git::policy::TrustPolicy;
use vworkspace_operator::trace::cluster::StatusOptions;
use vworkspace_operator::trace::{self, OriginInfo, RepoOptions, Target};

const APPROVAL_KEY: &[u8] = b"test-approval-secret";

struct Env {
    tmp: tempfile::TempDir,
    client: Client,
    remote: GitRemote,
    signer: Signer,
    cluster: String,
    ns: String,
}

async fn env(name: &str) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let client = testbed::client().await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&client, &crds).await;
    let ns = format!("t-{name}");
    testbed::namespace(&client, &ns, true).await;
    testbed::namespace(&client, "velero", true).await;
    let tmp = tempfile::tempdir().unwrap();
    let (remote, signer) = support::operator::signed_repo(tmp.path());
    Env {
        tmp,
        client,
        remote,
        signer,
        cluster: format!("c-{name}"),
        ns,
    }
}

impl Env {
    /// The operator with its metrics and health endpoints on free ports, after one signed intent is published
    /// (the cluster path must exist: a path missing from the repo is a misconfiguration that blocks,
    /// `ClusterPathMissing`, never "nothing to run", so the source check would not pass).
    async fn start_with_admin(&self) -> Operator {
        self.publish(
            "applicationinstance-app.yaml",
            &self.app_yaml("app", "1.0.0", ""),
            true,
        );
        let mut config = self.config(None);
        config.admin = Some((
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ));
        Operator::start(self.client.clone(), config).await.unwrap()
    }

    /// `trace`'s target for an ApplicationInstance of this test.
    fn target(&self, name: &str) -> Target {
        Target::parse(&format!("ApplicationInstance/{}/{name}", self.ns)).unwrap()
    }

    /// The repo and trust policy `trace` reads.
    fn trace_repo(&self) -> RepoOptions {
        let policy = self.tmp.path().join("trace-policy.yaml");
        std::fs::write(&policy, policy_yaml(&[&self.signer], "range")).unwrap();
        RepoOptions {
            repo: Some(self.remote.bare.clone()),
            policy: Some(policy),
        }
    }

    /// A client with what a reader of the test namespace has: its intents, releases, sources and Events.
    async fn namespace_reader(&self) -> Client {
        let user = format!("system:serviceaccount:{}:reader", self.ns);
        let rules = json!([
            {"apiGroups": ["apps.vworkspace.io", "ops.vworkspace.io"], "resources": ["applicationinstances", "operations"], "verbs": ["get", "list"]},
            {"apiGroups": ["helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io"], "resources": ["helmreleases", "ocirepositories", "helmrepositories"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
        ]);
        for body in [
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "reader", "namespace": self.ns}, "rules": rules}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "reader", "namespace": self.ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "User", "name": user}]}),
        ] {
            let ar = testbed::api_resource(&self.client, &body).await;
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
            api.patch(
                "reader",
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
        }
        support::rbac::client_as(&user).await
    }

    fn config(&self, control_plane: Option<&Receiver>) -> OperatorConfig {
        let mut config = support::operator::gitops_config(
            self.tmp.path(),
            &self.remote,
            &self.signer,
            &self.cluster,
        );
        config.settings.approval_key = Some(APPROVAL_KEY.to_vec());
        config.control_plane = control_plane.map(|r| {
            let token = self.tmp.path().join("token");
            std::fs::write(&token, "test-token").unwrap();
            let mut pc = vworkspace_operator::report::events::PosterConfig::new(
                format!("http://{}", r.addr),
                token,
                &self.cluster,
            );
            pc.flush_interval = Duration::from_millis(200);
            pc.max_backoff = Duration::from_secs(1);
            pc
        });
        config
    }

    async fn start(&self, receiver: Option<&Receiver>) -> Operator {
        Operator::start(self.client.clone(), self.config(receiver))
            .await
            .unwrap()
    }

    fn app_yaml(&self, name: &str, version: &str, extra_annotations: &str) -> String {
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
    ops.vworkspace.io/backup: velero
    ops.vworkspace.io/restore: velero
    ops.vworkspace.io/upgrade: helm
    ops.vworkspace.io/runcommand: job
    ops.vworkspace.io/migration: helmHookJob
    ops.vworkspace.io/runbook: workflow
    ops.vworkspace.io/snapshot: snapshot
    ops.vworkspace.io/replicate: volsync
{extra_annotations}spec:
  appRef: {{catalogId: nextcloud}}
  chart: {{sourceType: oci, url: "oci://ghcr.io/nextcloud/helm", name: nextcloud, version: {version}}}
  release: {{name: {name}, namespace: {ns}}}
  values: {{source: inline, inline: {{replicaCount: 1}}}}
"#,
            ns = self.ns,
            cluster = self.cluster
        )
    }

    fn op_yaml(
        &self,
        name: &str,
        target: &str,
        type_: &str,
        engine: &str,
        params: &str,
        approvals: &str,
    ) -> String {
        format!(
            r#"apiVersion: ops.vworkspace.io/v1alpha1
kind: Operation
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
spec:
  targetRef: {{apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: {target}}}
  type: {type_}
  engine: {engine}
  parameters: {params}
{approvals}"#,
            ns = self.ns,
            cluster = self.cluster
        )
    }

    fn path(&self, file: &str) -> String {
        format!("clusters/{}/namespaces/{}/{file}", self.cluster, self.ns)
    }

    /// Commit a manifest (signed or not) and return the commit.
    fn publish(&self, file: &str, yaml: &str, signed: bool) -> String {
        self.remote.write(&self.path(file), yaml);
        self.remote.commit(
            &format!("publish {file}"),
            signed.then_some(&self.signer),
            &self.signer.email,
        )
    }

    /// Apply a manifest to the API server, as Flux's kustomize-controller would.
    async fn flux_apply(&self, yaml: &str) {
        let value: Value = serde_saphyr::from_str(yaml).unwrap();
        let ar = testbed::api_resource(&self.client, &value).await;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        api.patch(
            value["metadata"]["name"].as_str().unwrap(),
            &PatchParams::apply("kustomize-controller").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap();
    }

    async fn app(&self, name: &str) -> Option<ApplicationInstance> {
        Api::<ApplicationInstance>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn op(&self, name: &str) -> Option<Operation> {
        Api::<Operation>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn dynamic(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        testbed::get(&self.client, api_version, kind, ns, name).await
    }

    /// The HelmRelease of that name in the test namespace.
    async fn helm_release(&self, name: &str) -> Option<Value> {
        self.dynamic("helm.toolkit.fluxcd.io/v2", "HelmRelease", &self.ns, name)
            .await
    }

    /// The OCIRepository of that name in the test namespace.
    async fn oci_repository(&self, name: &str) -> Option<Value> {
        self.dynamic(
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            &self.ns,
            name,
        )
        .await
    }

    /// Write a child's status as its controller would (merge patch on the status subresource, or on the
    /// object for CRDs without one, like Velero's).
    async fn write_status(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        status: Value,
    ) {
        let probe = json!({"apiVersion": api_version, "kind": kind});
        let ar = testbed::api_resource(&self.client, &probe).await;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let patch = Patch::Merge(json!({"status": status}));
        match api
            .patch_status(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                api.patch(name, &PatchParams::default(), &patch)
                    .await
                    .unwrap();
            }
            Err(e) => panic!("status of {kind}/{name}: {e}"),
        }
    }

    /// Play helm-controller: the HelmRelease is Ready (or not) at a chart version, which is also the version
    /// it last attempted.
    async fn helm_controller(
        &self,
        name: &str,
        ready: &str,
        reason: &str,
        version: &str,
        remediated: bool,
    ) {
        self.flux_release(name, ready, reason, version, version, remediated)
            .await;
    }

    /// Play helm-controller: `deployed` is the chart version in the release history, `attempted` the version
    /// of the last attempt (Flux appends the OCI digest, as here). A remediated release is Ready=False with the
    /// reason RollbackSucceeded and Remediated=True, as helm-controller v1.6 writes it (tests/e2e.rs sees the
    /// real one).
    async fn flux_release(
        &self,
        name: &str,
        ready: &str,
        reason: &str,
        deployed: &str,
        attempted: &str,
        remediated: bool,
    ) {
        let version = deployed;
        let hr = self
            .dynamic("helm.toolkit.fluxcd.io/v2", "HelmRelease", &self.ns, name)
            .await
            .unwrap();
        let generation = hr["metadata"]["generation"].as_i64().unwrap();
        let mut conditions = vec![
            json!({"type": "Ready", "status": ready, "reason": reason, "message": format!("helm {reason}"),
            "lastTransitionTime": "2026-11-21T00:00:00Z", "observedGeneration": generation}),
        ];
        if remediated {
            conditions.push(json!({"type": "Remediated", "status": "True", "reason": "RollbackSucceeded", "message": "rolled back",
                "lastTransitionTime": "2026-11-21T00:00:00Z", "observedGeneration": generation}));
        }
        let status = json!({"observedGeneration": generation, "conditions": conditions,
            "lastAttemptedRevision": format!("{attempted}+0123456789ab"), "lastAttemptedGeneration": generation,
            "history": [{"chartName": "nextcloud", "chartVersion": version, "configDigest": "sha256:x", "digest": "sha256:y",
                "firstDeployed": "2026-11-21T00:00:00Z", "lastDeployed": "2026-11-21T00:00:00Z", "name": name,
                "namespace": self.ns, "status": "deployed", "version": 1}]});
        self.write_status(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            &self.ns,
            name,
            status,
        )
        .await;
    }

    /// The note on a commit in the remote, as plain git shows it.
    fn note(&self, commit: &str) -> Option<String> {
        let notes_ref = format!("vworkspace/{}", self.cluster);
        self.remote.try_git(
            &self.remote.bare,
            &["notes", "--ref", &notes_ref, "show", commit],
        )
    }
}

fn condition(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    conds
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn app_cond(app: &Option<ApplicationInstance>, type_: &str) -> Option<(String, String)> {
    app.as_ref()?
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, type_))
}

fn op_phase(op: &Option<Operation>) -> Option<String> {
    op.as_ref()?
        .status
        .as_ref()?
        .phase
        .map(|p| p.as_str().to_string())
}

/// Poll until `check` returns Some, or fail after 60 s with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn s(a: &str, b: &str) -> Option<(String, String)> {
    Some((a.to_string(), b.to_string()))
}

#[tokio::test]
async fn signed_intent_reaches_ready_with_a_note_and_a_posted_event() {
    let env = env("ready").await;
    let receiver = Receiver::start().await;
    let yaml = env.app_yaml("nc", "6.6.4", "");
    let commit = env.publish("applicationinstance-nc.yaml", &yaml, true);
    let operator = env.start(Some(&receiver)).await;
    env.flux_apply(&yaml).await;
    let hr = eventually("HelmRelease applied", || env.helm_release("nc")).await;
    assert_eq!(hr["spec"]["chartRef"]["kind"], "OCIRepository");
    assert_eq!(
        hr["metadata"]["annotations"]["app.vworkspace.io/intent-commit"],
        commit.as_str()
    );
    assert_eq!(
        hr["metadata"]["ownerReferences"][0]["kind"],
        "ApplicationInstance"
    );
    // The children are applied together: the chart source may land a moment after the HelmRelease.
    let oci = eventually("OCIRepository applied", || env.oci_repository("nc")).await;
    assert_eq!(oci["spec"]["ref"]["tag"], "6.6.4");
    env.helm_controller("nc", "True", "UpgradeSucceeded", "6.6.4", false)
        .await;
    eventually("Ready=True", || async {
        (app_cond(&env.app("nc").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let app = env.app("nc").await.unwrap();
    let status = app.status.unwrap();
    assert_eq!(status.intent_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(
        condition(&status.conditions, "Verified"),
        s("True", "CommitVerified")
    );
    let note = eventually("a note on the intent commit", || async {
        env.note(&commit)
    })
    .await;
    let record: Value = serde_json::from_str(note.lines().next().unwrap()).unwrap();
    assert_eq!(
        (record["outcome"].as_str(), record["name"].as_str()),
        (Some("Ready"), Some("nc"))
    );
    let uid = app.metadata.uid.unwrap();
    eventually("the Ready transition posted", || async {
        receiver
            .keys()
            .iter()
            .any(|k| k == &format!("condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/{}/nc/{uid}/Ready/True@1", env.ns))
            .then_some(())
    })
    .await;
    // The Cluster singleton reports the verified commit.
    let cluster = eventually("Cluster status", || async {
        let c = Api::<Cluster>::all(env.client.clone())
            .get_opt(&env.cluster)
            .await
            .unwrap()?;
        c.status.filter(|s| s.last_verified_commit.is_some())
    })
    .await;
    assert_eq!(
        cluster.last_verified_commit.as_deref(),
        Some(commit.as_str())
    );
    assert_eq!(
        condition(&cluster.conditions, "Connected"),
        s("True", "RoundTripOK")
    );
    // A resync with nothing changed writes nothing.
    let before = operator.counters.writes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.flux_apply(&yaml).await; // Flux re-applies the same manifest: no change
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        operator.counters.writes(),
        before,
        "{:?}",
        operator.counters.writes_by_kind()
    );
    // `trace` of the Ready intent: the commit and its verified signature, the live children, the note.
    let t = trace::collect(env.client.clone(), &env.target("nc"), &env.trace_repo())
        .await
        .unwrap();
    let OriginInfo::GitOps {
        commit: c,
        signature,
        subject,
        ..
    } = &t.origin
    else {
        panic!("{:?}", t.origin)
    };
    assert_eq!(c.as_deref(), Some(commit.as_str()));
    assert!(signature.starts_with("verified: Ssh"), "{signature}");
    assert_eq!(
        subject.as_deref(),
        Some("publish applicationinstance-nc.yaml"),
        "{t:?}"
    );
    let hr = t.children.iter().find(|c| c.kind == "HelmRelease").unwrap();
    assert!(
        hr.found
            && hr
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert!(
        t.notes
            .iter()
            .any(|n| n.outcome == "Ready" && n.commit == commit),
        "{:?}",
        t.notes
    );
    assert!(t.next.is_empty(), "{:?}", t.next);
    assert!(t.unreadable.is_empty(), "{:?}", t.unreadable);
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["origin"]["mode"], "gitops");
    assert!(json["conditions"][0]["type"].as_str().is_some(), "{json}");
    let text = trace::text::text(&t);
    assert!(text.contains("nothing: it is Ready"), "{text}");
    // `status`: the cluster at a glance (the owed notes as the Cluster object says once the note is pushed).
    let opts = StatusOptions {
        cluster_id: Some(env.cluster.clone()),
        policy: env.trace_repo().policy,
    };
    let st = eventually("status with no notes owed", || async {
        let st = trace::cluster::collect(env.client.clone(), &opts)
            .await
            .unwrap();
        (st.notes_pending == Some(0)).then_some(st)
    })
    .await;
    assert_eq!(st.mode, "gitops");
    assert!(st.view.starts_with(commit.as_str()), "{st:?}");
    assert_eq!(st.intents["ApplicationInstance"]["ready"], 1, "{st:?}");
    assert!(st.refusals.is_empty(), "{st:?}");
    assert_eq!(st.policy.as_ref().unwrap().ssh_signers.len(), 1, "{st:?}");
    let text = trace::cluster::text(&st);
    assert!(text.contains("Latest refusals\n  none"), "{text}");
    assert_eq!(
        serde_json::to_value(&st).unwrap()["clusterId"],
        env.cluster.as_str()
    );
    operator.stop().await;
}

#[tokio::test]
async fn unsigned_and_hand_edited_intents_are_blocked_and_nothing_is_written() {
    let env = env("blocked").await;
    let good = env.app_yaml("good", "6.6.4", "");
    env.publish("applicationinstance-good.yaml", &good, true);
    let operator = env.start(None).await;
    // Hand-edited: the live spec differs from the signed manifest.
    env.flux_apply(&good.replace("version: 6.6.4", "version: 9.9.9"))
        .await;
    eventually("SpecMismatch", || async {
        (app_cond(&env.app("good").await, "Blocked") == s("True", "SpecMismatch")).then_some(())
    })
    .await;
    // `trace` of the hand-edited intent: the refusal, and the command that shows who edited it.
    let t = trace::collect(env.client.clone(), &env.target("good"), &env.trace_repo())
        .await
        .unwrap();
    let OriginInfo::GitOps { verdict, .. } = &t.origin else {
        panic!("{:?}", t.origin)
    };
    assert!(verdict.starts_with("refused: SpecMismatch"), "{verdict}");
    let step = t.next.iter().find(|n| n.reason == "SpecMismatch").unwrap();
    assert_eq!(step.remedy, "revert the edit; Git is the source of truth");
    assert!(
        step.command.ends_with("--show-managed-fields"),
        "{}",
        step.command
    );
    // Not in Git at all.
    env.flux_apply(&env.app_yaml("ghost", "6.6.4", "")).await;
    eventually("SpecNotInGit", || async {
        (app_cond(&env.app("ghost").await, "Blocked") == s("True", "SpecNotInGit")).then_some(())
    })
    .await;
    // An unsigned commit on top: the view stays at the last verified revision; the new intent is blocked.
    let unsigned = env.app_yaml("sneaky", "6.6.4", "");
    env.publish("applicationinstance-sneaky.yaml", &unsigned, false);
    operator.sync_now().await;
    env.flux_apply(&unsigned).await;
    let (status, reason) = eventually("UnsignedCommit", || async {
        app_cond(&env.app("sneaky").await, "Blocked").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "UnsignedCommit")
    );
    for name in ["good", "ghost", "sneaky"] {
        assert!(
            env.helm_release(name).await.is_none(),
            "{name}: a HelmRelease was written"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn a_fresh_operator_acts_on_the_verified_revision_before_an_untrusted_head() {
    let env = env("fresh").await;
    // Signed: good (v1). Then unsigned: good moves to v2 and sneaky appears. The operator starts after both.
    let v1 = env.app_yaml("good", "1.0.0", "");
    let intent_commit = env.publish("applicationinstance-good.yaml", &v1, true);
    let v2 = env.app_yaml("good", "2.0.0", "");
    let sneaky = env.app_yaml("sneaky", "1.0.0", "");
    env.remote
        .write(&env.path("applicationinstance-good.yaml"), &v2);
    env.remote
        .write(&env.path("applicationinstance-sneaky.yaml"), &sneaky);
    let unsigned = env.remote.commit("unsigned", None, "mallory@example.com");
    let operator = env.start(None).await;
    let status = operator.source.status();
    assert_eq!(
        status.last_verified_commit.as_deref(),
        Some(intent_commit.as_str()),
        "the view is the signed commit"
    );
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&unsigned)),
        "{status:?}"
    );
    // What Flux synced before the unsigned commit is acted on.
    env.flux_apply(&v1).await;
    eventually("good: HelmRelease at 1.0.0", || async {
        let hr = env.helm_release("good").await?;
        let app = env.app("good").await;
        (app_cond(&app, "Verified") == s("True", "CommitVerified")
            && hr["metadata"]["annotations"]["app.vworkspace.io/intent-commit"]
                == intent_commit.as_str())
        .then_some(())
    })
    .await;
    // What Flux synced from the unsigned commit is not: Blocked with that commit's reason, nothing written.
    env.flux_apply(&v2).await;
    env.flux_apply(&sneaky).await;
    for name in ["good", "sneaky"] {
        eventually(&format!("{name}: UnsignedCommit"), || async {
            (app_cond(&env.app(name).await, "Blocked") == s("True", "UnsignedCommit")).then_some(())
        })
        .await;
    }
    let oci = env.oci_repository("good").await.unwrap();
    assert_eq!(
        oci["spec"]["ref"]["tag"], "1.0.0",
        "the verified rendering stays"
    );
    assert!(env.helm_release("sneaky").await.is_none());
    // `trace` names the refused commit and why, and says what to do.
    let t = trace::collect(env.client.clone(), &env.target("sneaky"), &env.trace_repo())
        .await
        .unwrap();
    let OriginInfo::GitOps {
        commit,
        verdict,
        signature,
        subject,
        ..
    } = &t.origin
    else {
        panic!("{:?}", t.origin)
    };
    assert_eq!(commit.as_deref(), Some(unsigned.as_str()), "{verdict}");
    assert!(verdict.starts_with("refused: UnsignedCommit"), "{verdict}");
    assert!(signature.starts_with("refused: "), "{signature}");
    assert_eq!(subject.as_deref(), Some("unsigned"));
    assert!(
        t.next
            .iter()
            .any(|n| n.reason == "UnsignedCommit" && n.remedy == "sign it (or revert)"),
        "{:?}",
        t.next
    );
    let text = trace::text::text(&t);
    assert!(
        text.contains(&unsigned) && text.contains("$ vworkspace-operator verify"),
        "{text}"
    );

    // With only what a namespace reader may read: what it cannot read is listed, the rest is shown.
    let reader = env.namespace_reader().await;
    let t = trace::collect(reader, &env.target("sneaky"), &RepoOptions::default())
        .await
        .unwrap();
    assert!(
        t.conditions.iter().any(|c| c.reason == "UnsignedCommit"),
        "{t:?}"
    );
    for denied in [
        format!("Cluster {}", env.cluster),
        "Kustomization in every namespace".into(),
    ] {
        assert!(
            t.unreadable
                .contains(&format!("{denied}: not permitted (RBAC)")),
            "{denied}: {:?}",
            t.unreadable
        );
    }
    assert!(trace::text::text(&t).contains("Not shown (no access, or not served)"));
    // `status` lists the refusals, newest first.
    let opts = StatusOptions {
        cluster_id: Some(env.cluster.clone()),
        policy: None,
    };
    let st = trace::cluster::collect(env.client.clone(), &opts)
        .await
        .unwrap();
    let names: Vec<&str> = st.refusals.iter().map(|r| r.name.as_str()).collect();
    assert!(
        names.contains(&"sneaky") && names.contains(&"good"),
        "{st:?}"
    );
    assert!(
        st.refusals.iter().all(|r| r.reason == "UnsignedCommit"),
        "{st:?}"
    );
    assert_eq!(st.intents["ApplicationInstance"]["blocked"], 2, "{st:?}");
    operator.stop().await;
}

/// The metric names a PromQL expression reads, after checking its syntax with a real PromQL parser.
fn promql_metrics(expr: &str) -> Vec<String> {
    use promql_parser::parser::Expr;
    use promql_parser::util::{ExprVisitor, walk_expr};
    struct Names(Vec<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let vs = match e {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(m) => Some(&m.vs),
                _ => None,
            };
            if let Some(name) = vs.and_then(|vs| vs.name.clone()) {
                self.0.push(name);
            }
            Ok(true)
        }
    }
    let ast = promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut names = Names(Vec::new());
    walk_expr(&mut names, &ast).unwrap();
    names.0
}

/// The chart's Grafana dashboard and PrometheusRule (rendered by helm with them enabled) read only metrics the
/// operator serves: every expression parses as PromQL, and every metric name in it is on the live `/metrics`.
#[tokio::test]
async fn the_charts_dashboard_and_alerts_use_only_metrics_the_operator_serves() {
    let env = env("dashboards").await;
    let operator = env.start_with_admin().await;
    let (metrics_addr, _) = operator.admin_addrs.unwrap();
    let text = eventually("/metrics with the fleet gauges", || async {
        let body = reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.contains("vworkspace_operator_intents{")
            .then_some(body)
    })
    .await;
    // The sample names each family gives (OpenMetrics: counters `_total`, histograms `_bucket/_sum/_count`).
    let mut served = std::collections::BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut f = line.split_whitespace();
        let (name, kind) = (f.next().unwrap(), f.next().unwrap());
        match kind {
            "counter" => {
                served.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    served.insert(format!("{name}{s}"));
                }
            }
            _ => {
                served.insert(name.to_string());
            }
        }
    }
    let mut values = support::chart::flux_values();
    values["metrics"]["dashboard"] = json!({"enabled": true});
    values["metrics"]["prometheusRule"] = json!({"enabled": true});
    let objects = support::chart::template(&values);
    let dashboard = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap" && o["metadata"]["name"] == "vworkspace-operator-dashboard"
        })
        .unwrap();
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let board: Value = serde_json::from_str(
        dashboard["data"]["vworkspace-operator.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let rules = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .unwrap();
    let mut exprs: Vec<(String, String)> = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push((
                format!("panel {:?}", panel["title"]),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let alerts = rules["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for rule in alerts {
        let alert = rule["alert"].as_str().unwrap();
        let anchor = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .rsplit('#')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            anchor,
            alert.to_ascii_lowercase(),
            "{alert}: its runbook section"
        );
        let runbooks =
            std::fs::read_to_string(testbed::project_root().join("docs/runbooks.md")).unwrap();
        assert!(
            runbooks.contains(&format!("## {alert}")),
            "docs/runbooks.md has no section for {alert}"
        );
        exprs.push((
            format!("alert {alert}"),
            rule["expr"].as_str().unwrap().to_string(),
        ));
    }
    let mut missing = Vec::new();
    for (what, expr) in &exprs {
        let names = promql_metrics(expr);
        assert!(!names.is_empty(), "{what}: {expr} reads no metric");
        missing.extend(
            names
                .into_iter()
                .filter(|n| !served.contains(n))
                .map(|n| format!("{what}: {n}")),
        );
    }
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:#?}\nserved: {served:#?}"
    );
    operator.stop().await;
}

#[tokio::test]
async fn the_operator_reports_ready_once_its_caches_synced() {
    let env = env("readyz").await;
    let operator = env.start_with_admin().await;
    let (_, health) = operator.admin_addrs.unwrap();
    // Every check passes: crds, source, and caches-synced (which waits on the controllers' stores).
    eventually("/readyz 200", || async {
        let r = reqwest::get(format!("http://{health}/readyz")).await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_namespace_without_the_gate_label_is_ignored() {
    let env = env("gate").await;
    let ungated = "t-gate-off";
    testbed::namespace(&env.client, ungated, false).await;
    let yaml = env.app_yaml("app", "6.6.4", "").replace(
        &format!("namespace: {}", env.ns),
        &format!("namespace: {ungated}"),
    );
    env.remote.write(
        &format!(
            "clusters/{}/namespaces/{ungated}/applicationinstance-app.yaml",
            env.cluster
        ),
        &yaml,
    );
    env.remote
        .commit("ungated", Some(&env.signer), &env.signer.email);
    let operator = env.start(None).await;
    let value: Value = serde_saphyr::from_str(&yaml).unwrap();
    testbed::apply(&env.client, &value).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let app = Api::<ApplicationInstance>::namespaced(env.client.clone(), ungated)
        .get("app")
        .await
        .unwrap();
    assert!(
        app.status.is_none(),
        "status written in an ungated namespace"
    );
    assert!(app.metadata.finalizers.unwrap_or_default().is_empty());
    assert!(
        env.dynamic("helm.toolkit.fluxcd.io/v2", "HelmRelease", ungated, "app")
            .await
            .is_none()
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_failed_upgrade_rolled_back_by_flux_is_degraded_and_delete_cleans_up() {
    let env = env("upgrade").await;
    let v1 = env.app_yaml("app", "1.0.0", "");
    env.publish("applicationinstance-app.yaml", &v1, true);
    let operator = env.start(None).await;
    env.flux_apply(&v1).await;
    eventually("HelmRelease", || env.helm_release("app")).await;
    env.helm_controller("app", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    eventually("Ready", || async {
        (app_cond(&env.app("app").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let v2 = env.app_yaml("app", "2.0.0", "");
    env.publish("applicationinstance-app.yaml", &v2, true);
    operator.sync_now().await;
    env.flux_apply(&v2).await;
    eventually("OCIRepository at 2.0.0", || async {
        let o = env.oci_repository("app").await?;
        (o["spec"]["ref"]["tag"] == "2.0.0").then_some(())
    })
    .await;
    env.flux_release("app", "False", "RollbackSucceeded", "1.0.0", "2.0.0", true)
        .await;
    eventually("RolledBack + UpgradeFailed", || async {
        let app = env.app("app").await;
        (app_cond(&app, "Ready") == s("True", "RolledBack")
            && app_cond(&app, "Degraded") == s("True", "UpgradeFailed"))
        .then_some(())
    })
    .await;
    // The operator's finalizer, set with its own field manager.
    let app = env.app("app").await.unwrap();
    assert_eq!(
        app.metadata.finalizers,
        Some(vec![APP_FINALIZER.to_string()])
    );
    let finalizer_manager = app
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:metadata")
                    .is_some_and(|m| m.get("f:finalizers").is_some())
            })
        })
        .and_then(|m| m.manager);
    assert_eq!(finalizer_manager.as_deref(), Some("vworkspace-operator"));
    // Delete: the finalizer removes the HelmRelease and the chart source, and the instance stays (Deleting)
    // until they are gone; helm-controller's own finalizer holds the HelmRelease until it has uninstalled.
    let hr_api = {
        let probe = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"});
        let ar = testbed::api_resource(&env.client, &probe).await;
        Api::<DynamicObject>::namespaced_with(env.client.clone(), &env.ns, &ar)
    };
    let flux_finalizer = json!({"metadata": {"finalizers": ["finalizers.fluxcd.io"]}});
    hr_api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(&flux_finalizer),
        )
        .await
        .unwrap();
    Api::<ApplicationInstance>::namespaced(env.client.clone(), &env.ns)
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Deleting while the HelmRelease uninstalls", || async {
        let app = env.app("app").await?;
        let hr = env.helm_release("app").await?;
        (app_cond(&Some(app), "Deleting") == s("True", "WaitingForChildResources")
            && hr["metadata"]["deletionTimestamp"].is_string())
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.app("app").await.is_some(),
        "released before its HelmRelease was gone"
    );
    let release = json!({"metadata": {"finalizers": null}});
    hr_api
        .patch("app", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    eventually("children and instance gone", || async {
        let hr = env.helm_release("app").await;
        let oci = env.oci_repository("app").await;
        (hr.is_none() && oci.is_none() && env.app("app").await.is_none()).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn pause_keeps_children_and_says_so() {
    let env = env("pause").await;
    let yaml = env.app_yaml(
        "app",
        "1.0.0",
        "    apps.vworkspace.io/reconcile: disabled\n",
    );
    env.publish("applicationinstance-app.yaml", &yaml, true);
    let operator = env.start(None).await;
    env.flux_apply(&yaml).await;
    eventually("Suspended", || async {
        (app_cond(&env.app("app").await, "Suspended") == s("True", "ReconcilePaused")).then_some(())
    })
    .await;
    assert!(env.helm_release("app").await.is_none());
    operator.stop().await;
}

/// (type, engine, parameters, child apiVersion, kind, namespace-is-velero, success status, failure status)
type EngineCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Value,
    Value,
);

/// The status the Job controller of a current Kubernetes writes for a Job that succeeded: the API server (1.31+)
/// refuses `Complete` without `SuccessCriteriaMet`, a start and a completion time. The test plays the Job controller
/// (the test bed runs no kube-controller-manager and no kubelet).
fn job_succeeded() -> Value {
    json!({
        "startTime": "2026-11-21T00:00:00Z",
        "completionTime": "2026-11-21T00:01:00Z",
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": "2026-11-21T00:01:00Z"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": "2026-11-21T00:01:00Z"}
        ]
    })
}

/// The status the Job controller writes for a Job that failed (`FailureTarget` first, then `Failed`).
fn job_failed(reason: &str, message: &str) -> Value {
    json!({
        "startTime": "2026-11-21T00:00:00Z",
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": reason, "message": message, "lastTransitionTime": "2026-11-21T00:01:00Z"},
            {"type": "Failed", "status": "True", "reason": reason, "message": message, "lastTransitionTime": "2026-11-21T00:01:00Z"}
        ]
    })
}

fn engines() -> Vec<EngineCase> {
    vec![
        (
            "Backup",
            "velero",
            "{}",
            "velero.io/v1",
            "Backup",
            true,
            json!({"phase": "Completed", "startTimestamp": "2026-11-21T00:00:00Z", "completionTimestamp": "2026-11-21T00:01:00Z"}),
            json!({"phase": "Failed", "failureReason": "storage unavailable"}),
        ),
        (
            "RunCommand",
            "job",
            "{image: busybox, command: [\"true\"]}",
            "batch/v1",
            "Job",
            false,
            job_succeeded(),
            job_failed("BackoffLimitExceeded", "too many failures"),
        ),
        (
            "Migration",
            "helmHookJob",
            "{hookName: db-migrate, image: busybox}",
            "batch/v1",
            "Job",
            false,
            job_succeeded(),
            job_failed("DeadlineExceeded", "deadline"),
        ),
        (
            "Runbook",
            "workflow",
            "{workflowTemplate: maintenance}",
            "argoproj.io/v1alpha1",
            "Workflow",
            false,
            json!({"phase": "Succeeded"}),
            json!({"phase": "Error", "message": "boom"}),
        ),
        (
            "Snapshot",
            "snapshot",
            "{pvc: data}",
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshot",
            false,
            json!({"readyToUse": true, "restoreSize": "1Gi"}),
            json!({"readyToUse": false, "error": {"message": "driver failed"}}),
        ),
        (
            "Replicate",
            "volsync",
            "{pvc: data, repository: restic-secret}",
            "volsync.backube/v1alpha1",
            "ReplicationSource",
            false,
            json!({"lastSyncTime": "2026-11-21T00:00:00Z", "lastManualSync": "__NAME__"}),
            json!({"latestMoverStatus": {"result": "Failed", "logs": "restic: repository locked"}}),
        ),
    ]
}

#[tokio::test]
async fn every_engine_goes_from_pending_to_succeeded_and_to_failed() {
    let env = env("engines").await;
    let app = env.app_yaml("app", "1.0.0", "");
    env.publish("applicationinstance-app.yaml", &app, true);
    let mut ops = Vec::new();
    for (i, (type_, engine, params, ..)) in engines().into_iter().enumerate() {
        for outcome in ["ok", "ko"] {
            let name = format!("op-{i}-{outcome}");
            let yaml = env.op_yaml(&name, "app", type_, engine, params, "");
            env.remote
                .write(&env.path(&format!("operation-{name}.yaml")), &yaml);
            ops.push((i, outcome, name, yaml));
        }
    }
    let commit = env
        .remote
        .commit("operations", Some(&env.signer), &env.signer.email);
    let operator = env.start(None).await;
    env.flux_apply(&app).await;
    for (_, _, _, yaml) in &ops {
        env.flux_apply(yaml).await;
    }
    let table = engines();
    for (i, outcome, name, _) in &ops {
        let (_, _, _, api_version, kind, velero, ok, ko) = &table[*i];
        let child_ns = if *velero {
            "velero".to_string()
        } else {
            env.ns.clone()
        };
        let child_name = if *velero {
            format!("{}-{name}", env.ns)
        } else {
            name.clone()
        };
        eventually(&format!("{name}: Running"), || async {
            (op_phase(&env.op(name).await).as_deref() == Some("Running")).then_some(())
        })
        .await;
        let child = eventually(&format!("{name}: child {kind}"), || {
            env.dynamic(api_version, kind, &child_ns, &child_name)
        })
        .await;
        assert_eq!(
            child["metadata"]["labels"]["ops.vworkspace.io/operation-name"],
            name.as_str()
        );
        let status = if *outcome == "ok" {
            ok.clone()
        } else {
            ko.clone()
        };
        let status: Value =
            serde_json::from_str(&status.to_string().replace("__NAME__", name)).unwrap();
        if *kind == "ReplicationSource" && *outcome == "ok" {
            assert_eq!(child["spec"]["trigger"]["manual"], name.as_str());
        }
        env.write_status(api_version, kind, &child_ns, &child_name, status)
            .await;
        let want = if *outcome == "ok" {
            "Succeeded"
        } else {
            "Failed"
        };
        eventually(&format!("{name}: {want}"), || async {
            (op_phase(&env.op(name).await).as_deref() == Some(want)).then_some(())
        })
        .await;
        let op = env.op(name).await.unwrap();
        let st = op.status.unwrap();
        assert!(
            st.started_at.is_some() && st.finished_at.is_some(),
            "{name}: {st:?}"
        );
        assert_eq!(
            st.engine_ref.as_ref().map(|e| e.name.as_str()),
            Some(child_name.as_str())
        );
    }
    // Outcomes are noted on the intent commit.
    let note = eventually("operation notes", || async {
        env.note(&commit).filter(|n| n.lines().count() >= ops.len())
    })
    .await;
    assert!(
        note.contains("\"outcome\":\"Succeeded\"") && note.contains("\"outcome\":\"Failed\""),
        "{note}"
    );
    operator.stop().await;
}

#[tokio::test]
async fn deleting_an_operation_cancels_it_and_notes_the_cancellation() {
    let env = env("cancel").await;
    let app = env.app_yaml("app", "1.0.0", "");
    env.publish("applicationinstance-app.yaml", &app, true);
    let params = "{image: busybox, command: [\"sleep\", \"3600\"]}";
    let running = env.op_yaml("run", "app", "RunCommand", "job", params, "");
    let done = env.op_yaml("done", "app", "RunCommand", "job", params, "");
    env.remote.write(&env.path("operation-run.yaml"), &running);
    env.remote.write(&env.path("operation-done.yaml"), &done);
    let commit = env
        .remote
        .commit("operations", Some(&env.signer), &env.signer.email);
    let operator = env.start(None).await;
    env.flux_apply(&app).await;
    env.flux_apply(&running).await;
    env.flux_apply(&done).await;
    for name in ["run", "done"] {
        eventually(&format!("{name}: Job"), || {
            env.dynamic("batch/v1", "Job", &env.ns, name)
        })
        .await;
    }
    env.write_status("batch/v1", "Job", &env.ns, "done", job_succeeded())
        .await;
    eventually("done: Succeeded", || async {
        (op_phase(&env.op("done").await).as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    assert_eq!(
        env.op("run").await.unwrap().metadata.finalizers,
        Some(vec![OPERATION_FINALIZER.to_string()])
    );
    // Deleting the running one cancels it: its Job is deleted, then the Operation goes and the cancellation
    // is on the intent commit. Deleting the finished one only releases it.
    let ops: Api<Operation> = Api::namespaced(env.client.clone(), &env.ns);
    for name in ["run", "done"] {
        ops.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("both gone, the running one's Job too", || async {
        let job = env.dynamic("batch/v1", "Job", &env.ns, "run").await;
        (job.is_none() && env.op("run").await.is_none() && env.op("done").await.is_none())
            .then_some(())
    })
    .await;
    assert!(
        env.dynamic("batch/v1", "Job", &env.ns, "done")
            .await
            .is_some(),
        "a finished Operation's child is kept"
    );
    let note = eventually("the cancellation noted", || async {
        env.note(&commit)
            .filter(|n| n.contains("\"outcome\":\"Cancelled\""))
    })
    .await;
    let records: Vec<Value> = note
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes.len(), 2, "{note}");
    assert!(outcomes.contains(&("run", "Cancelled")), "{note}");
    assert!(outcomes.contains(&("done", "Succeeded")), "{note}");
    operator.stop().await;
}

fn op_cond(op: &Option<Operation>, type_: &str) -> Option<(String, String)> {
    op.as_ref()?
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, type_))
}

#[tokio::test]
async fn an_upgrade_helm_operation_changes_the_release_through_the_instance_and_succeeds_or_fails()
{
    let env = env("helmop").await;
    let app = env.app_yaml("app", "1.0.0", "");
    env.publish("applicationinstance-app.yaml", &app, true);
    let operator = env.start(None).await;
    env.flux_apply(&app).await;
    eventually("HelmRelease", || env.helm_release("app")).await;
    env.helm_controller("app", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    eventually("Ready at 1.0.0", || async {
        (app_cond(&env.app("app").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let oci_tag = || async {
        env.oci_repository("app")
            .await
            .and_then(|o| o["spec"]["ref"]["tag"].as_str().map(str::to_string))
    };
    // Two upgrades in one signed commit: the first (to 2.0.0) fails and Flux rolls it back; the second (to 2.0.1)
    // waits for it (an Upgrade blocks an Upgrade), then succeeds.
    let bad = env.op_yaml(
        "up-bad",
        "app",
        "Upgrade",
        "helm",
        "{targetVersion: 2.0.0}",
        "",
    );
    let good = env.op_yaml(
        "up-good",
        "app",
        "Upgrade",
        "helm",
        "{targetVersion: 2.0.1}",
        "",
    );
    env.remote.write(&env.path("operation-up-bad.yaml"), &bad);
    env.remote.write(&env.path("operation-up-good.yaml"), &good);
    let commit = env
        .remote
        .commit("upgrades", Some(&env.signer), &env.signer.email);
    operator.sync_now().await;
    env.flux_apply(&bad).await;
    eventually("up-bad Running", || async {
        (op_phase(&env.op("up-bad").await).as_deref() == Some("Running")).then_some(())
    })
    .await;
    env.flux_apply(&good).await;
    eventually("up-good Pending behind up-bad", || async {
        let op = env.op("up-good").await;
        (op_phase(&op).as_deref() == Some("Pending")
            && op_cond(&op, "Blocked") == s("True", "ConflictingOperation"))
        .then_some(())
    })
    .await;
    // The instance renders the upgrade: its chart source moves to 2.0.0. The HelmRelease stays the instance's
    // own object (no Operation labels): the Operation wrote nothing itself.
    eventually("chart source at 2.0.0", || async {
        (oci_tag().await.as_deref() == Some("2.0.0")).then_some(())
    })
    .await;
    let hr = env.helm_release("app").await.unwrap();
    assert!(
        hr["metadata"]["labels"]
            .get("ops.vworkspace.io/operation-name")
            .is_none(),
        "{hr}"
    );
    assert_eq!(
        hr["metadata"]["ownerReferences"][0]["kind"],
        "ApplicationInstance"
    );
    let op = env.op("up-bad").await.unwrap();
    let st = op.status.unwrap();
    assert_eq!(
        st.engine_ref
            .as_ref()
            .map(|e| (e.kind.as_str(), e.name.as_str())),
        Some(("HelmRelease", "app"))
    );
    // Flux attempts 2.0.0, fails and rolls back to 1.0.0.
    env.flux_release("app", "False", "RollbackSucceeded", "1.0.0", "2.0.0", true)
        .await;
    eventually("up-bad Failed", || async {
        let op = env.op("up-bad").await;
        (op_phase(&op).as_deref() == Some("Failed")
            && op_cond(&op, "Failed") == s("True", "EngineFailed"))
        .then_some(())
    })
    .await;
    // The second upgrade starts and the chart source moves to 2.0.1. The rollback Flux reported for 2.0.0 is
    // not a failure of 2.0.1: the Operation keeps running until Flux has attempted 2.0.1.
    eventually("up-good Running", || async {
        (op_phase(&env.op("up-good").await).as_deref() == Some("Running")).then_some(())
    })
    .await;
    eventually("chart source at 2.0.1", || async {
        (oci_tag().await.as_deref() == Some("2.0.1")).then_some(())
    })
    .await;
    eventually("the instance says it is upgrading", || async {
        (app_cond(&env.app("app").await, "Reconciling") == s("True", "HelmReleaseUpgrading"))
            .then_some(())
    })
    .await;
    assert_eq!(
        op_phase(&env.op("up-good").await).as_deref(),
        Some("Running")
    );
    env.flux_release("app", "True", "UpgradeSucceeded", "2.0.1", "2.0.1", false)
        .await;
    eventually("up-good Succeeded", || async {
        let op = env.op("up-good").await;
        (op_phase(&op).as_deref() == Some("Succeeded")
            && op_cond(&op, "Succeeded") == s("True", "EngineCompleted"))
        .then_some(())
    })
    .await;
    let st = env.op("up-good").await.unwrap().status.unwrap();
    assert!(
        st.started_at.is_some() && st.finished_at.is_some(),
        "{st:?}"
    );
    assert_eq!(
        st.outputs.get("helmReleaseName").map(String::as_str),
        Some("app")
    );
    // The instance keeps the upgraded release: Ready at 2.0.1, and a new verified revision (every intent is
    // reconciled again) neither moves the chart back nor writes a child.
    eventually("the instance Ready at 2.0.1", || async {
        let app = env.app("app").await?;
        let st = app.status.as_ref()?;
        (condition(&st.conditions, "Ready") == s("True", "HelmReleaseReady")
            && st.last_applied_chart.as_ref().map(|c| c.version.as_str()) == Some("2.0.1"))
        .then_some(())
    })
    .await;
    let children = || operator.counters.writes_by_kind().get("child").copied();
    let before = children();
    let app_reconciles = || {
        operator
            .counters
            .reconciles()
            .get(&("applicationinstance".to_string(), true))
            .copied()
            .unwrap_or_default()
    };
    let reconciled = app_reconciles();
    env.remote.write("README.md", "cluster repo, revised\n");
    env.remote
        .commit("unrelated", Some(&env.signer), &env.signer.email);
    operator.sync_now().await;
    eventually("the instance reconciled at the new revision", || async {
        (app_reconciles() > reconciled).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(oci_tag().await.as_deref(), Some("2.0.1"));
    assert_eq!(
        children(),
        before,
        "{:?}",
        operator.counters.writes_by_kind()
    );
    // Both outcomes are noted on the commit of the Operations.
    let note = eventually("notes for both upgrades", || async {
        env.note(&commit)
            .filter(|n| n.contains("\"up-good\"") && n.contains("\"up-bad\""))
    })
    .await;
    let records: Vec<Value> = note
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcome = |name: &str| {
        records
            .iter()
            .find(|r| r["name"] == name && r["kind"] == "Operation")
            .map(|r| r["outcome"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(outcome("up-bad").as_deref(), Some("Failed"), "{note}");
    assert_eq!(outcome("up-good").as_deref(), Some("Succeeded"), "{note}");
    let good_record = records.iter().find(|r| r["name"] == "up-good").unwrap();
    assert_eq!(good_record["childRefs"]["helmReleaseName"], "app", "{note}");
    operator.stop().await;
}

#[tokio::test]
async fn conflicts_wait_and_approval_claims_are_checked() {
    use vworkspace_operator::validate::approval::{self, ClaimPayload, sign_claim};
    let env = env("conflicts").await;
    let app = env.app_yaml("app", "1.0.0", "");
    let now = jiff::Timestamp::now().as_second();
    let backup_name = format!("{}-backup-1", env.ns);
    let params = format!("{{backupName: {backup_name}}}");
    let claim = |op: &str, exp: i64, key: &[u8]| {
        let spec = serde_json::from_value(json!({
            "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                          "name": "app"},
            "type": "Restore", "engine": "velero", "parameters": {"backupName": backup_name},
        }))
        .unwrap();
        sign_claim(
            key,
            &ClaimPayload {
                v: approval::VERSION,
                rid: 1,
                op: op.into(),
                by: "alice@example.com".into(),
                at: "2026-11-21T00:00:00Z".into(),
                exp,
                spec: approval::spec_digest(&env.ns, &spec),
            },
        )
        .unwrap()
    };
    let backup = env.op_yaml("backup-1", "app", "Backup", "velero", "{}", "");
    let restore = env.op_yaml(
        "restore-1",
        "app",
        "Restore",
        "velero",
        &params,
        &format!(
            "  approvals: {{required: true, claim: \"{}\"}}\n",
            claim("restore-1", now + 3600, APPROVAL_KEY)
        ),
    );
    let bad_sig = env.op_yaml(
        "restore-badsig",
        "app",
        "Restore",
        "velero",
        &params,
        &format!(
            "  approvals: {{required: true, claim: \"{}\"}}\n",
            claim("restore-badsig", now + 3600, b"wrong key")
        ),
    );
    let expired = env.op_yaml(
        "restore-expired",
        "app",
        "Restore",
        "velero",
        &params,
        &format!(
            "  approvals: {{required: true, claim: \"{}\"}}\n",
            claim("restore-expired", now - 10, APPROVAL_KEY)
        ),
    );
    for (file, yaml) in [
        ("app", &app),
        ("backup", &backup),
        ("restore", &restore),
        ("badsig", &bad_sig),
        ("expired", &expired),
    ] {
        env.remote.write(&env.path(&format!("{file}.yaml")), yaml);
    }
    env.remote
        .commit("ops", Some(&env.signer), &env.signer.email);
    let operator = env.start(None).await;
    env.flux_apply(&app).await;
    env.flux_apply(&backup).await;
    eventually("backup Running", || async {
        (op_phase(&env.op("backup-1").await).as_deref() == Some("Running")).then_some(())
    })
    .await;
    env.flux_apply(&restore).await;
    env.flux_apply(&bad_sig).await;
    env.flux_apply(&expired).await;
    eventually("restore blocked by the backup", || async {
        let op = env.op("restore-1").await;
        (op.as_ref()?
            .status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Blocked"))
            == s("True", "ConflictingOperation"))
        .then_some(())
    })
    .await;
    env.write_status(
        "velero.io/v1",
        "Backup",
        "velero",
        &format!("{}-backup-1", env.ns),
        json!({"phase": "Completed"}),
    )
    .await;
    eventually("restore proceeds after the backup", || async {
        (op_phase(&env.op("restore-1").await).as_deref() == Some("Running")).then_some(())
    })
    .await;
    // A restore is blocked by a running restore? No: Restore does not block Restore; but the invalid claims do.
    for name in ["restore-badsig", "restore-expired"] {
        eventually(&format!("{name} awaits approval"), || async {
            let op = env.op(name).await;
            (op.as_ref()?
                .status
                .as_ref()
                .and_then(|s| condition(&s.conditions, "Blocked"))
                == s("True", "AwaitingApproval"))
            .then_some(())
        })
        .await;
        assert!(
            env.dynamic(
                "velero.io/v1",
                "Restore",
                "velero",
                &format!("{}-{name}", env.ns)
            )
            .await
            .is_none()
        );
    }
    // `trace` of an Operation waiting for approval: its verdict and what to do.
    let target = Target::parse(&format!("op/{}/restore-expired", env.ns)).unwrap();
    let t = trace::collect(env.client.clone(), &target, &env.trace_repo())
        .await
        .unwrap();
    assert_eq!(t.kind, "Operation");
    let step = t
        .next
        .iter()
        .find(|n| n.reason == "AwaitingApproval")
        .unwrap();
    assert_eq!(step.remedy, "issue a new claim", "{:?}", t.next);
    assert!(
        matches!(
            &t.origin,
            OriginInfo::GitOps {
                commit: Some(_),
                ..
            }
        ),
        "{:?}",
        t.origin
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_restart_mid_rollout_loses_and_duplicates_nothing() {
    let env = env("restart").await;
    let yaml = env.app_yaml("app", "1.0.0", "");
    let commit = env.publish("applicationinstance-app.yaml", &yaml, true);
    let first = env.start(None).await;
    env.flux_apply(&yaml).await;
    eventually("HelmRelease", || env.helm_release("app")).await;
    first.stop().await;
    env.helm_controller("app", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    let second = env.start(None).await;
    eventually("Ready after restart", || async {
        (app_cond(&env.app("app").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    let note = eventually("note", || async { env.note(&commit) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.stop().await;
    let third = env.start(None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    third.stop().await;
    let note_after = env.note(&commit).unwrap();
    assert_eq!(note, note_after);
    assert_eq!(
        note.lines()
            .filter(|l| l.contains("\"outcome\":\"Ready\""))
            .count(),
        1,
        "{note}"
    );
}

#[tokio::test]
async fn the_receiver_down_then_up_gets_the_snapshot_and_a_remote_outage_delays_notes() {
    let env = env("outage").await;
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let yaml = env.app_yaml("app", "1.0.0", "");
    let commit = env.publish("applicationinstance-app.yaml", &yaml, true);
    let operator = env.start(Some(&receiver)).await;
    env.flux_apply(&yaml).await;
    eventually("HelmRelease", || env.helm_release("app")).await;
    // The Git remote goes away before the outcome exists.
    let moved = env.tmp.path().join("remote-away.git");
    std::fs::rename(&env.remote.bare, &moved).unwrap();
    env.helm_controller("app", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    eventually("Ready", || async {
        (app_cond(&env.app("app").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    eventually("Cluster reports the repo unreachable", || async {
        let c = Api::<Cluster>::all(env.client.clone())
            .get_opt(&env.cluster)
            .await
            .unwrap()?;
        let st = c.status?;
        (condition(&st.conditions, "Connected") == s("False", "RepoUnreachable")).then_some(())
    })
    .await;
    assert!(
        receiver.keys().is_empty(),
        "nothing is accepted while the receiver is down"
    );
    // Both come back.
    std::fs::rename(&moved, &env.remote.bare).unwrap();
    receiver.status.store(204, Ordering::SeqCst);
    let uid = env.app("app").await.unwrap().metadata.uid.unwrap();
    eventually("the snapshot reaches the receiver", || async {
        receiver
            .keys()
            .iter()
            .any(|k| k == &format!("condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/{}/app/{uid}/Ready/True@1", env.ns))
            .then_some(())
    })
    .await;
    let note = eventually("the note is delivered once the remote is back", || async {
        env.note(&commit)
    })
    .await;
    assert!(note.contains("\"outcome\":\"Ready\""));
    operator.stop().await;
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over_when_it_stops() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let env = env("leader").await;
    let lease_name = format!("vworkspace-operator-{}", env.cluster);
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let holder = || async {
        leases
            .get_opt(&lease_name)
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    };
    let settings = |identity: &str| {
        let mut l = LeaseSettings::new(&env.ns, &lease_name, identity);
        l.duration = Duration::from_secs(3);
        l.grace = Duration::from_secs(1);
        l
    };
    // A leader that died without releasing the lease: the first replica leads only once it has expired.
    let now = MicroTime(jiff::Timestamp::now());
    leases
        .create(
            &Default::default(),
            &Lease {
                metadata: kube::api::ObjectMeta {
                    name: Some(lease_name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some("crashed".into()),
                    lease_duration_seconds: Some(3),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
    let first = env.app_yaml("first", "1.0.0", "");
    env.publish("applicationinstance-first.yaml", &first, true);
    let mut config = env.config(None);
    config.leader_election = Some(settings("replica-a"));
    let leader = Operator::start(env.client.clone(), config).await.unwrap();
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    let leader_counters = leader.counters.clone();
    // The standby waits for the lease: it does not start its controllers, so it writes nothing.
    let mut config = env.config(None);
    config.leader_election = Some(settings("replica-b"));
    config.state_dir = env.tmp.path().join("state-b");
    config.repo_mut().unwrap().cache_dir = env.tmp.path().join("state-b/cache");
    // Its admission webhook serves while it waits (every replica answers admission, leader or not).
    let webhook_addr: std::net::SocketAddr = format!("127.0.0.1:{}", testbed::free_port())
        .parse()
        .unwrap();
    config.webhook = Some(vworkspace_operator::webhook::WebhookConfig {
        addr: webhook_addr,
        certs: vworkspace_operator::webhook::CertSource::Managed {
            secret_namespace: env.ns.clone(),
            secret_name: "standby-webhook-tls".into(),
            configuration: "not-installed-here".into(),
            settings: vworkspace_operator::webhook::certs::CertSettings {
                names: vec!["127.0.0.1".into()],
                ca_validity: Duration::from_secs(3600),
                cert_validity: Duration::from_secs(3600),
            },
        },
        approval_key: None,
    });
    let standby = tokio::spawn(Operator::start(env.client.clone(), config));
    env.flux_apply(&first).await;
    eventually("the leader applies the HelmRelease", || {
        env.helm_release("first")
    })
    .await;
    env.helm_controller("first", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    eventually("the leader folds Ready", || async {
        (app_cond(&env.app("first").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    // Several lease durations later the leader still holds the lease (it renews) and the standby still waits.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    assert!(
        !standby.is_finished(),
        "the standby started while the leader leads"
    );
    let secret: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), &env.ns);
    let ca = secret
        .get("standby-webhook-tls")
        .await
        .unwrap()
        .data
        .unwrap()["ca.crt"]
        .0
        .clone();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let mut leaky: Value = serde_saphyr::from_str(&env.app_yaml("leaky", "1.0.0", "")).unwrap();
    leaky["spec"]["values"] = json!({"source": "inline", "inline": {"password": "x"}});
    let answer: Value = http
        .post(format!("https://{webhook_addr}/validate"))
        .json(&testbed::admission_review("standby", &leaky))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(!standby.is_finished());
    // The leader stops and releases the lease; the standby takes over.
    leader.stop().await;
    let writes_after_stop = leader_counters.writes();
    let successor = tokio::time::timeout(Duration::from_secs(60), standby)
        .await
        .expect("the standby did not take over within 60 s")
        .unwrap()
        .unwrap();
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    // The new leader acts on a new intent.
    let second = env.app_yaml("second", "1.0.0", "");
    env.publish("applicationinstance-second.yaml", &second, true);
    successor.sync_now().await;
    env.flux_apply(&second).await;
    eventually("the new leader applies the HelmRelease", || {
        env.helm_release("second")
    })
    .await;
    env.helm_controller("second", "True", "InstallSucceeded", "1.0.0", false)
        .await;
    eventually("the new leader folds Ready", || async {
        (app_cond(&env.app("second").await, "Ready") == s("True", "HelmReleaseReady")).then_some(())
    })
    .await;
    // What the old leader wrote is not written again (only the new intent's HelmRelease and chart source), and
    // the old leader wrote nothing after it stopped.
    assert_eq!(
        successor.counters.writes_by_kind().get("child").copied(),
        Some(2),
        "{:?}",
        successor.counters.writes_by_kind()
    );
    assert_eq!(leader_counters.writes(), writes_after_stop);
    successor.stop().await;
    assert_ne!(holder().await.as_deref(), Some("replica-b"));
}

/// The Blocked condition of an instance: (status, reason, message).
fn blocked(app: &Option<ApplicationInstance>) -> Option<(String, String, String)> {
    app.as_ref()?
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Blocked")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn fingerprint(signer: &Signer) -> String {
    ssh_key::PublicKey::from_openssh(signer.public.trim())
        .unwrap()
        .fingerprint(Default::default())
        .to_string()
}

/// Issue #17, item 5: the trust policy file is rewritten while the operator runs (as the kubelet updates a
/// mounted Secret). A key added to it trusts what it signed; a key removed from it stops being trusted, and what
/// its commits carry is Blocked with a reason naming the key; a policy that does not parse distrusts everything
/// until it is fixed. No restart, on the real API server.
#[tokio::test]
async fn trust_policy_changes_apply_without_a_restart() {
    use vworkspace_operator::source::policy_watch::{PolicyOrigin, PolicyReload};
    let env = env("rekey").await;
    let dave = Signer::new(&env.tmp.path().join("keys"), "dave@example.com");
    // The control plane's key signs "base"; Dave, not (yet) in the policy, signs "daves" on top.
    let base = env.app_yaml("base", "1.0.0", "");
    env.publish("applicationinstance-base.yaml", &base, true);
    let daves = env.app_yaml("daves", "1.0.0", "");
    env.remote
        .write(&env.path("applicationinstance-daves.yaml"), &daves);
    let dave_commit = env
        .remote
        .commit("dave adds daves", Some(&dave), &dave.email);

    let policy_file = env.tmp.path().join("policy.yaml");
    let write_policy = |text: &str| {
        // Atomically, as the kubelet swaps a Secret volume's files.
        let next = env.tmp.path().join("policy.yaml.next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &policy_file).unwrap();
    };
    let only_cp = policy_yaml(&[&env.signer], "range");
    let with_dave = policy_yaml(&[&env.signer, &dave], "range");
    write_policy(&only_cp);
    let mut config = env.config(None);
    config.repo_mut().unwrap().policy = TrustPolicy::load(&policy_file).unwrap();
    config.policy_reload = Some(PolicyReload {
        origin: PolicyOrigin::File(policy_file.clone()),
        interval: Duration::from_millis(200),
        loaded: only_cp.clone(),
        charts: None,
    });
    let operator = Operator::start(env.client.clone(), config).await.unwrap();
    env.flux_apply(&base).await;
    env.flux_apply(&daves).await;
    let dave_key = fingerprint(&dave);

    // Dave's key is unknown: his intent is Blocked, naming his key and commit; base proceeds.
    let (_, reason, message) = eventually("daves: Blocked, Dave's key unknown", || async {
        blocked(&env.app("daves").await).filter(|b| b.0 == "True")
    })
    .await;
    assert_eq!(reason, "UntrustedSignature");
    assert!(
        message.contains(&dave_key) && message.contains(&dave_commit),
        "{message}"
    );
    eventually("base: rendered", || async {
        env.helm_release("base").await.map(|_| ())
    })
    .await;
    assert!(env.helm_release("daves").await.is_none());

    // Dave's key is added: what he signed is trusted, with no restart.
    write_policy(&with_dave);
    eventually("daves: rendered once Dave's key is trusted", || async {
        let app = env.app("daves").await;
        (app_cond(&app, "Verified") == s("True", "CommitVerified")
            && blocked(&app).is_some_and(|b| b.0 == "False"))
        .then_some(())?;
        env.helm_release("daves").await.map(|_| ())
    })
    .await;
    assert_eq!(
        operator.source.status().last_verified_commit.as_deref(),
        Some(dave_commit.as_str())
    );

    // Dave's key is removed (revoked): the view goes back before his commit, his intent is Blocked naming the
    // key again, base is untouched.
    write_policy(&only_cp);
    let (_, reason, message) = eventually("daves: Blocked after revocation", || async {
        blocked(&env.app("daves").await).filter(|b| b.0 == "True")
    })
    .await;
    assert_eq!(reason, "UntrustedSignature");
    assert!(message.contains(&dave_key), "{message}");
    assert!(blocked(&env.app("base").await).is_some_and(|b| b.0 == "False"));
    assert_ne!(
        operator.source.status().last_verified_commit.as_deref(),
        Some(dave_commit.as_str())
    );

    // A policy that does not parse: nothing is trusted (fail closed), every intent says why.
    write_policy("sshAllowedSigners: [not, a, string]\n");
    for name in ["base", "daves"] {
        eventually(&format!("{name}: Blocked, policy invalid"), || async {
            blocked(&env.app(name).await).filter(|b| b.0 == "True" && b.1 == "TrustPolicyInvalid")
        })
        .await;
    }
    // Fixed: both trusted again.
    write_policy(&with_dave);
    for name in ["base", "daves"] {
        eventually(&format!("{name}: trusted again"), || async {
            blocked(&env.app(name).await)
                .filter(|b| b.0 == "False")
                .map(|_| ())
        })
        .await;
    }
    let text = operator.metrics.encode().unwrap();
    assert!(
        text.contains(r#"vworkspace_operator_trust_policy_reloads_total{result="applied"} 3"#)
            && text
                .contains(r#"vworkspace_operator_trust_policy_reloads_total{result="invalid"} 1"#),
        "{text}"
    );
    operator.stop().await;
}

/// Flux lags behind the operator's view (its source-controller fetches later, or is down): an intent that has not
/// changed since it matched the previous view stays trusted as of that view, not Blocked, until Flux applies the
/// new one. Changing it back to an older signed content is something else (a downgrade by whoever can write it):
/// Blocked.
#[tokio::test]
async fn an_intent_flux_has_not_updated_yet_stays_trusted_and_a_downgrade_is_blocked() {
    let env = env("lag").await;
    let v1 = env.app_yaml("app", "1.0.0", "");
    let first = env.publish("applicationinstance-app.yaml", &v1, true);
    let operator = env.start(None).await;
    env.flux_apply(&v1).await;
    eventually("app: rendered at 1.0.0", || async {
        let oci = env.oci_repository("app").await?;
        (oci["spec"]["ref"]["tag"] == "1.0.0").then_some(())
    })
    .await;

    // A signed commit moves the view to 2.0.0; Flux has not applied it.
    let v2 = env.app_yaml("app", "2.0.0", "");
    let second = env.publish("applicationinstance-app.yaml", &v2, true);
    operator.sync_now().await;
    assert_eq!(
        operator.source.status().last_verified_commit.as_deref(),
        Some(second.as_str())
    );
    // Every intent is reconciled on a new view; give that time, then the lagging one is still trusted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = env.app("app").await;
    assert_eq!(app_cond(&app, "Verified"), s("True", "CommitVerified"));
    assert_eq!(app_cond(&app, "Blocked").map(|c| c.0), Some("False".into()));
    let hr = env.helm_release("app").await.unwrap();
    assert_eq!(
        hr["metadata"]["annotations"]["app.vworkspace.io/intent-commit"],
        first.as_str()
    );

    // Flux applies the view: 2.0.0.
    env.flux_apply(&v2).await;
    eventually("app: rendered at 2.0.0", || async {
        let oci = env.oci_repository("app").await?;
        (oci["spec"]["ref"]["tag"] == "2.0.0").then_some(())
    })
    .await;

    // Changed back to the older signed content by hand: not a lag, Blocked; the children stay at 2.0.0.
    env.flux_apply(&v1).await;
    eventually("app: the downgrade Blocked", || async {
        (app_cond(&env.app("app").await, "Blocked") == s("True", "SpecMismatch")).then_some(())
    })
    .await;
    let oci = env.oci_repository("app").await.unwrap();
    assert_eq!(oci["spec"]["ref"]["tag"], "2.0.0");
    operator.stop().await;
}

/// A new leader (or a restarted operator) that starts while Flux lags behind the newest signed commit has never
/// seen the intent match: the live object is as the commit's parent has it. It neither acts nor says Blocked
/// (`Verdict::Pending`: the status the previous leader wrote stays, no outcome is reported), and acts once Flux
/// applies the commit. A hand edit seen by a fresh process is still Blocked at once.
#[tokio::test]
async fn a_fresh_operator_waits_for_flux_instead_of_blocking_an_intent_it_never_saw_match() {
    let env = env("fresh-lag").await;
    let v1 = env.app_yaml("app", "1.0.0", "");
    let first = env.publish("applicationinstance-app.yaml", &v1, true);
    let operator = env.start(None).await;
    env.flux_apply(&v1).await;
    eventually("app: rendered at 1.0.0 and Verified", || async {
        let oci = env.oci_repository("app").await?;
        (oci["spec"]["ref"]["tag"] == "1.0.0"
            && app_cond(&env.app("app").await, "Verified") == s("True", "CommitVerified"))
        .then_some(())
    })
    .await;
    operator.stop().await;

    // A signed commit moves the branch to 2.0.0 while no operator runs; Flux has not applied it.
    let v2 = env.app_yaml("app", "2.0.0", "");
    let second = env.publish("applicationinstance-app.yaml", &v2, true);
    let fresh = env.start(None).await;
    assert_eq!(
        fresh.source.status().last_verified_commit.as_deref(),
        Some(second.as_str())
    );
    let before = env.app("app").await.unwrap().status;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let app = env.app("app").await;
    assert_eq!(app_cond(&app, "Blocked").map(|c| c.0), Some("False".into()));
    assert_eq!(
        app.unwrap().status,
        before,
        "the fresh operator wrote a status"
    );
    let hr = env.helm_release("app").await.unwrap();
    assert_eq!(
        hr["metadata"]["annotations"]["app.vworkspace.io/intent-commit"],
        first.as_str(),
        "nothing acted on meanwhile"
    );

    // Flux applies it: acted on at once.
    env.flux_apply(&v2).await;
    eventually("app: rendered at 2.0.0", || async {
        let oci = env.oci_repository("app").await?;
        (oci["spec"]["ref"]["tag"] == "2.0.0").then_some(())
    })
    .await;
    fresh.stop().await;

    // A fresh process and a hand edit that no revision has: Blocked without waiting.
    let edited = env.app_yaml("app", "9.9.9", "");
    env.flux_apply(&edited).await;
    let again = env.start(None).await;
    eventually("app: the hand edit Blocked", || async {
        (app_cond(&env.app("app").await, "Blocked") == s("True", "SpecMismatch")).then_some(())
    })
    .await;
    again.stop().await;
}

/// Children in the shared Velero namespace are named `<namespace>-<operation>`, so Operation `x-1` in namespace
/// `<ns>` and Operation `1` in namespace `<ns>-x` render the same Backup name. The Backup made for the other
/// tenant (written here as the operator wrote it for that tenant: its operation labels name it) is neither
/// followed as this Operation's child nor deleted: the Operation fails naming the owner.
#[tokio::test]
async fn a_child_made_for_another_tenant_under_the_same_name_is_neither_followed_nor_deleted() {
    let env = env("collide").await;
    let other_ns = format!("{}-x", env.ns);
    let name = format!("{}-x-1", env.ns);
    let foreign = json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero", "labels": {
            "app.vworkspace.io/managed-by": "vworkspace-operator",
            "ops.vworkspace.io/operation-namespace": other_ns, "ops.vworkspace.io/operation-name": "1"}},
        "spec": {"includedNamespaces": [other_ns]},
    });
    let ar = testbed::api_resource(&env.client, &foreign).await;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "velero", &ar);
    api.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(foreign).unwrap(),
    )
    .await
    .unwrap();
    let app = env.app_yaml("app", "1.0.0", "");
    let backup = env.op_yaml("x-1", "app", "Backup", "velero", "{}", "");
    env.remote.write(&env.path("app.yaml"), &app);
    env.remote.write(&env.path("backup.yaml"), &backup);
    env.remote
        .commit("ops", Some(&env.signer), &env.signer.email);
    let operator = env.start(None).await;
    env.flux_apply(&app).await;
    env.flux_apply(&backup).await;
    let failed = eventually("the colliding Backup Operation fails", || async {
        let op = env.op("x-1").await;
        if op_phase(&op).as_deref() != Some("Failed") {
            return None;
        }
        condition(&op?.status?.conditions, "Failed")
    })
    .await;
    assert_eq!(failed.1, "EngineFailed");
    let message = env
        .op("x-1")
        .await
        .and_then(|o| o.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Failed"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains(&format!("belongs to Operation {other_ns}/1")),
        "{message}"
    );
    Api::<Operation>::namespaced(env.client.clone(), &env.ns)
        .delete("x-1", &Default::default())
        .await
        .unwrap();
    eventually("the Operation is gone", || async {
        env.op("x-1").await.is_none().then_some(())
    })
    .await;
    let still = env.dynamic("velero.io/v1", "Backup", "velero", &name).await;
    assert!(
        still.is_some_and(|b| b["metadata"]["deletionTimestamp"].is_null()),
        "the other tenant's Backup was deleted"
    );
    operator.stop().await;
}

/// An untrusted pusher's commit (unsigned) holding twenty thousand nested trees under the cluster path. Before
/// the bounds (crates/core/src/git/bounds.rs) the operator's Git view walked it recursively on the blocking pool and the
/// process died of a stack overflow, again after every restart. Now the operator syncs it (the same sync its
/// loop runs, on the same pool), refuses it, and keeps serving: the verified intent keeps its HelmRelease and a
/// new live intent is still judged.
#[tokio::test]
async fn a_hostile_unsigned_head_is_refused_and_the_operator_keeps_serving() {
    use gix::objs::tree::{Entry, EntryKind};
    let env = env("hostile").await;
    let good = env.app_yaml("good", "6.6.4", "");
    env.publish("applicationinstance-good.yaml", &good, true);
    let operator = env.start(None).await;
    env.flux_apply(&good).await;
    eventually("HelmRelease", || env.helm_release("good")).await;

    let repo = gix::open(&env.remote.bare).unwrap();
    let entry = |name: &str, kind: EntryKind, oid| Entry {
        mode: kind.into(),
        filename: name.into(),
        oid,
    };
    let blob = repo.write_blob(b"a: 1\n").unwrap().detach();
    let mut deep = repo
        .write_object(gix::objs::Tree {
            entries: vec![entry("a.yaml", EntryKind::Blob, blob)],
        })
        .unwrap()
        .detach();
    for _ in 0..20_000 {
        deep = repo
            .write_object(gix::objs::Tree {
                entries: vec![entry("d", EntryKind::Tree, deep)],
            })
            .unwrap()
            .detach();
    }
    let parent = repo.rev_parse_single("refs/heads/main").unwrap().detach();
    let base = repo
        .find_commit(parent)
        .unwrap()
        .tree_id()
        .unwrap()
        .detach();
    let mut editor = repo.edit_tree(base).unwrap();
    editor
        .upsert(env.path("d").as_str(), EntryKind::Tree, deep)
        .unwrap();
    let tree = editor.write().unwrap().detach().to_string();
    let parent = parent.to_string();
    let bare = env.remote.bare.clone();
    let hostile = env.remote.git(
        &bare,
        &[
            "-c",
            "user.name=mallory",
            "-c",
            "user.email=mallory@example.com",
            "commit-tree",
            &tree,
            "-p",
            &parent,
            "-m",
            "deep trees",
        ],
    );
    env.remote
        .git(&bare, &["update-ref", "refs/heads/main", hostile.trim()]);

    let outcome = operator.sync_now().await;
    assert!(
        !format!("{outcome:?}").contains("sync task failed"),
        "{outcome:?}"
    );
    env.flux_apply(&env.app_yaml("ghost", "6.6.4", "")).await;
    eventually("the new intent judged", || async {
        app_cond(&env.app("ghost").await, "Blocked").filter(|c| c.0 == "True")
    })
    .await;
    assert!(env.helm_release("good").await.is_some());
    assert!(env.helm_release("ghost").await.is_none());
    operator.stop().await;
}

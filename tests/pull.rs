//! Pull mode end to end: a control plane on loopback (tests/support/control_plane.rs, a real HTTP server with the
//! upstream mock's quirks), the test bed's real API server, and the operator as its own process (`run --mode
//! pull`). Jobs are signed with the `sign-job` command and a key made by ssh-keygen.
//!
//! Played: helm-controller (no chart can install here), by `support::helm_standin`, which writes the Ready status
//! helm-controller writes; and the Job controller (the test bed runs no kube-controller-manager), by writing the
//! status it writes for a Job that succeeded.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::control_plane::{ControlPlane, Fault};
use support::helm_standin;
use support::testbed::{self, free_port};
use vworkspace_operator::api::{ApplicationInstance, Cluster, Operation};
use vworkspace_operator::trace::{self, OriginInfo, Target};

struct PullEnv {
    tmp: tempfile::TempDir,
    client: Client,
    cp: ControlPlane,
    cluster: String,
    /// The gated namespace intents go to.
    ns: String,
    /// The operator's namespace (credentials Secret, registration token, applied-job store).
    sys: String,
    /// The control plane's private key (ssh-keygen) and its public line.
    key: PathBuf,
    operator: Option<Child>,
    helm: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for PullEnv {
    fn drop(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(h) = self.helm.take() {
            h.abort();
        }
    }
}

/// A cluster registered with nothing yet: its namespaces, its Cluster object naming the control plane and the
/// registration token Secret, and a control-plane key. `signed`: the trust policy names that key.
async fn pull_env(name: &str, signed: bool) -> PullEnv {
    let client = testbed::client().await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&client, &crds).await;
    let cluster = format!("pull-{name}");
    let ns = format!("pull-{name}-apps");
    let sys = format!("pull-{name}-system");
    testbed::namespace(&client, &ns, true).await;
    testbed::namespace(&client, &sys, false).await;
    let cp = ControlPlane::start().await;
    let registration = format!("reg-{name}-{}", fastrand::u32(..));
    cp.add_registration_token(&registration);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &sys);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "registration"},
                "stringData": {"registrationToken": registration},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let clusters: Api<Cluster> = Api::all(client.clone());
    clusters
        .patch(
            &cluster,
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(json!({
                "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Cluster",
                "metadata": {"name": cluster},
                "spec": {"clusterId": cluster, "connectivityMode": "pull", "controlPlaneEndpoint": cp.url(),
                    "registrationTokenSecretRef": {"name": "registration"}},
            })),
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("cp-key");
    let public = support::gitfix::ed25519_key(&key);
    let policy = if signed {
        format!(
            "controlPlaneKeys:\n  - name: cp-2026\n    key: \"{}\"\n",
            public.trim()
        )
    } else {
        // No control-plane key: jobs need no signature (session trust only). A policy must trust some key.
        format!("sshAllowedSigners: \"git@example.com {}\"\n", public.trim())
    };
    std::fs::write(tmp.path().join("policy.yaml"), policy).unwrap();
    let hr = testbed::api_resource(
        &client,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let helm = helm_standin::play(client.clone(), hr, &cluster, "1.0.0", 4);
    PullEnv {
        tmp,
        client,
        cp,
        cluster,
        ns,
        sys,
        key,
        operator: None,
        helm: Some(helm),
    }
}

impl PullEnv {
    fn log(&self) -> PathBuf {
        self.tmp.path().join("operator.log")
    }

    fn start_operator(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
            .env("KUBECONFIG", &testbed::server().kubeconfig)
            .env("RUST_LOG", "info")
            .args([
                "run",
                "--mode",
                "pull",
                "--log-format",
                "text",
                "--allow-insecure-http",
            ])
            .args([
                "--poll-wait",
                "2s",
                "--job-deadline",
                "60s",
                "--leader-election",
                "false",
            ])
            .arg(format!("--cluster-id={}", self.cluster))
            .arg(format!("--operator-namespace={}", self.sys))
            .arg("--policy")
            .arg(self.tmp.path().join("policy.yaml"))
            .arg("--state-dir")
            .arg(self.tmp.path().join("state"))
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the operator");
        self.operator = Some(child);
    }

    /// SIGKILL the operator.
    /// SIGKILL the operator, and wait until the control plane has let go of its long poll.
    async fn kill_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            child.kill().unwrap();
            let _ = child.wait();
        }
        self.cp.no_poll_waiting(30).await;
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A job, signed with the control plane's key by `sign-job` when `sign`.
    fn job(
        &self,
        id: &str,
        kind: &str,
        payload: Value,
        idem: &str,
        expires: &str,
        sign: bool,
    ) -> Value {
        let job = json!({"id": id, "kind": kind, "payload": payload, "idempotencyKey": idem,
            "createdAt": jiff::Timestamp::now().to_string(), "expiresAt": expires});
        if !sign {
            return job;
        }
        sign_with(&self.key, &self.cluster, &job)
    }

    fn app(&self, i: usize, version: &str, greeting: &str) -> Value {
        serde_saphyr::from_str(&support::manifests::nextcloud_app(
            &self.cluster,
            &self.ns,
            i,
            version,
            &format!("{{greeting: {greeting}}}"),
        ))
        .unwrap()
    }

    async fn get_app(&self, name: &str) -> Option<ApplicationInstance> {
        Api::<ApplicationInstance>::namespaced(self.client.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        self.get_app(name)
            .await?
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    async fn eventually<T, F, Fut>(&self, what: &str, secs: u64, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for: {what}\n-- operator log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first result posted for a job (with the operator's log if none comes within `secs`).
    async fn result(&self, id: &str, secs: u64) -> Value {
        self.eventually(&format!("a result for job {id}"), secs, || async {
            self.cp.results(id).first().cloned()
        })
        .await
    }

    async fn cluster_obj(&self) -> Cluster {
        Api::<Cluster>::all(self.client.clone())
            .get(&self.cluster)
            .await
            .unwrap()
    }

    async fn cluster_condition(&self, type_: &str) -> Option<(String, String)> {
        self.cluster_obj()
            .await
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason))
    }
}

/// What an admin does after re-issuing a credential: the new token into the credentials Secret.
async fn put_token(secrets: &Api<k8s_openapi::api::core::v1::Secret>, token: &str) {
    secrets
        .patch(
            "vworkspace-agent-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": token}})),
        )
        .await
        .unwrap();
}

/// `vworkspace-operator sign-job --key KEY --cluster-id ID` on one job.
fn sign_with(key: &std::path::Path, cluster: &str, job: &Value) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .args(["sign-job", "--cluster-id", cluster, "--key"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        &serde_json::to_vec(job).unwrap(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign-job: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sign `job` as a control plane whose canonical JSON takes any number (no I-JSON check, unlike `sign-job`).
fn sign_canonical(key: &std::path::Path, cluster: &str, job: &mut Value) {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    use vworkspace_operator::source::pull::{jcs, signing};
    let key = signing::parse_private_key(&std::fs::read_to_string(key).unwrap()).unwrap();
    let envelope = json!({"v": signing::SIGNATURE_VERSION, "clusterId": cluster, "id": job["id"],
        "kind": job["kind"], "idempotencyKey": job["idempotencyKey"], "expiresAt": job["expiresAt"],
        "payload": job["payload"]});
    let bytes = jcs::canonicalize(&envelope).unwrap();
    job["signature"] = json!(
        base64::engine::general_purpose::STANDARD.encode(key.sign(bytes.as_bytes()).to_bytes())
    );
}

fn in_minutes(m: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(m)).to_string()
}

/// The story: register, a signed ApplicationInstance job applied and Ready with `succeeded` and its appliedRef,
/// an Operation job to Succeeded, a replay and an expired job as `noop`, a delete job; then a hand edit Blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_applies_and_reports_jobs_to_their_outcome() {
    let mut env = pull_env("story", true).await;
    env.start_operator();

    // Registration: the credential lands in its Secret; the Cluster says Connected and Authenticated.
    env.eventually("the Cluster Connected", 60, || async {
        (env.cluster_condition("Connected").await? == ("True".into(), "RoundTripOK".into()))
            .then_some(())
    })
    .await;
    let secret =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), &env.sys)
            .get("vworkspace-agent-credentials")
            .await
            .unwrap();
    let data = secret.data.unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert!(env.cp.lock().tokens.contains_key(&token));
    let status = env.cluster_obj().await.status.unwrap();
    assert_eq!(
        status.observed_token.as_deref(),
        Some(vworkspace_operator::source::pull::agent::fingerprint(&token).as_str())
    );
    assert_eq!(
        env.cluster_condition("Authenticated").await.unwrap().0,
        "True"
    );
    assert_eq!(env.cp.requests("register"), 1);

    // An ApplicationInstance job, signed. It allows RunCommand Operations on the Job engine (below).
    let mut web = env.app(1, "1.0.0", "hello");
    web["metadata"]["annotations"] = json!({"ops.vworkspace.io/runcommand": "job"});
    let job = env.job(
        "job-web-1",
        "intent",
        json!({"intent": "ensure-application-instance", "applicationInstance": web}),
        "web-v1",
        &in_minutes(30),
        true,
    );
    env.cp.push([job]);
    let result = env.result("job-web-1", 90).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let app = env.get_app("app-1").await.unwrap();
    assert_eq!(result["appliedRef"]["kind"], "ApplicationInstance");
    assert_eq!(result["appliedRef"]["name"], "app-1");
    assert_eq!(
        result["appliedRef"]["uid"].as_str(),
        app.metadata.uid.as_deref()
    );
    assert_eq!(env.cp.lock().acks["job-web-1"], 1);
    let (ready, reason, _) = env.condition("app-1", "Ready").await.unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("True", "HelmReleaseReady")
    );
    let (verified, vreason, vmessage) = env.condition("app-1", "Verified").await.unwrap();
    assert_eq!(
        (verified.as_str(), vreason.as_str()),
        ("True", "JobVerified")
    );
    assert!(
        vmessage.contains("job-web-1") && vmessage.contains("cp-2026"),
        "{vmessage}"
    );
    // `trace` of a Pull intent: the job it came from and the control-plane key that signed it.
    let target = Target::parse(&format!("ai/{}/app-1", env.ns)).unwrap();
    let t = trace::collect(env.client.clone(), &target, &Default::default())
        .await
        .unwrap();
    let OriginInfo::Pull {
        job_id,
        signer,
        idempotency_key,
        received,
        verdict,
    } = &t.origin
    else {
        panic!("{:?}", t.origin)
    };
    assert_eq!(job_id.as_deref(), Some("job-web-1"));
    assert_eq!(signer.as_deref(), Some("cp-2026"));
    assert!(
        verdict.starts_with("verified: the payload of job job-web-1"),
        "{verdict}"
    );
    // The applied-job store (readable here) gives the idempotency key and when the job was received.
    assert!(
        idempotency_key.is_some() && received.is_some(),
        "{:?}",
        t.origin
    );
    assert!(trace::text::text(&t).contains("Pull: a job from the control plane"));
    // Statuses on the way: Applied, then the conditions as they changed.
    let statuses = env.cp.statuses("job-web-1");
    assert_eq!(statuses[0]["phase"], "Applied", "{statuses:?}");
    assert!(
        statuses.iter().any(|s| s["phase"] == "Ready"),
        "{statuses:?}"
    );
    // The child names the job, as a GitOps child names its commit.
    let hr = testbed::get(
        &env.client,
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        &env.ns,
        "app-1",
    )
    .await
    .unwrap();
    assert_eq!(
        hr["metadata"]["annotations"]["app.vworkspace.io/intent-job"],
        "job-web-1"
    );

    // The same idempotency key again (a new job id): noop; an expired job: noop/expired. Nothing applied.
    let replay = env.job("job-web-1b", "intent",
        json!({"intent": "ensure-application-instance", "applicationInstance": env.app(1, "1.0.0", "changed")}),
        "web-v1", &in_minutes(30), true);
    let expired = env.job(
        "job-old",
        "apply",
        env.app(2, "1.0.0", "late"),
        "old",
        &in_minutes(-1),
        true,
    );
    env.cp.push([replay, expired]);
    let r = env.result("job-web-1b", 30).await;
    assert_eq!(r["outcome"], "noop", "{r}");
    let r = env.result("job-old", 30).await;
    assert_eq!(
        (r["outcome"].as_str(), r["error"].as_str()),
        (Some("noop"), Some("expired"))
    );
    assert!(env.get_app("app-2").await.is_none());
    let app = env.get_app("app-1").await.unwrap();
    assert_eq!(
        app.spec.values.as_ref().unwrap().inline.as_ref().unwrap()["greeting"],
        "hello"
    );

    // An Operation job (RunCommand on the Job engine) to Succeeded: the test plays the Job controller.
    let op = json!({"apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
        "metadata": {"name": "scan", "namespace": env.ns},
        "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "app-1"},
            "type": "RunCommand", "engine": "job",
            "parameters": {"image": "docker.io/library/busybox:1.37", "command": ["true"]}}});
    let job = env.job(
        "job-scan",
        "intent",
        json!({"intent": "request-operation", "operation": op}),
        "scan",
        &in_minutes(30),
        true,
    );
    env.cp.push([job]);
    let engine = env
        .eventually("the Operation's Job", 60, || async {
            let op = Api::<Operation>::namespaced(env.client.clone(), &env.ns)
                .get_opt("scan")
                .await
                .ok()??;
            op.status?.engine_ref
        })
        .await;
    Api::<k8s_openapi::api::batch::v1::Job>::namespaced(env.client.clone(), &engine.namespace)
        .patch_status(
            &engine.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "startTime": "2026-11-21T00:00:00Z", "completionTime": "2026-11-21T00:01:00Z", "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "done", "lastTransitionTime": "2026-11-21T00:01:00Z"},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "done", "lastTransitionTime": "2026-11-21T00:01:00Z"}]}})),
        )
        .await
        .unwrap();
    let r = env.result("job-scan", 60).await;
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert_eq!(r["appliedRef"]["kind"], "Operation");

    // A hand edit after the Pull apply: Blocked SpecMismatch, nothing re-rendered from it.
    Api::<ApplicationInstance>::namespaced(env.client.clone(), &env.ns)
        .patch(
            "app-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"chart": {"version": "9.9.9"}}})),
        )
        .await
        .unwrap();
    let (_, reason, message) = env
        .eventually("app-1 Blocked after a hand edit", 60, || async {
            env.condition("app-1", "Blocked")
                .await
                .filter(|c| c.0 == "True")
        })
        .await;
    assert_eq!(reason, "SpecMismatch", "{message}");
    assert!(message.contains("job-web-1"), "{message}");
    let source = testbed::get(
        &env.client,
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        &env.ns,
        "app-1",
    )
    .await
    .unwrap();
    assert_eq!(
        source["spec"]["ref"]["tag"], "1.0.0",
        "the edit was not rendered"
    );

    // A delete job: the instance and its children go; succeeded once it is gone.
    let del = env.job(
        "job-del",
        "intent",
        json!({"intent": "delete-application-instance", "name": "app-1", "namespace": env.ns}),
        "del-1",
        &in_minutes(30),
        true,
    );
    env.cp.push([del]);
    let r = env.result("job-del", 60).await;
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert!(env.get_app("app-1").await.is_none());

    // Every job has exactly one result.
    for (id, results) in env.cp.lock().results.iter() {
        assert_eq!(results.len(), 1, "{id}: {results:?}");
    }
}

/// With control-plane keys in the trust policy, an unsigned job and a forged one (signed by another key, and a
/// signed job altered after signing) are refused with a precise error and an audit event; nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_and_altered_jobs_are_refused_and_nothing_is_applied() {
    let mut env = pull_env("forged", true).await;
    env.start_operator();
    let other = env.tmp.path().join("other-key");
    support::gitfix::ed25519_key(&other);
    let unsigned = env.job(
        "job-unsigned",
        "apply",
        env.app(1, "1.0.0", "x"),
        "u",
        &in_minutes(30),
        false,
    );
    let mut forged = json!({"id": "job-forged", "kind": "apply", "payload": env.app(2, "1.0.0", "x"),
        "idempotencyKey": "f", "expiresAt": in_minutes(30)});
    forged = sign_with(&other, &env.cluster, &forged);
    let mut altered = env.job(
        "job-altered",
        "apply",
        env.app(3, "1.0.0", "x"),
        "a",
        &in_minutes(30),
        true,
    );
    altered["payload"]["spec"]["chart"]["version"] = json!("6.6.6");
    let other_cluster = sign_with(
        &env.key,
        "another-cluster",
        &json!({"id": "job-elsewhere", "kind": "apply", "payload": env.app(4, "1.0.0", "x"),
            "idempotencyKey": "e", "expiresAt": in_minutes(30)}),
    );
    // Malleated: signed with n = 2^53 (canonical JSON writes 2^53 + 1 the same way, so the signature is the
    // same), sent with n = 2^53 + 1.
    let mut malleated = json!({"id": "job-malleated", "kind": "apply", "payload": env.app(5, "1.0.0", "x"),
        "idempotencyKey": "m", "expiresAt": in_minutes(30)});
    malleated["payload"]["spec"]["values"]["inline"]["n"] = json!(9007199254740992u64);
    sign_canonical(&env.key, &env.cluster, &mut malleated);
    malleated["payload"]["spec"]["values"]["inline"]["n"] = json!(9007199254740993u64);
    env.cp
        .push([unsigned, forged, altered, other_cluster, malleated]);
    for (id, reason) in [
        ("job-unsigned", "JobUnsigned"),
        ("job-forged", "JobPayloadSignatureInvalid"),
        ("job-altered", "JobPayloadSignatureInvalid"),
        ("job-elsewhere", "JobPayloadSignatureInvalid"),
        (
            "job-malleated",
            "JobNotIJson: job job-malleated: payload.spec.values.inline.n: 9007199254740993",
        ),
    ] {
        let r = env.result(id, 60).await;
        assert_eq!(r["outcome"], "failed", "{id}: {r}");
        assert!(
            r["error"].as_str().unwrap().starts_with(reason),
            "{id}: {r}"
        );
    }
    for i in 1..=5 {
        assert!(
            env.get_app(&format!("app-{i}")).await.is_none(),
            "app-{i} was applied"
        );
    }
    // The audit events reach the control plane.
    env.eventually("four audit events", 30, || async {
        let events = env.cp.lock().events.clone();
        let audits: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "JobPayloadSignatureInvalid")
            .collect();
        (audits.len() >= 4).then_some(())
    })
    .await;
}

/// Without control-plane keys (session trust only). A replay after the operator restarted is still a `noop`
/// (the applied-job store is durable); a result the control plane could not take (down) is kept across a SIGKILL
/// and posted once it is back; jobs queued while the operator was down are applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_owed_results_survive_a_restart_and_an_outage() {
    let mut env = pull_env("restart", false).await;
    env.start_operator();
    let a = env.job(
        "job-a",
        "apply",
        env.app(1, "1.0.0", "a"),
        "key-a",
        &in_minutes(30),
        false,
    );
    env.cp.push([a]);
    assert_eq!(env.result("job-a", 90).await["outcome"], "succeeded");
    let (_, _, message) = env.condition("app-1", "Verified").await.unwrap();
    assert!(message.contains("unsigned"), "{message}");

    // Killed; meanwhile a replay of A and a new job B are queued.
    env.kill_operator().await;
    let a2 = env.job(
        "job-a2",
        "apply",
        env.app(1, "1.0.0", "a-again"),
        "key-a",
        &in_minutes(30),
        false,
    );
    let b = env.job(
        "job-b",
        "apply",
        env.app(2, "1.0.0", "b"),
        "key-b",
        &in_minutes(30),
        false,
    );
    env.cp.push([a2, b]);
    env.start_operator();
    // Hang guards, not timing: the restarted operator's start-up can take most of a minute on a loaded machine.
    assert_eq!(env.result("job-a2", 240).await["outcome"], "noop");
    assert_eq!(env.result("job-b", 240).await["outcome"], "succeeded");
    let app1 = env.get_app("app-1").await.unwrap();
    assert_eq!(
        app1.spec.values.as_ref().unwrap().inline.as_ref().unwrap()["greeting"],
        "a",
        "the replay was not applied"
    );

    // The control plane goes down once job C is acked: C reaches its outcome, its result is owed.
    let c = env.job(
        "job-c",
        "apply",
        env.app(3, "1.0.0", "c"),
        "key-c",
        &in_minutes(30),
        false,
    );
    env.cp.lock().down_after_ack = Some("job-c".into());
    env.cp.push([c]);
    env.eventually("job C acked", 60, || async {
        env.cp.lock().acks.contains_key("job-c").then_some(())
    })
    .await;
    assert!(env.cp.lock().down, "down from the ack of job C on");
    env.eventually(
        "app-3 Ready while the control plane is down",
        90,
        || async {
            env.condition("app-3", "Ready")
                .await
                .filter(|c| c.0 == "True")
        },
    )
    .await;
    // The owed result is in the store before the process dies.
    let store =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &env.sys);
    env.eventually("job C's outcome stored, not posted", 30, || async {
        let cm = store.get_opt("vworkspace-applied-jobs").await.ok()??;
        let text = cm.data?.get("applied-jobs.json")?.clone();
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["jobs"]["key-c"]["outcome"] == "succeeded" && v["jobs"]["key-c"]["posted"] == false)
            .then_some(())
    })
    .await;
    env.kill_operator().await;
    let d = env.job(
        "job-d",
        "apply",
        env.app(4, "1.0.0", "d"),
        "key-d",
        &in_minutes(30),
        false,
    );
    env.cp.push([d]);
    env.start_operator();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.cp.results("job-c").is_empty());
    env.cp.lock().down = false;
    let back = std::time::Instant::now();
    // Generous deadlines (a hang guard, not a timing assertion): on a loaded machine the restarted operator's
    // start-up (discovery, lists, the store read) alone can take most of a minute. How long recovery took is
    // printed below.
    let r = env
        .eventually("job-c's owed result posted", 240, || async {
            env.cp.results("job-c").first().cloned()
        })
        .await;
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert_eq!(r["appliedRef"]["name"], "app-3");
    let d = env
        .eventually("job-d's result posted", 240, || async {
            env.cp.results("job-d").first().cloned()
        })
        .await;
    assert_eq!(d["outcome"], "succeeded", "{d}");
    // Measured, not asserted (docs/pull.md): how long after the control plane came back the owed result and
    // the queued job were through.
    eprintln!(
        "Pull recovery: job-c's owed result and job-d's result {:.1} s after the control plane came back",
        back.elapsed().as_secs_f64()
    );
    // Nothing lost, nothing applied twice. A result is delivered at least once: a SIGKILL between posting a
    // result and recording that it was posted makes the restarted operator post it again, which the control
    // plane answers 409 (already recorded), as the contract says. Every post of a job is the same result.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in ["job-a", "job-a2", "job-b", "job-c", "job-d"] {
        let posts = env.cp.results(id);
        assert!(!posts.is_empty(), "{id}: no result");
        assert!(posts.iter().all(|p| *p == posts[0]), "{id}: {posts:?}");
    }
    assert_eq!(
        env.get_app("app-1").await.unwrap().metadata.generation,
        Some(1),
        "app-1 applied once (the replay changed nothing)"
    );
}

/// The documented error handling: 401 re-reads the credential and retries once, then waits for a new one; a
/// rotation asked by annotation; 403 stops until the credential changes; 429 waits `Retry-After`; 5xx backs
/// off (never faster than once a second) and says Disconnected while it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rotation_and_error_handling() {
    let mut env = pull_env("errors", true).await;
    env.cp.lock().strict_401 = true;
    env.start_operator();
    let job = |env: &PullEnv, n: usize| {
        env.job(
            &format!("job-{n}"),
            "apply",
            env.app(n, "1.0.0", "x"),
            &format!("k-{n}"),
            &in_minutes(30),
            true,
        )
    };
    env.cp.push([job(&env, 1)]);
    assert_eq!(env.result("job-1", 90).await["outcome"], "succeeded");
    let secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), &env.sys);
    let token_now = || async {
        let s = secrets.get("vworkspace-agent-credentials").await.unwrap();
        String::from_utf8(s.data.unwrap()["token"].0.clone()).unwrap()
    };

    // 401: the credential is revoked. The operator retries once, then stops and says so.
    env.cp.revoke_tokens();
    let (status, reason) = env
        .eventually("Authenticated=False after 401", 60, || async {
            env.cluster_condition("Authenticated")
                .await
                .filter(|c| c.0 == "False")
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ControlPlaneAuthenticationFailed")
    );
    let polls_then = env.cp.lock().polls.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        env.cp.lock().polls.len() <= polls_then + 1,
        "kept polling with a refused credential"
    );
    // An admin puts a new credential in the Secret: polling resumes.
    let fresh = env.cp.issue_token(&env.cluster);
    put_token(&secrets, &fresh).await;
    env.cp.push([job(&env, 2)]);
    assert_eq!(env.result("job-2", 90).await["outcome"], "succeeded");

    // Rotation by annotation: a new token in the Secret, the old one invalid.
    Api::<Cluster>::all(env.client.clone())
        .patch(
            &env.cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"ops.vworkspace.io/rotate-credentials": "2026-12-04"}}})),
        )
        .await
        .unwrap();
    env.eventually("the credential rotated", 60, || async {
        let t = token_now().await;
        (t != fresh).then_some(())
    })
    .await;
    assert_eq!(env.cp.requests("rotate"), 1);
    assert!(!env.cp.lock().tokens.contains_key(&fresh));
    env.cp.push([job(&env, 3)]);
    assert_eq!(env.result("job-3", 90).await["outcome"], "succeeded");
    assert_eq!(
        env.cp.requests("rotate"),
        1,
        "rotated once for one annotation value"
    );

    // 429 with Retry-After: 3 → the next poll comes no sooner.
    let gap_after = |status: u16| {
        let s = env.cp.lock();
        let i = s.polls.iter().rposition(|p| p.1 == status)?;
        s.polls
            .get(i + 1)
            .map(|next| next.0.duration_since(s.polls[i].0))
    };
    env.cp.lock().faults.push_back(Fault {
        status: 429,
        retry_after: Some("3".into()),
    });
    let gap = env
        .eventually("a poll after the 429", 60, || async { gap_after(429) })
        .await;
    eprintln!(
        "measured: poll after 429 with Retry-After 3: {:.2} s",
        gap.as_secs_f64()
    );
    assert!(gap >= Duration::from_secs(3), "{gap:?}");

    // 5xx: backoff, never faster than once a second; Disconnected after three in a row; then back.
    for _ in 0..4 {
        env.cp.lock().faults.push_back(Fault {
            status: 500,
            retry_after: None,
        });
    }
    env.eventually(
        "Connected=False while the control plane fails",
        60,
        || async {
            env.cluster_condition("Connected")
                .await
                .filter(|c| c.0 == "False")
        },
    )
    .await;
    env.eventually("Connected again", 90, || async {
        env.cluster_condition("Connected")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;
    let gaps: Vec<f64> = {
        let s = env.cp.lock();
        s.polls
            .windows(2)
            .filter(|w| w[0].1 == 500)
            .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64())
            .collect()
    };
    eprintln!("measured: polls after each 500: {gaps:?} s");
    assert!(
        gaps.len() >= 4 && gaps.iter().all(|g| *g >= 0.5),
        "{gaps:?}"
    );
    env.cp.push([job(&env, 4)]);
    assert_eq!(env.result("job-4", 90).await["outcome"], "succeeded");

    // 403: no retry; the cluster waits for a new credential.
    env.cp.lock().strict_401 = false;
    env.cp.revoke_tokens();
    env.eventually("Authenticated=False after 403", 60, || async {
        env.cluster_condition("Authenticated")
            .await
            .filter(|c| c.0 == "False")
    })
    .await;
    let polls_then = env.cp.lock().polls.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.cp.lock().polls.len(), polls_then, "retried after 403");
    let fresh = env.cp.issue_token(&env.cluster);
    put_token(&secrets, &fresh).await;
    env.cp.push([job(&env, 5)]);
    assert_eq!(env.result("job-5", 90).await["outcome"], "succeeded");
    env.eventually("Authenticated again", 60, || async {
        env.cluster_condition("Authenticated")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;

    // The control-plane key is revoked (removed from the policy, another key in its place): within the reload
    // interval every intent applied from a job it signed is judged again and Blocked, naming the key.
    let other = env.tmp.path().join("next-key");
    let next = support::gitfix::ed25519_key(&other);
    std::fs::write(
        env.tmp.path().join("policy.yaml"),
        format!(
            "controlPlaneKeys:\n  - name: cp-2027\n    key: \"{}\"\n",
            next.trim()
        ),
    )
    .unwrap();
    let (_, reason, message) = env
        .eventually("app-5 Blocked after the key is revoked", 60, || async {
            env.condition("app-5", "Blocked")
                .await
                .filter(|c| c.0 == "True")
        })
        .await;
    assert_eq!(reason, "JobPayloadSignatureInvalid", "{message}");
    assert!(
        message.contains("cp-2026") && message.contains("job-5"),
        "{message}"
    );
}

//! Admission on the test bed's real kube-apiserver: the CRDs' CEL rules, the ValidatingAdmissionPolicy and the
//! operator's validating webhook (served in this process over real HTTPS, certificates issued and rotated by
//! the operator's own code, caBundle kept current in the real ValidatingWebhookConfiguration).
//!
//! One test, in phases, because the policy and the webhook configuration are cluster-wide objects of this
//! binary's API server:
//! 1. every document of `examples/invalid` through `kubectl apply`: refused exactly when `render` refuses it,
//!    with render's words (the structural schema's problems in the API server's own words, same field), and
//!    nothing refused reaches the cluster;
//! 2. the valid cluster repo (`examples/cluster-repo`) is admitted;
//! 3. UPDATEs that break immutability are refused (the CRDs' transition rules); the rules that need other
//!    objects or the approval key: a forged approval claim refused, a signed one admitted with the conflict
//!    matrix's warning, a dry run with a missing target warned (not refused), the namespace's allowed-types
//!    annotation and the managed-by label enforced by the policy;
//! 4. the serving certificate and the CA rotate while requests keep being admitted;
//! 5. with the webhook down, intents in gated namespaces are refused (fail closed) and nothing else is affected.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::stack::kubectl;
use support::testbed;
use vworkspace_operator::intent::IntentKind;
use vworkspace_operator::intent::source::load_dir;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::tree::render_tree;
use vworkspace_operator::validate;
use vworkspace_operator::webhook::{self, CertSource, WebhookConfig, WebhookServer, certs};

const CLUSTER: &str = "eu-prod-1";
const SECRET_NS: &str = "vworkspace-system";
const SECRET: &str = "webhook-tls";
/// The approval key the webhook checks claims with (the control plane's HMAC secret).
const APPROVAL_KEY: &[u8] = b"admission-test-approval-key";

/// A claim for the Operation `op` (a manifest) as it is written, signed with [`APPROVAL_KEY`] as the control
/// plane signs it.
fn claim(op: &Value) -> String {
    use vworkspace_operator::validate::approval;
    let now = jiff::Timestamp::now().as_second();
    let spec = serde_json::from_value(op["spec"].clone()).unwrap();
    approval::sign_claim(
        APPROVAL_KEY,
        &approval::ClaimPayload {
            at: jiff::Timestamp::now().to_string(),
            by: "alice@example.com".into(),
            exp: now + 3600,
            op: op["metadata"]["name"].as_str().unwrap().into(),
            rid: 7,
            spec: approval::spec_digest(op["metadata"]["namespace"].as_str().unwrap(), &spec),
            v: approval::VERSION,
        },
    )
    .unwrap()
}

/// A restore with a claim for exactly what it asks.
fn signed_restore(name: &str, target: &str) -> Value {
    let mut op = restore(name, target, "");
    op["spec"]["approvals"]["claim"] = json!(claim(&op));
    op
}

fn restore(name: &str, target: &str, claim: &str) -> Value {
    json!({
        "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
        "metadata": {"name": name, "namespace": "team-alpha", "labels": {
            "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER}},
        "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                               "name": target},
                 "type": "Restore", "engine": "velero", "parameters": {"backupName": "team-alpha-nightly"},
                 "approvals": {"required": true, "claim": claim}}
    })
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn renderer() -> Renderer {
    Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some(CLUSTER.into()),
            ..RenderOptions::default()
        },
    )
}

/// `kubectl apply -f` of one object; (succeeded, stdout + stderr).
fn kubectl_apply(dir: &Path, object: &Value, extra: &[&str]) -> (bool, String) {
    let file = dir.join("object.yaml");
    std::fs::write(&file, serde_json::to_string(object).unwrap()).unwrap();
    let mut args = vec!["apply", "-f", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = kubectl(&args);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `kubectl patch` (merge) of one intent in team-alpha; (succeeded, stderr).
fn patch(kind: &str, name: &str, extra: &[&str], body: &str) -> (bool, String) {
    let mut args = vec![
        "patch",
        "-n",
        "team-alpha",
        kind,
        name,
        "--type=merge",
        "-p",
        body,
    ];
    args.extend_from_slice(extra);
    let out = kubectl(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn key_of(doc: &Value) -> String {
    format!(
        "{}/{}/{}",
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["namespace"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn ai(name: &str, namespace: &str, inline: Value) -> Value {
    json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
        "metadata": {"name": name, "namespace": namespace, "labels": {
            "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER}},
        "spec": {"appRef": {"catalogId": "nextcloud"},
                 "chart": {"sourceType": "oci", "url": "oci://ghcr.io/nextcloud/helm", "name": "nextcloud",
                           "version": "6.6.4"},
                 "release": {"name": name, "namespace": namespace},
                 "values": {"source": "inline", "inline": inline}}
    })
}

async fn dry_run_create(api: &Api<DynamicObject>, object: &Value) -> Result<(), String> {
    let obj: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    api.create(
        &PostParams {
            dry_run: true,
            ..PostParams::default()
        },
        &obj,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn secret_material(client: &kube::Client) -> Option<(String, String)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SECRET_NS);
    let s = secrets.get_opt(SECRET).await.ok()??;
    let data = s.data?;
    let get = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    let bundle = get(certs::CA_CRT)?;
    let first_ca = bundle
        .split("-----END CERTIFICATE-----")
        .next()?
        .to_string();
    Some((first_ca, get(certs::TLS_CRT)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_server_refuses_what_render_refuses_with_the_same_words() {
    vworkspace_operator::report::install_crypto_provider();
    let client = testbed::client().await;
    testbed::install_crds(&client, &testbed::project_crds()).await;
    for (ns, gated) in [(SECRET_NS, false), ("outside", false)] {
        testbed::namespace(&client, ns, gated).await;
    }
    // The policy's parameter: this cluster's Cluster object.
    testbed::cluster_object(&client, CLUSTER).await;

    // The webhook, as `run --webhook-addr` starts it: short-lived certificates so that they rotate during the
    // test (renewal after two thirds: every 4 s; the CA every 16 s).
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = WebhookServer::bind(
        client.clone(),
        std::sync::Arc::new(renderer()),
        CLUSTER.into(),
        WebhookConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            certs: CertSource::Managed {
                secret_namespace: SECRET_NS.into(),
                secret_name: SECRET.into(),
                configuration: webhook::CONFIGURATION_NAME.into(),
                settings: certs::CertSettings {
                    names: vec!["127.0.0.1".into()],
                    ca_validity: Duration::from_secs(24),
                    cert_validity: Duration::from_secs(6),
                },
            },
            approval_key: Some(APPROVAL_KEY.to_vec()),
        },
        None,
    )
    .await
    .unwrap();
    let url = format!("https://{}/validate", server.local_addr());
    let serving = tokio::spawn(server.serve(stop_rx));

    // What the chart ships, with the webhook reached by URL (there is no Service here) and no
    // caBundle: the operator sets it.
    let mut manifests = webhook::admission_manifests();
    manifests[2]["webhooks"][0]["clientConfig"] = json!({"url": url});
    for m in &manifests {
        testbed::apply(&client, m).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    // The cluster repo's namespaces (gated; team-alpha also holds examples/invalid).
    let repo = root().join("examples/cluster-repo/clusters").join(CLUSTER);
    let mut repo_files: Vec<_> = walk(&repo);
    repo_files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        (
            !name.starts_with("namespace"),
            !name.starts_with("applicationinstance"),
            p.clone(),
        )
    });
    for file in repo_files.iter().filter(|p| p.ends_with("namespace.yaml")) {
        for doc in yaml_docs(file) {
            let (ok, out) = kubectl_apply(dir.path(), &doc, &[]);
            assert!(ok, "{}: {out}", file.display());
        }
    }

    // Ready when the policy and the webhook both answer: an intent with an inline secret is refused by the
    // webhook; one labelled for another cluster by the policy.
    let dynamic = |kind: &str| {
        let (client, kind) = (client.clone(), kind.to_string());
        move |ns: &str| testbed::intent_api(&client, &kind, ns)
    };
    let apps = dynamic("ApplicationInstance");
    let alpha = apps("team-alpha");
    let leaky = ai("probe", "team-alpha", json!({"password": "hunter2"}));
    let mut foreign = ai("probe", "team-alpha", json!({}));
    foreign["metadata"]["labels"]["app.vworkspace.io/cluster-id"] = json!("elsewhere");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = dry_run_create(&alpha, &leaky).await;
        let p = dry_run_create(&alpha, &foreign).await;
        let webhook_ready = w
            .as_ref()
            .is_err_and(|e| e.contains("InlineSecretMaterialRejected"));
        let policy_ready = p
            .as_ref()
            .is_err_and(|e| e.contains("but this is cluster eu-prod-1"));
        if webhook_ready && policy_ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admission not in force after 60 s: webhook {w:?}, policy {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 1. examples/invalid: the same verdict as render, with render's words.
    let invalid = root().join("examples/invalid");
    let files = load_dir(&invalid).unwrap();
    let rendered = render_tree(&files, &renderer(), Some(CLUSTER));
    let mut by_object: BTreeMap<String, Vec<&vworkspace_operator::intent::Problem>> =
        BTreeMap::new();
    for p in &rendered.problems {
        by_object.entry(p.object.clone()).or_default().push(p);
    }
    let mut names: Vec<_> = walk(&invalid)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    let mut refused = Vec::new();
    let mut report = Vec::new();
    for file in names {
        for doc in yaml_docs(&file) {
            let key = key_of(&doc);
            let (ok, out) = kubectl_apply(dir.path(), &doc, &[]);
            let problems = by_object.remove(&key).unwrap_or_default();
            if problems.is_empty() {
                assert!(ok, "{key} renders, so it must be admitted: {out}");
                continue;
            }
            assert!(
                !ok,
                "{key}: render refuses it ({problems:?}) but the API server admitted it"
            );
            refused.push(doc.clone());
            let kind = if doc["kind"] == "Operation" {
                IntentKind::Operation
            } else {
                IntentKind::ApplicationInstance
            };
            let r = renderer();
            let ctx = validate::Context {
                cluster_id: Some(CLUSTER),
                renderer: &r,
            };
            let structure = validate::check_structure("f", kind, &doc);
            let api_rules: Vec<_> = validate::check_api_server(
                "f",
                kind,
                &doc,
                None,
                &validate::namespace_stand_in("team-alpha", None),
                &ctx,
            )
            .into_iter()
            .filter(|p| !structure.iter().any(|s| s.field == p.field))
            .collect();
            if !structure.is_empty() {
                // The API server's own words for its schema; the same field.
                for p in &structure {
                    let leaf = p.field.rsplit('.').next().unwrap();
                    assert!(out.contains(leaf), "{key}: {} not named in: {out}", p.field);
                }
            } else if !api_rules.is_empty() {
                // The CRD's rules and the policy answer before the webhook: every one of theirs, verbatim.
                for p in &api_rules {
                    assert!(out.contains(&p.field), "{key}: {} not in: {out}", p.field);
                    assert!(
                        out.contains(&p.reason),
                        "{key}: {:?} not in: {out}",
                        p.reason
                    );
                }
            } else {
                // The webhook: render's problems, verbatim, `field: reason`.
                for p in &problems {
                    let text = format!("{}: {}", p.field, p.reason);
                    assert!(out.contains(&text), "{key}: {text:?} not in: {out}");
                }
            }
            report.push(format!("{key}: {}", out.trim().replace('\n', " | ")));
        }
    }
    assert!(
        by_object.is_empty(),
        "documents render reported on but not found: {by_object:?}"
    );
    assert!(
        refused.len() >= 20,
        "only {} refused documents",
        refused.len()
    );
    eprintln!("{}", report.join("\n"));
    // Nothing refused reached the cluster.
    for doc in &refused {
        let ns = doc["metadata"]["namespace"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let api = dynamic(doc["kind"].as_str().unwrap())(ns);
        assert!(
            api.get_opt(name).await.unwrap().is_none(),
            "{} was refused but exists",
            key_of(doc)
        );
    }

    // 2. The valid cluster repo is admitted (applications before the Operations that target them). The
    // example restore's claim is a placeholder: the control plane would sign a real one, as here.
    for file in repo_files.iter().filter(|p| !p.ends_with("namespace.yaml")) {
        for mut doc in yaml_docs(file) {
            if doc["spec"]["approvals"]["claim"].is_string() {
                let signed = claim(&doc);
                doc["spec"]["approvals"]["claim"] = json!(signed);
            }
            let (ok, out) = kubectl_apply(dir.path(), &doc, &[]);
            assert!(ok, "{} ({}): {out}", key_of(&doc), file.display());
        }
    }

    // 3. Immutability: the CRDs' transition rules.
    let (ok, text) = patch(
        "applicationinstance",
        "nextcloud",
        &[],
        r#"{"spec":{"release":{"name":"renamed"}}}"#,
    );
    assert!(
        !ok && text.contains("spec.release.name") && text.contains("immutable: was nextcloud"),
        "{text}"
    );
    let ops = dynamic("Operation")("team-alpha");
    let op = ops.list(&Default::default()).await.unwrap().items.remove(0);
    let op_name = op.metadata.name.clone().unwrap();
    let (ok, text) = patch("operation", &op_name, &[], r#"{"spec":{"engine":"job"}}"#);
    assert!(
        !ok && text.contains("spec.engine") && text.contains("immutable"),
        "{text}"
    );
    let (ok, text) = patch(
        "operation",
        &op_name,
        &["--subresource=status"],
        r#"{"status":{"phase":"Running"}}"#,
    );
    assert!(ok, "{text}");
    let (ok, text) = patch(
        "operation",
        &op_name,
        &[],
        r#"{"spec":{"parameters":{"ttl":"99h"}}}"#,
    );
    assert!(
        !ok && text.contains("immutable once the phase left Pending"),
        "{text}"
    );

    // 3b. The rules that need other objects or the approval key.
    // A forged claim (the example's placeholder MAC) is refused with the approval check's words...
    let example_claim =
        yaml_docs(&repo.join("namespaces/team-beta/operation-vaultwarden-restore.yaml"))[0]["spec"]
            ["approvals"]["claim"]
            .as_str()
            .unwrap()
            .to_string();
    let (ok, out) = kubectl_apply(
        dir.path(),
        &restore("restore-forged", "nextcloud", &example_claim),
        &[],
    );
    assert!(
        !ok && out.contains("denied the request: spec.approvals.claim:"),
        "{out}"
    );
    // ...a signed one is admitted, with a warning naming the Backup it will wait for (the conflict matrix
    // admits and blocks).
    let (ok, out) = kubectl_apply(
        dir.path(),
        &signed_restore("restore-signed", "nextcloud"),
        &[],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "Warning: spec.type: Restore waits while Backup Operation nextcloud-nightly-backup-20261120 is \
             Pending on the same target (Blocked/ConflictingOperation)"
        ),
        "{out}"
    );
    // Tenant isolation (crates/core/src/render/tenancy.rs), even with a valid claim: a restore of another namespace's
    // backup mapped into this one is refused, naming the parameters...
    let mut cross = restore("restore-cross", "nextcloud", "");
    cross["spec"]["parameters"] = json!({"backupName": "team-beta-nightly",
                                         "namespaceMapping": {"team-beta": "team-alpha"}});
    cross["spec"]["approvals"]["claim"] = json!(claim(&cross));
    let (ok, out) = kubectl_apply(dir.path(), &cross, &[]);
    assert!(
        !ok && out.contains(
            "spec.parameters.namespaceMapping.team-beta: team-beta is outside the Operation's namespace team-alpha"
        ) && out.contains(
            "spec.parameters.backupName: team-beta-nightly is not a backup made for namespace team-alpha"
        ),
        "{out}"
    );
    // ...and a claim approves the spec it was issued for: the same Operation with another backup is refused.
    let mut swapped = signed_restore("restore-swapped", "nextcloud");
    swapped["spec"]["parameters"]["backupName"] = json!("team-alpha-other");
    let (ok, out) = kubectl_apply(dir.path(), &swapped, &[]);
    assert!(
        !ok && out.contains(
            "denied the request: spec.approvals.claim: spec.approvals.claim approves another spec"
        ),
        "{out}"
    );
    // Changing the parameters of an admitted Operation under its old claim is refused too (the claim is judged
    // again when the spec it approves changes).
    let (ok, text) = patch(
        "operation",
        "restore-signed",
        &[],
        r#"{"spec":{"parameters":{"backupName":"team-alpha-other"}}}"#,
    );
    assert!(
        !ok && text.contains("spec.approvals.claim approves another spec"),
        "{text}"
    );
    // A dry run of an Operation whose target does not exist yet: a warning (Flux dry-runs a commit before
    // applying it); the real request is refused (examples/invalid: missing-target).
    let ghost = signed_restore("restore-ghost", "ghost");
    let (ok, out) = kubectl_apply(dir.path(), &ghost, &["--dry-run=server"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Warning: spec.targetRef.name: ApplicationInstance team-alpha/ghost not found (checked again"),
        "{out}"
    );
    // The namespace's allowed-types annotation (the policy).
    let annotate = |value: &str| {
        let out = kubectl(&["annotate", "--overwrite", "namespace", "team-alpha", value]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    annotate("ops.vworkspace.io/allowed-types=Backup,Snapshot");
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let (ok, out) = kubectl_apply(
            dir.path(),
            &signed_restore("restore-typed", "nextcloud"),
            &["--dry-run=server"],
        );
        if !ok || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        refused.contains(
            "spec.type: Restore is not allowed in namespace team-alpha (ops.vworkspace.io/allowed-types=Backup,Snapshot)"
        ),
        "{refused}"
    );
    annotate("ops.vworkspace.io/allowed-types-");
    // An intent without the managed-by label (the policy; the webhook does not even see it).
    let mut unlabelled = ai("unlabelled", "team-alpha", json!({}));
    unlabelled["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.vworkspace.io/managed-by");
    let refused = dry_run_create(&alpha, &unlabelled).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains(
            "metadata.labels[app.vworkspace.io/managed-by]: missing; intents must carry"
        )),
        "{refused:?}"
    );

    // 4. Rotation under load: 30 s of requests, every one admitted (or refused for its content, never for the
    // webhook), while the serving certificate and the CA change.
    let valid = ai("rotation-probe", "team-alpha", json!({"replicas": 1}));
    let mut cas = BTreeSet::new();
    let mut tls = BTreeSet::new();
    let mut requests = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Err(e) = dry_run_create(&alpha, &valid).await {
            panic!(
                "request {requests} refused during rotation after {:?}: {e}",
                start.elapsed()
            );
        }
        let refused = dry_run_create(&alpha, &leaky).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("InlineSecretMaterialRejected")),
            "{refused:?}"
        );
        requests += 2;
        if let Some((ca, crt)) = secret_material(&client).await {
            cas.insert(ca);
            tls.insert(crt);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "rotation: {requests} requests in 30 s, {} serving certificates, {} CAs",
        tls.len(),
        cas.len()
    );
    assert!(
        tls.len() >= 4,
        "the serving certificate rotated {} times",
        tls.len()
    );
    assert!(cas.len() >= 2, "the CA rotated {} times", cas.len());

    // 5. The webhook down: gated namespaces fail closed, nothing else is affected.
    stop.send(true).unwrap();
    serving.await.unwrap();
    let down = dry_run_create(&alpha, &valid).await;
    assert!(
        down.as_ref()
            .is_err_and(|e| e.contains("failed calling webhook")),
        "{down:?}"
    );
    let cm = kubectl(&[
        "create",
        "configmap",
        "-n",
        "team-alpha",
        "unaffected",
        "--from-literal=a=b",
    ]);
    assert!(
        cm.status.success(),
        "{}",
        String::from_utf8_lossy(&cm.stderr)
    );
    // Outside the gate the policy answers, webhook or not.
    let outside = apps("outside");
    let refused = dry_run_create(&outside, &ai("probe", "outside", json!({}))).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("NamespaceNotGated") && !e.contains("webhook")),
        "{refused:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `--webhook-cert-dir` (cert-manager's way): the webhook serves the files' certificate and picks up a new one
/// when they change, with no restart; it never touches a webhook configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_serving_certificates_from_files_reloads_them() {
    vworkspace_operator::report::install_crypto_provider();
    let client = testbed::client().await;
    testbed::install_crds(&client, &testbed::project_crds()).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = certs::CertSettings {
        names: vec!["127.0.0.1".into()],
        ca_validity: Duration::from_secs(3600),
        cert_validity: Duration::from_secs(3600),
    };
    let issue = || {
        let m = certs::plan(None, time::OffsetDateTime::now_utc(), &settings)
            .unwrap()
            .unwrap();
        std::fs::write(dir.path().join(certs::TLS_CRT), &m.tls_crt).unwrap();
        std::fs::write(dir.path().join(certs::TLS_KEY), &m.tls_key).unwrap();
        m.ca_bundle
    };
    let first_ca = issue();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = WebhookServer::bind(
        client.clone(),
        std::sync::Arc::new(renderer()),
        CLUSTER.into(),
        WebhookConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            certs: CertSource::Files(dir.path().to_path_buf()),
            approval_key: None,
        },
        None,
    )
    .await
    .unwrap();
    let url = format!("https://{}/validate", server.local_addr());
    let serving = tokio::spawn(server.serve(stop_rx));
    // A client that trusts only `ca`: the verdict on an intent with an inline password.
    let ask = |ca: String| {
        let url = url.clone();
        async move {
            let http = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
                .build()
                .unwrap();
            let leaky = ai("leaky", "team-alpha", json!({"password": "x"}));
            let res = http
                .post(&url)
                .json(&testbed::admission_review("u1", &leaky))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = res.json().await.map_err(|e| e.to_string())?;
            Ok::<Value, String>(v["response"].clone())
        }
    };
    let answer = ask(first_ca.clone()).await.unwrap();
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["uid"], "u1");
    assert!(
        answer["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.values.inline.password: InlineSecretMaterialRejected"),
        "{answer}"
    );
    // New files from another CA: served within the check interval (10 s), the old CA no longer works.
    let second_ca = issue();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(second_ca.clone()).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ask(first_ca).await.is_err());
    stop.send(true).unwrap();
    serving.await.unwrap();
}

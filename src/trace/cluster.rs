//! `status`: one screen for the cluster — mode and connectivity, the verified view against what Flux applied,
//! the trust policy, intents by state and the latest refusals, what is owed, the webhook certificate. Read from
//! the cluster (the Cluster object the operator maintains, the intents, Flux's Kustomizations) with the caller's
//! permissions, like [`super::collect`]; no operator endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use kube::Client;
use serde::Serialize;
use serde_json::Value;

use super::read::Reader;
use super::{FluxInfo, str_at};
use crate::escape::Esc;
use crate::git::policy::TrustPolicy;

/// What `status` reads besides the cluster.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// The Cluster object's name (the cluster id); default: the only one.
    pub cluster_id: Option<String>,
    /// The trust policy file; default: the Secret `vworkspace-trust-policy` in the operator's namespace, when
    /// readable.
    pub policy: Option<PathBuf>,
}

/// A refused intent.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    pub since: String,
}

/// The trust policy in force, summarized.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// Where it was read: the file, or the Secret (and when it last changed).
    pub source: String,
    pub ssh_signers: Vec<String>,
    pub openpgp_keys: Vec<String>,
    pub gitsign_identities: Vec<String>,
    pub control_plane_keys: Vec<String>,
    pub notes_keys: Vec<String>,
    pub chart_rules: Vec<String>,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatusView {
    pub cluster_id: String,
    pub mode: String,
    pub phase: String,
    /// `Connected` (and `Authenticated`) as `Type=Status (Reason: message)`.
    pub connectivity: Vec<String>,
    pub last_heartbeat: String,
    pub helm_engine: String,
    pub operator_version: String,
    pub controllers_missing: Vec<String>,
    /// The newest verified commit, its signer and time.
    pub view: String,
    pub flux: Vec<FluxInfo>,
    /// Whether what Flux applied is the view.
    pub flux_vs_view: String,
    pub policy: Option<PolicySummary>,
    /// kind → state → count.
    pub intents: BTreeMap<String, BTreeMap<String, usize>>,
    /// The five most recent refusals, newest first.
    pub refusals: Vec<Refusal>,
    pub notes_pending: Option<i64>,
    pub events_pending: Option<i64>,
    pub webhook_certificate_expiry: String,
    pub unreadable: Vec<String>,
}

/// Collect the cluster's status. Fails only when no Cluster object can be read.
pub async fn collect(client: Client, opts: &StatusOptions) -> anyhow::Result<ClusterStatusView> {
    let mut reader = Reader::new(client);
    let cluster = match &opts.cluster_id {
        Some(id) => {
            reader
                .get("ops.vworkspace.io/v1alpha1", "Cluster", "", id)
                .await
        }
        None => {
            let all = reader
                .list("ops.vworkspace.io/v1alpha1", "Cluster", None, None)
                .await;
            match all.len() {
                1 => all.into_iter().next(),
                0 => None,
                n => anyhow::bail!("{n} Cluster objects: name one with --cluster-id"),
            }
        }
    };
    let Some(cluster) = cluster else {
        let why = reader
            .unreadable
            .first()
            .cloned()
            .unwrap_or_else(|| "no Cluster object (is the operator running?)".into());
        anyhow::bail!("{why}");
    };
    let id = str_at(&cluster, "/metadata/name").to_string();
    let conds = cluster
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let connectivity = conds
        .iter()
        .filter(|c| matches!(str_at(c, "/type"), "Connected" | "Authenticated"))
        .map(|c| {
            format!(
                "{}={} ({}: {})",
                str_at(c, "/type"),
                str_at(c, "/status"),
                str_at(c, "/reason"),
                str_at(c, "/message")
            )
        })
        .collect();
    let flux = super::flux_objects(&mut reader, &id).await;
    let view_commit = str_at(&cluster, "/status/lastVerifiedCommit").to_string();
    let flux_vs_view = flux_vs_view(&view_commit, &flux);
    let (intents, refusals) = intents(&mut reader, &id).await;
    let policy = policy(&mut reader, &cluster, opts).await;
    let mode = match str_at(&cluster, "/spec/connectivityMode") {
        "" => "gitops",
        m => m,
    };
    Ok(ClusterStatusView {
        mode: mode.to_string(),
        phase: str_at(&cluster, "/status/phase").into(),
        connectivity,
        last_heartbeat: str_at(&cluster, "/status/lastHeartbeat").into(),
        helm_engine: str_at(&cluster, "/status/helmEngine").into(),
        operator_version: str_at(&cluster, "/status/operatorVersion").into(),
        controllers_missing: cluster
            .pointer("/status/controllers")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter(|c| c.get("installed") == Some(&Value::Bool(false)))
                    .map(|c| str_at(c, "/name").to_string())
                    .collect()
            })
            .unwrap_or_default(),
        view: if view_commit.is_empty() {
            "none verified".into()
        } else {
            format!(
                "{view_commit} signed by {} at {}",
                str_at(&cluster, "/status/lastVerifiedSigner"),
                str_at(&cluster, "/status/lastVerifiedTime")
            )
        },
        flux,
        flux_vs_view,
        policy,
        intents,
        refusals,
        notes_pending: cluster
            .pointer("/status/notesPending")
            .and_then(Value::as_i64),
        events_pending: cluster
            .pointer("/status/eventsPending")
            .and_then(Value::as_i64),
        webhook_certificate_expiry: str_at(&cluster, "/status/webhookCertificateExpiry").into(),
        cluster_id: id,
        unreadable: reader.unreadable,
    })
}

/// Whether the revision the cluster path's Kustomization applied is the verified view.
fn flux_vs_view(view: &str, flux: &[FluxInfo]) -> String {
    let applied: Vec<&str> = flux
        .iter()
        .filter(|f| f.kind == "Kustomization" && !f.revision.is_empty())
        .map(|f| crate::source::flux_watch::applied_commit(&f.revision))
        .collect();
    match applied.as_slice() {
        [] => "unknown (no Kustomization of the cluster path readable)".into(),
        _ if view.is_empty() => "Flux applied a revision; none is verified".into(),
        a if a.iter().all(|r| *r == view) => "Flux applied the verified view".into(),
        a => format!(
            "differs: Flux applied {} (not the verified view: a commit the operator has not verified, or a \
             revision Flux has not applied yet)",
            a.join(", ")
        ),
    }
}

/// This cluster's intents by kind and state, and the five newest refusals.
async fn intents(
    reader: &mut Reader,
    id: &str,
) -> (BTreeMap<String, BTreeMap<String, usize>>, Vec<Refusal>) {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut refusals = Vec::new();
    for (api_version, kind) in [
        ("apps.vworkspace.io/v1alpha1", "ApplicationInstance"),
        ("ops.vworkspace.io/v1alpha1", "Operation"),
    ] {
        let selector = format!("{}={id}", crate::api::labels::CLUSTER_ID);
        for obj in reader.list_labelled(api_version, kind, &selector).await {
            let state = state_of(kind, &obj);
            *counts
                .entry(kind.to_string())
                .or_default()
                .entry(state.to_string())
                .or_default() += 1;
            let blocked = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|l| {
                    l.iter()
                        .find(|c| str_at(c, "/type") == "Blocked" && str_at(c, "/status") == "True")
                });
            if let Some(b) = blocked {
                refusals.push(Refusal {
                    kind: kind.into(),
                    namespace: str_at(&obj, "/metadata/namespace").into(),
                    name: str_at(&obj, "/metadata/name").into(),
                    reason: str_at(b, "/reason").into(),
                    message: str_at(b, "/message").into(),
                    since: str_at(b, "/lastTransitionTime").into(),
                });
            }
        }
    }
    refusals.sort_by(|a, b| b.since.cmp(&a.since));
    refusals.truncate(5);
    (counts, refusals)
}

/// The state the metrics give an intent (`controller::fleet`).
fn state_of(kind: &str, obj: &Value) -> &'static str {
    if kind == "Operation" {
        return match serde_json::from_value::<crate::api::Operation>(obj.clone()) {
            Ok(op) => crate::controller::fleet::op_state(&op),
            Err(_) => "pending",
        };
    }
    let conds: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> = obj
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    crate::controller::fleet::app_state(&conds)
}

/// The trust policy: the file given, or the Secret beside the operator when readable.
async fn policy(
    reader: &mut Reader,
    cluster: &Value,
    opts: &StatusOptions,
) -> Option<PolicySummary> {
    if let Some(path) = &opts.policy {
        return match TrustPolicy::load(path) {
            Ok(p) => Some(summary(&p, path.display().to_string())),
            Err(e) => {
                reader
                    .unreadable
                    .push(format!("trust policy {}: {e}", path.display()));
                None
            }
        };
    }
    let ns = match str_at(cluster, "/status/credentialsSecretRef/namespace") {
        "" => "vworkspace-system",
        n => n,
    };
    let secret = reader
        .get("v1", "Secret", ns, "vworkspace-trust-policy")
        .await?;
    let text = secret
        .pointer("/data/policy.yaml")
        .and_then(Value::as_str)
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())?;
    let changed = secret
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .filter_map(|f| f.get("time").and_then(Value::as_str))
                .max()
        })
        .unwrap_or("?")
        .to_string();
    match TrustPolicy::from_yaml(&text) {
        Ok(p) => Some(summary(
            &p,
            format!("Secret {ns}/vworkspace-trust-policy, last changed {changed}"),
        )),
        Err(e) => {
            reader
                .unreadable
                .push(format!("the trust policy does not parse: {e}"));
            None
        }
    }
}

fn summary(p: &TrustPolicy, source: String) -> PolicySummary {
    PolicySummary {
        source,
        ssh_signers: p
            .ssh()
            .entries()
            .iter()
            .map(|e| format!("{} {}", e.principals, e.fingerprint))
            .collect(),
        openpgp_keys: p.openpgp().fingerprints(),
        gitsign_identities: p
            .gitsign()
            .map(|g| g.identities.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        control_plane_keys: p
            .control_plane_keys()
            .iter()
            .map(|k| k.name.clone())
            .collect(),
        notes_keys: p
            .notes_keys()
            .keys()
            .iter()
            .map(|k| k.name.clone())
            .collect(),
        chart_rules: p
            .charts()
            .rules
            .iter()
            .map(|r| format!("{}: {}", r.prefix, r.expected_signer()))
            .collect(),
    }
}

/// The status as text.
pub fn text(s: &ClusterStatusView) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {k:<14}{}", Esc(if v.is_empty() { "-" } else { v }));
    };
    let _ = writeln!(
        out,
        "Cluster {}  ({} mode, phase {})",
        Esc(&s.cluster_id),
        Esc(&s.mode),
        Esc(&s.phase)
    );
    for c in &s.connectivity {
        line(&mut out, "connectivity", c);
    }
    line(&mut out, "heartbeat", &s.last_heartbeat);
    line(&mut out, "engine", &s.helm_engine);
    line(&mut out, "operator", &s.operator_version);
    if !s.controllers_missing.is_empty() {
        line(&mut out, "missing", &s.controllers_missing.join(", "));
    }
    out.push_str("\nVerified view\n");
    line(&mut out, "view", &s.view);
    line(&mut out, "flux", &s.flux_vs_view);
    out.push_str("\nTrust policy\n");
    match &s.policy {
        None => out.push_str("  not shown (give --policy, or read access to the policy Secret)\n"),
        Some(p) => {
            line(&mut out, "from", &p.source);
            for (k, v) in [
                ("ssh", &p.ssh_signers),
                ("openpgp", &p.openpgp_keys),
                ("gitsign", &p.gitsign_identities),
                ("control plane", &p.control_plane_keys),
                ("notes keys", &p.notes_keys),
                ("charts", &p.chart_rules),
            ] {
                for item in v {
                    line(&mut out, k, item);
                }
            }
        }
    }
    out.push_str("\nIntents\n");
    for (kind, states) in &s.intents {
        let list: Vec<String> = states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line(&mut out, kind, &list.join(", "));
    }
    out.push_str("\nLatest refusals\n");
    if s.refusals.is_empty() {
        out.push_str("  none\n");
    }
    for r in &s.refusals {
        let _ = writeln!(
            out,
            "  {} {} {}/{} {}: {}",
            Esc(&r.since),
            Esc(&r.kind),
            Esc(&r.namespace),
            Esc(&r.name),
            Esc(&r.reason),
            Esc(&r.message)
        );
    }
    out.push_str("\nOwed\n");
    let n = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    line(&mut out, "notes", &n(s.notes_pending));
    line(&mut out, "events", &n(s.events_pending));
    line(&mut out, "webhook cert", &s.webhook_certificate_expiry);
    super::text::not_shown(&mut out, &s.unreadable);
    out
}

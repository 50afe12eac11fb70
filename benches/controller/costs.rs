//! What one request of each kind costs the API server (5, PHASES=costs).

use super::*;
// ---------------------------------------------------------------------------------------------------------
// 5. What one request of each kind the operator makes costs the API server (PHASES=costs).

/// Run `request` once per intent, `concurrency` at a time; (wall, CPU by process).
pub(crate) async fn cost_of<F, Fut>(
    apps: &[(String, String)],
    concurrency: usize,
    request: F,
) -> (Duration, String)
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = cpu_seconds();
    let started = Instant::now();
    futures::stream::iter(apps.iter().cloned())
        .map(|(ns, name)| request(ns, name))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    (started.elapsed(), cpu_diff(&cpu_seconds(), &before))
}

/// The conditions of an instance whose children were just applied, and of one that is Ready.
pub(crate) const PROGRESSING_CONDITIONS: [(&str, &str, &str); 5] = [
    ("Blocked", "False", "Unblocked"),
    ("Ready", "Unknown", "Progressing"),
    ("Reconciling", "True", "Progressing"),
    ("Suspended", "False", "Active"),
    ("Verified", "True", "CommitVerified"),
];
pub(crate) const READY_CONDITIONS: [(&str, &str, &str); 5] = [
    ("Blocked", "False", "Unblocked"),
    ("Ready", "True", "HelmReleaseReady"),
    ("Reconciling", "False", "Stable"),
    ("Suspended", "False", "Active"),
    ("Verified", "True", "CommitVerified"),
];

/// A status as the operator applies it (field manager vworkspace-operator).
pub(crate) fn status_patch(conditions: &[(&str, &str, &str)]) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(t, s, r)| {
            json!({"type": t, "status": s, "reason": r, "message": format!("{t} is {s}: {r}"),
                "lastTransitionTime": "2026-11-21T00:00:00Z", "observedGeneration": 1})
        })
        .collect();
    json!({"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
        "status": {"observedGeneration": 1, "conditions": conditions, "intentCommit": "0123456789abcdef0123456789abcdef01234567",
            "helmReleaseRef": {"name": "x", "namespace": "y"}, "lastReconcileTime": "2026-11-21T00:00:00Z"}})
}

/// Add the operator's finalizer to an instance as the operator does (JSON patch with a test, its field manager).
pub(crate) async fn add_finalizer(api: &Api<ApplicationInstance>, name: &str) {
    let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["apps.vworkspace.io/finalizer"]}]);
    let params = PatchParams {
        field_manager: Some("vworkspace-operator".into()),
        ..PatchParams::default()
    };
    api.patch(
        name,
        &params,
        &Patch::Json::<()>(serde_json::from_value(patch).expect("patch")),
    )
    .await
    .expect("finalizer");
}

/// Write an instance's status as the operator does (server-side apply), or as a merge patch to compare.
pub(crate) async fn write_instance_status(
    api: &Api<ApplicationInstance>,
    name: String,
    conditions: &[(&str, &str, &str)],
    apply: bool,
) {
    let body = status_patch(conditions);
    let (params, patch) = if apply {
        (
            PatchParams::apply("vworkspace-operator").force(),
            Patch::Apply(body),
        )
    } else {
        (PatchParams::default(), Patch::Merge(body))
    };
    api.patch_status(&name, &params, &patch)
        .await
        .expect("instance status");
}

/// An Event about an instance, as the operator posts one.
pub(crate) async fn create_event(client: &Client, ns: &str, name: &str, reason: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{:x}", fastrand::u64(..)), "namespace": ns},
        "eventTime": "2026-11-21T00:00:00.000000Z", "action": "Reconcile", "reason": reason,
        "note": format!("Ready=True {reason}: ok"), "type": "Normal",
        "reportingController": "vworkspace-operator", "reportingInstance": "vworkspace-operator",
        "regarding": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "name": name, "namespace": ns}});
    events
        .create(
            &Default::default(),
            &serde_json::from_value(event).expect("event"),
        )
        .await
        .expect("event");
}

pub(crate) async fn costs(
    client: &Client,
    n: usize,
    concurrency: usize,
) -> Vec<(String, Duration, String)> {
    let (cluster, prefix) = ("bench-cost", "cost");
    gated_namespaces(client, prefix).await;
    let intents = intents(cluster, prefix, n);
    create_intents(client, &intents, concurrency).await;
    let apps: Vec<(String, String)> = (0..n)
        .map(|i| (namespace(prefix, i), format!("app-{i}")))
        .collect();
    let api = |ns: &str| Api::<ApplicationInstance>::namespaced(client.clone(), ns);
    let row = |label: &str, (wall, cpu): (Duration, String)| (label.to_string(), wall, cpu);
    let status = |conditions: &'static [(&'static str, &'static str, &'static str)],
                  apply: bool| {
        cost_of(&apps, concurrency, move |ns, name| async move {
            write_instance_status(&api(&ns), name, conditions, apply).await
        })
    };
    vec![
        row(
            "finalizer (JSON patch, as the operator adds it)",
            cost_of(&apps, concurrency, |ns, name| async move {
                add_finalizer(&api(&ns), &name).await
            })
            .await,
        ),
        row(
            "first status (server-side apply, 5 conditions)",
            status(&PROGRESSING_CONDITIONS, true).await,
        ),
        row(
            "second status (server-side apply, 2 conditions change)",
            status(&READY_CONDITIONS, true).await,
        ),
        row(
            "status again (merge patch, 2 conditions change)",
            status(&PROGRESSING_CONDITIONS, false).await,
        ),
        row(
            "Event (create)",
            cost_of(&apps, concurrency, |ns, name| async move {
                create_event(client, &ns, &name, "HelmReleaseReady").await
            })
            .await,
        ),
    ]
}

//! The event post's unit cases: wire format, keys, signing, endpoints, backoff and Retry-After.

use super::shared::events_url;
use super::*;
use crate::api::Endpoint;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(3),
        last_transition_time: Time("2026-06-03T12:00:00Z".parse().unwrap()),
    }
}

fn app() -> ResourceRef {
    ResourceRef {
        api_version: "apps.vworkspace.io/v1alpha1".into(),
        kind: "ApplicationInstance".into(),
        namespace: "team-alpha".into(),
        name: "nextcloud".into(),
        uid: "0b6f-11".into(),
        generation: 3,
    }
}

fn now() -> Timestamp {
    "2026-06-03T12:00:01.5Z".parse().unwrap()
}

#[test]
fn event_keys_follow_the_upstream_format() {
    assert_eq!(
        condition_event_key(&app(), "Ready", "True"),
        "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11/Ready/True@3"
    );
    let cluster = ResourceRef::cluster("eu-prod-1", "", 0);
    assert_eq!(
        condition_event_key(&cluster, "Connected", "False"),
        "condition/ops.vworkspace.io/v1alpha1/Cluster/_/eu-prod-1/_/Connected/False@0"
    );
    assert_eq!(
        heartbeat_event(&cluster, now()).event_key,
        "heartbeat/eu-prod-1/_@1780488001"
    );
    let audit = audit_event(
        "OperationSucceeded",
        &app(),
        vec![cond("Succeeded", "True", "EngineCompleted", "")],
        now(),
    );
    assert_eq!(audit.event_key, "OperationSucceeded/0b6f-11/Succeeded");
    assert_eq!(audit.kind, EventKind::Audit("OperationSucceeded".into()));
}

#[test]
fn one_transition_per_changed_condition() {
    let old = vec![
        cond("Ready", "False", "Installing", "installing"),
        cond("Reconciling", "True", "HelmReleaseInstalling", ""),
        cond("Degraded", "False", "Recovered", ""),
        cond("Suspended", "False", "Active", ""),
    ];
    let mut new = vec![
        cond("Ready", "True", "HelmReleaseReady", "release ready"), // status
        cond("Reconciling", "True", "ChartSourceSyncing", ""),      // reason
        cond("Degraded", "False", "Recovered", "ok now"),           // message
        cond("Suspended", "False", "Active", ""),                   // unchanged
        cond("Blocked", "False", "Unblocked", ""),                  // new
    ];
    // A new lastTransitionTime or observedGeneration alone is not a transition.
    new[3].observed_generation = Some(4);
    new[3].last_transition_time = Time("2026-06-04T00:00:00Z".parse().unwrap());
    let endpoints = vec![Endpoint {
        name: "web".into(),
        url: "https://cloud.example.com".into(),
        type_: None,
        notes: None,
    }];
    let events = condition_transitions(&app(), &old, &new, &endpoints, now());
    let keys: Vec<&str> = events.iter().map(|e| e.event_key.as_str()).collect();
    let base =
        "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11";
    assert_eq!(
        keys,
        vec![
            format!("{base}/Ready/True@3"),
            format!("{base}/Reconciling/True@3"),
            format!("{base}/Degraded/False@3"),
            format!("{base}/Blocked/False@3"),
        ]
    );
    for e in &events {
        assert_eq!(e.kind, EventKind::ConditionTransition);
        assert_eq!(e.conditions.len(), 1);
        assert_eq!(e.timestamp, "2026-06-03T12:00:01.500Z");
        assert_eq!(
            e.endpoints.len(),
            usize::from(e.conditions[0].type_ == "Ready")
        );
    }
    assert!(condition_transitions(&app(), &new, &new, &endpoints, now()).is_empty());
    // Removing a condition is not a transition.
    assert!(condition_transitions(&app(), &new, &new[..2], &[], now()).is_empty());
}

#[test]
fn the_wire_format_is_camel_case_with_full_conditions() {
    let e = condition_transitions(
        &app(),
        &[],
        &[cond(
            "Ready",
            "False",
            "HelmReleaseFailed",
            "install failed: password=hunter2",
        )],
        &[],
        now(),
    )
    .remove(0);
    let v = serde_json::to_value(EventBatch { events: vec![e] }).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"events": [{
            "eventKey": "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11/Ready/False@3",
            "kind": "ConditionTransition",
            "resourceRef": {
                "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                "namespace": "team-alpha", "name": "nextcloud", "uid": "0b6f-11", "generation": 3
            },
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "HelmReleaseFailed",
                "message": "install failed: password=[REDACTED]",
                "observedGeneration": 3, "lastTransitionTime": "2026-06-03T12:00:00Z"
            }],
            "endpoints": [],
            "timestamp": "2026-06-03T12:00:01.500Z"
        }]})
    );
    let back: EventBatch = serde_json::from_value(v).unwrap();
    assert_eq!(back.events[0].kind, EventKind::ConditionTransition);
}

#[test]
fn snapshots_reuse_the_transition_keys() {
    let snap = ObjectSnapshot {
        resource_ref: app(),
        conditions: vec![
            cond("Ready", "True", "HelmReleaseReady", ""),
            cond("Degraded", "False", "Recovered", ""),
        ],
        endpoints: vec![],
    };
    let events = snapshot_events(&snap, now());
    let from_scratch = condition_transitions(&app(), &[], &snap.conditions, &[], now());
    assert_eq!(events, from_scratch);
}

#[test]
fn signing_matches_the_standard_webhooks_test_vector() {
    let key = SigningKey::parse(b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
    assert_eq!(
        key.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
    // Raw keys: the bytes minus one trailing newline.
    assert_eq!(
        SigningKey::parse(b"raw key\n").unwrap(),
        SigningKey::from_bytes(b"raw key".to_vec())
    );
    assert_eq!(
        SigningKey::parse(b"raw key \r\n").unwrap(),
        SigningKey::from_bytes(b"raw key ".to_vec())
    );
    assert!(SigningKey::parse(b"whsec_***").is_err());
    assert!(SigningKey::parse(b"\n").is_err());
    assert_eq!(format!("{key:?}"), "SigningKey([REDACTED])");
    assert_eq!(message_id(b"{}"), message_id(b"{}"));
    assert_ne!(message_id(b"{}"), message_id(b"{ }"));
    assert!(message_id(b"{}").starts_with("msg_") && message_id(b"{}").len() == 36);
}

#[test]
fn backoff_grows_with_jitter_and_never_below_a_second() {
    let max = Duration::from_secs(60);
    for jitter in [0.0, 0.5, 0.999] {
        assert_eq!(backoff_delay(1, max, jitter), Duration::from_secs(1));
        let d2 = backoff_delay(2, max, jitter);
        assert!(d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(2));
        let d4 = backoff_delay(4, max, jitter);
        assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8));
        let big = backoff_delay(40, max, jitter);
        assert!(big >= Duration::from_secs(30) && big <= max);
        assert_eq!(
            backoff_delay(5, Duration::from_millis(10), jitter),
            Duration::from_secs(1)
        );
    }
    assert_ne!(backoff_delay(6, max, 0.0), backoff_delay(6, max, 0.9));
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let now: Timestamp = "2026-06-03T12:00:00Z".parse().unwrap();
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Wed, 03 Jun 2026 12:00:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wed, 03 Jun 2026 11:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn endpoints_are_checked_and_shown_without_credentials() {
    let (url, shown) = events_url("https://cp.example.com/base/").unwrap();
    assert_eq!(url.as_str(), "https://cp.example.com/base/api/agent/events");
    assert_eq!(shown, "https://cp.example.com/base");
    let (url, _) = events_url("http://127.0.0.1:8080").unwrap();
    assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/agent/events");
    let err = events_url("https://user:s3cret@cp.example.com")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(events_url("ftp://cp.example.com").is_err());
    assert!(events_url("https://cp.example.com/?token=x").is_err());
    assert!(events_url("not a url").is_err());
}

#[test]
fn conditions_for_the_cluster() {
    let mut s = PosterState {
        endpoint: "https://cp.example.com".into(),
        buffer_capacity: 1000,
        ..PosterState::default()
    };
    let summary = |s: &PosterState| -> Vec<(String, String)> {
        s.conditions()
            .into_iter()
            .map(|c| (c.type_.to_string(), format!("{}/{}", c.status, c.reason)))
            .collect()
    };
    assert_eq!(
        summary(&s),
        vec![("BufferOverflow".into(), "False/BufferDrained".into())]
    );
    s.reachable = Some(false);
    s.unreachable_reason = "cannot connect".into();
    s.overflow = true;
    assert_eq!(
        summary(&s),
        vec![
            ("Connected".into(), "False/ControlPlaneUnreachable".into()),
            ("BufferOverflow".into(), "True/EventBufferFull".into()),
        ]
    );
    s.reachable = Some(true);
    s.authenticated = Some(false);
    s.rejection_reason = "HTTP 401".into();
    assert_eq!(
        summary(&s)[..2],
        [
            ("Connected".into(), "True/RoundTripOK".into()),
            ("Authenticated".into(), "False/CredentialRejected".into()),
        ]
    );
}

/// The token and signing key files are read up to a bound: a bigger file is refused, naming the file and the
/// limit, instead of being read whole (and sent as a bearer token).
#[tokio::test]
async fn credential_files_are_bounded() {
    use super::shared::{Credentials, MAX_CREDENTIAL_FILE_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t".repeat(MAX_CREDENTIAL_FILE_BYTES as usize)).unwrap();
    assert!(Credentials::load(&token, None).await.is_ok());
    std::fs::write(&token, "t".repeat(MAX_CREDENTIAL_FILE_BYTES as usize + 1)).unwrap();
    let e = Credentials::load(&token, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("token file")
            && e.contains(&token.display().to_string())
            && e.contains("65536-byte limit"),
        "{e}"
    );
    std::fs::write(&token, "tok").unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "k".repeat(MAX_CREDENTIAL_FILE_BYTES as usize + 1)).unwrap();
    let e = Credentials::load(&token, Some(&key))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("signing key file") && e.contains("65536-byte limit"),
        "{e}"
    );
    let missing = dir.path().join("missing");
    let e = Credentials::load(&missing, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("cannot read the control-plane token file"),
        "{e}"
    );
}

//! The I-JSON rules (`super::super::ijson`) as the job parser applies them: the malleability attacks and the
//! bounds, each read from a job list as the agent receives it.

use crate::source::pull::ijson::*;
use crate::source::pull::jcs;
use crate::source::pull::job::{JobError, parse_jobs};
use serde_json::{Value, json};

/// A job list with one job whose payload is `payload` (JSON text, as sent).
fn one(payload: &str) -> Result<crate::source::pull::job::Job, JobError> {
    let body = format!(
        r#"{{"jobs":[{{"id":"j1","kind":"apply","expiresAt":"2026-12-04T10:30:00Z","payload":{payload}}}]}}"#
    );
    parse_jobs(body.as_bytes()).unwrap().remove(0)
}

fn refused(payload: &str) -> JobError {
    one(payload).expect_err(payload)
}

/// The attack: two payloads that differ only in a big integer have one canonical form, so one signature;
/// the agent applied the one it parsed. Both are refused now, naming the job, the path and the reason.
#[test]
fn two_payloads_differing_in_a_big_integer_are_both_refused() {
    let a = json!({"spec": {"values": {"n": 9007199254740993u64}}});
    let b = json!({"spec": {"values": {"n": 9007199254740992u64}}});
    assert_ne!(a, b);
    assert_eq!(jcs::canonicalize(&a), jcs::canonicalize(&b), "the premise");
    for n in [
        "9007199254740993",
        "9007199254740992",
        "-9007199254740993",
        "18446744073709551615",
        "18446744073709551616",
        "1e300",
        "9007199254740992.0",
        "4503599627370496.5",
    ] {
        let e = refused(&format!(r#"{{"spec":{{"values":{{"n":{n}}}}}}}"#));
        assert_eq!(e.code, Some(reasons::NOT_I_JSON), "{n}");
        assert_eq!(e.id.as_deref(), Some("j1"));
        assert_eq!(e.field, "payload.spec.values.n", "{n}");
        assert!(
            e.to_string()
                .starts_with("JobNotIJson: job j1: payload.spec.values.n: "),
            "{e}"
        );
    }
    // In an array, in the job's own members, and as parse_job sees a value built in code.
    assert_eq!(
        refused(r#"{"items":[1,{"x":[9007199254740993]}]}"#).field,
        "payload.items[1].x[0]"
    );
    let body = br#"{"jobs":[{"id":"j1","kind":"apply","payload":{},"extra":-9007199254740993}]}"#;
    assert_eq!(
        parse_jobs(body).unwrap()[0].as_ref().unwrap_err().field,
        "extra"
    );
    let e = crate::source::pull::job::parse_job(json!({"id": "j", "kind": "apply", "payload": a}))
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        (Some(reasons::NOT_I_JSON), "payload.spec.values.n")
    );
    // The largest exact integers are fine.
    for n in ["9007199254740991", "-9007199254740991"] {
        let j = one(&format!(r#"{{"n":{n}}}"#)).unwrap();
        assert_eq!(j.payload["n"].to_string(), n);
    }
}

/// Numbers whose text says more than the double the agent applies (and the signature covers) are refused;
/// numbers that are exactly their canonical form are applied as that form reads back.
#[test]
fn numbers_must_be_exactly_their_canonical_form() {
    for (n, why) in [
        ("1e400", "beyond the range"),
        ("-1e400", "beyond the range"),
        ("1e-400", "its canonical form is 0"),
        ("1.00000000000000001", "its canonical form is 1,"),
        ("0.30000000000000000001", "its canonical form is 0.3,"),
        ("-0", "negative zero"),
        ("-0.0e7", "negative zero"),
        ("1e99999999999999999999999", "beyond the range"),
    ] {
        let e = refused(&format!(r#"{{"n":{n}}}"#));
        assert_eq!(
            (e.code, e.field.as_str()),
            (Some(reasons::NOT_I_JSON), "payload.n"),
            "{n}"
        );
        assert!(e.reason.contains(why), "{n}: {e}");
    }
    // Exact: applied as canonical JSON reads them back (an integral value as an integer).
    for (n, applied) in [
        ("0.1", json!(0.1)),
        ("1.50", json!(1.5)),
        ("1.0", json!(1)),
        ("1e2", json!(100)),
        ("-2.5E-3", json!(-0.0025)),
        ("0", json!(0)),
        ("0.0", json!(0)),
        ("5e-324", json!(5e-324)),
        ("123456789.125", json!(123456789.125)),
    ] {
        let j = one(&format!(r#"{{"n":{n}}}"#)).unwrap();
        assert_eq!(j.payload["n"], applied, "{n}");
        let canonical = jcs::canonicalize(&j.payload).unwrap();
        let back: Value = serde_json::from_str(&canonical).unwrap();
        assert_eq!(
            back, j.payload,
            "{n}: the applied payload is its canonical form read back"
        );
    }
}

/// serde_json keeps the last of two members of one name; another reader (a reviewer's, the control plane's)
/// may keep the first. Refused at any depth, names compared decoded.
#[test]
fn duplicate_member_names_are_refused_at_any_depth() {
    for (payload, path) in [
        (
            r#"{"metadata":{"labels":{"a":"x","a":"y"}}}"#,
            "payload.metadata.labels.a",
        ),
        (
            r#"{"metadata":{"labels":{"a":"x","\u0061":"y"}}}"#,
            "payload.metadata.labels.a",
        ),
        (
            r#"{"items":[{},{"image":"good","image":"evil"}]}"#,
            "payload.items[1].image",
        ),
        (
            r#"{"l":{"app.kubernetes.io/name":1,"app.kubernetes.io/name":1}}"#,
            r#"payload.l["app.kubernetes.io/name"]"#,
        ),
    ] {
        let e = refused(payload);
        assert_eq!(
            (e.code, e.field.as_str()),
            (Some(reasons::NOT_I_JSON), path),
            "{payload}"
        );
        assert!(e.reason.contains("more than once"), "{e}");
    }
    // The job's own members: a second payload or kind would hide the first.
    for (body, field) in [
        (
            r#"{"jobs":[{"id":"j1","kind":"apply","payload":{"a":1},"payload":{"a":2}}]}"#,
            "payload",
        ),
        (
            r#"{"jobs":[{"id":"j1","kind":"delete","kind":"apply","payload":{}}]}"#,
            "kind",
        ),
        (
            r#"{"jobs":[{"id":"j1","id":"j2","kind":"apply","payload":{}}]}"#,
            "id",
        ),
    ] {
        let e = parse_jobs(body.as_bytes()).unwrap().remove(0).unwrap_err();
        assert_eq!(
            (e.id.as_deref(), e.field.as_str()),
            (Some("j1"), field),
            "{body}"
        );
    }
    // Two job lists in one answer: the answer is refused (nothing acked, so nothing is lost).
    let e = parse_jobs(br#"{"jobs":[],"jobs":[{"id":"j"}]}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate member \"jobs\""), "{e}");
}

/// Strings must be Unicode text: a lone surrogate or bytes that are not UTF-8 are refused by id; the other
/// jobs of the answer are read.
#[test]
fn strings_that_are_not_unicode_are_refused_by_id() {
    let mut body = br#"{"jobs":[{"id":"j1","kind":"apply","payload":{"a":"\ud800"}},
        {"id":"j2","kind":"apply","payload":{"a":"\udc00x"}},
        {"id":"j3","kind":"apply","payload":{"a":"XX"}},
        {"id":"j4","kind":"apply","payload":{"a":"\ud83d\ude00 \u00e9"}}]}"#
        .to_vec();
    let at = body.windows(2).position(|w| w == b"XX").unwrap();
    body[at] = 0xff;
    let jobs = parse_jobs(&body).unwrap();
    for (i, id) in ["j1", "j2", "j3"].into_iter().enumerate() {
        let e = jobs[i].as_ref().unwrap_err();
        assert_eq!(
            (e.id.as_deref(), e.field.as_str(), e.code),
            (Some(id), "payload.a", Some(reasons::NOT_I_JSON))
        );
    }
    assert_eq!(jobs[3].as_ref().unwrap().payload["a"], "\u{1f600} \u{e9}");
}

/// A deep job is refused by id, before serde_json's recursion limit could fail the whole answer, and without
/// recursion in the reader (a million levels).
#[test]
fn deep_jobs_are_refused_by_id_and_the_others_read() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for n in [MAX_DEPTH, 200, 1_000_000] {
        let body = format!(
            r#"{{"jobs":[{{"id":"deep","kind":"apply","payload":{{"a":{}}}}},{{"id":"ok","kind":"apply","payload":{{}}}}]}}"#,
            nest(n)
        );
        let jobs = parse_jobs(body.as_bytes()).unwrap();
        let e = jobs[0].as_ref().unwrap_err();
        assert_eq!(
            (e.id.as_deref(), e.code),
            (Some("deep"), Some(reasons::TOO_DEEP)),
            "{n}"
        );
        assert!(e.field.starts_with("payload.a[0][0]"), "{}", e.field);
        assert!(jobs[1].is_ok());
    }
    // At the bound: the job (level 1), its payload (2), `a` (3) and MAX_DEPTH - 3 arrays.
    let body = format!(
        r#"{{"jobs":[{{"id":"j","kind":"apply","payload":{{"a":{}}}}}]}}"#,
        nest(MAX_DEPTH - 2)
    );
    assert!(parse_jobs(body.as_bytes()).unwrap()[0].is_ok());
    // A value built in code is bounded the same way.
    let mut v = json!(1);
    for _ in 0..MAX_DEPTH {
        v = json!([v]);
    }
    let e = crate::source::pull::job::parse_job(
        json!({"id": "j", "kind": "apply", "payload": {"a": v}}),
    )
    .unwrap_err();
    assert_eq!(e.code, Some(reasons::TOO_DEEP));
}

#[test]
fn answers_that_are_not_json_are_refused_whole() {
    for body in [
        &b"{"[..],
        b"{\"jobs\":[{\"id\":\"j\"}",
        b"{\"jobs\":[1 2]}",
        b"{} x",
        b"{\"jobs\":[01]}",
        b"",
        b"[]",
    ] {
        assert!(
            parse_jobs(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(
        parse_jobs(br#" {"jobs" : null , "more": {"x": [1e400, "\ud800"]}} "#)
            .unwrap()
            .is_empty()
    );
    assert!(
        parse_jobs(br#"{"jobs":"x"}"#)
            .unwrap_err()
            .to_string()
            .contains("not an array")
    );
}

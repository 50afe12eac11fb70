//! Approval claims (the v1alpha1 contract, docs/api.md): the control plane's `vws1` token that approves one
//! Operation, as written: its name and a digest of its spec.
//!
//! Format: `vws1.<base64url(payload)>.<hex HMAC-SHA256(secret, base64url part)>`, where the payload is the
//! compact JSON object `{"at":…,"by":…,"exp":…,"op":…,"rid":…,"spec":…,"v":2}` with sorted keys (what the
//! control plane's `json.dumps(payload, sort_keys=True, separators=(",", ":"))` produces). The MAC covers the
//! base64url text exactly as it appears in the claim, so the payload bytes are never re-serialized for
//! verification. `spec` is [`spec_digest`]: approving one restore cannot approve another with other parameters.
//! Version 1 payloads (no `spec`) approved a name only and are refused.
//!
//! Pure: the caller passes the secret and the current time. A failed check is reported by the Operation
//! reconciler as `Blocked=True/AwaitingApproval` with the error's message; a later valid claim unblocks it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::OperationSpec;

/// The only claim format this operator understands.
pub const PREFIX: &str = "vws1";
/// The payload version (`v`) of the `vws1` format: 2, the version that binds the spec.
pub const VERSION: i64 = 2;
/// The field the claim is read from, for messages.
const FIELD: &str = "spec.approvals.claim";

type HmacSha256 = Hmac<Sha256>;

/// The decoded payload. Field order is the sorted key order, so serializing it gives the canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimPayload {
    /// When the approval was given (RFC 3339, as the control plane wrote it).
    pub at: String,
    /// Who approved.
    pub by: String,
    /// Expiry, seconds since the Unix epoch (inclusive: the claim is valid while `now <= exp`).
    pub exp: i64,
    /// The name of the Operation this claim approves.
    pub op: String,
    /// The control plane's approval request id.
    pub rid: i64,
    /// The digest of the approved spec ([`spec_digest`]): `sha256:<64 hex digits>`.
    pub spec: String,
    /// Format version; must be [`VERSION`].
    pub v: i64,
}

/// Why a claim does not approve the Operation. Every variant maps to `Blocked=True/AwaitingApproval`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("approval required: {FIELD} is missing")]
    Missing,
    #[error("approval claims cannot be checked: no approval secret is configured")]
    SecretNotConfigured,
    #[error("{FIELD} is malformed: {0}")]
    Malformed(String),
    #[error(
        "{FIELD} has a bad signature (not issued with this cluster's approval secret, or altered)"
    )]
    BadSignature,
    #[error(
        "{FIELD} is a version 1 claim, which approves an Operation by name only; version {VERSION} claims also bind its spec (the payload's \"spec\" digest): approve the Operation again"
    )]
    NameOnly,
    #[error("{FIELD} has payload version {found}, expected {VERSION}")]
    WrongVersion { found: i64 },
    #[error(
        "{FIELD} approves another spec ({claimed}), not this one ({expected}): type, engine, target or parameters changed since the approval"
    )]
    WrongSpec { claimed: String, expected: String },
    #[error("{FIELD} approves Operation {claimed:?}, not {expected:?}")]
    WrongOperation { claimed: String, expected: String },
    #[error("{FIELD} expired at {exp} (now {now}, seconds since the epoch)")]
    Expired { exp: i64, now: i64 },
}

/// The digest a claim binds: SHA-256 of the canonical JSON of what the Operation asks for, its namespace,
/// type, engine, target and parameters (absent parameters are `{}`; `approvals`, which carries the claim,
/// is not part of it): `{"engine":…,"namespace":…,"parameters":{…},"targetRef":{…},"type":…}`, keys sorted
/// at every level, no whitespace, non-ASCII as `\uXXXX`, which is Python's
/// `json.dumps(doc, sort_keys=True, separators=(",", ":"))`. Written `sha256:<hex>`.
pub fn spec_digest(namespace: &str, spec: &OperationSpec) -> String {
    let mut doc = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(map) = doc.as_object_mut() {
        map.remove("approvals");
        map.entry("parameters")
            .or_insert_with(|| Value::Object(Default::default()));
        map.insert("namespace".into(), Value::String(namespace.into()));
    }
    let canonical = ascii_escape(&sorted(&doc).to_string());
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// `value` with the keys of every map in sorted order (serde_json keeps insertion order here).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Verify a claim for the Operation `operation` whose spec has the digest `digest` ([`spec_digest`]) at `now`
/// (seconds since the Unix epoch).
///
/// Checks, in order: present, three dot-separated parts, prefix `vws1`, the MAC (constant time) over the
/// middle part, then the payload: `v == 2` (a version 1 claim is refused as name-only), `op == operation`,
/// `spec == digest`, `now <= exp`. Surrounding whitespace of the claim and of the secret is ignored (secrets
/// usually come from files with a trailing newline).
pub fn verify_claim(
    claim: Option<&str>,
    secret: &[u8],
    operation: &str,
    digest: &str,
    now: i64,
) -> Result<ClaimPayload, ClaimError> {
    let claim = claim.map(str::trim).unwrap_or("");
    if claim.is_empty() {
        return Err(ClaimError::Missing);
    }
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        return Err(ClaimError::SecretNotConfigured);
    }
    let parts: Vec<&str> = claim.split('.').collect();
    let [prefix, body, signature] = parts[..] else {
        return Err(ClaimError::Malformed(format!(
            "expected 3 dot-separated parts, found {}",
            parts.len()
        )));
    };
    if prefix != PREFIX {
        return Err(ClaimError::Malformed(format!(
            "prefix {:?} is not {PREFIX:?}",
            truncate(prefix)
        )));
    }
    let signature = hex::decode(signature).map_err(|_| {
        ClaimError::Malformed("the signature part is not hex-encoded HMAC-SHA256".into())
    })?;
    let mut mac =
        HmacSha256::new_from_slice(secret).map_err(|_| ClaimError::SecretNotConfigured)?;
    mac.update(body.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| ClaimError::BadSignature)?;

    // Python's urlsafe_b64encode pads with '='; the unpadded form is canonical. Accept both.
    let raw = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|e| ClaimError::Malformed(format!("the payload is not base64url: {e}")))?;
    let not_a_claim = |e: serde_json::Error| {
        ClaimError::Malformed(format!("the payload is not a vws1 object: {e}"))
    };
    let doc: Value = serde_json::from_slice(&raw).map_err(not_a_claim)?;
    match doc.get("v").and_then(Value::as_i64) {
        Some(1) => return Err(ClaimError::NameOnly),
        Some(v) if v != VERSION => return Err(ClaimError::WrongVersion { found: v }),
        _ => {}
    }
    let payload: ClaimPayload = serde_json::from_value(doc).map_err(not_a_claim)?;
    if payload.op.trim() != operation.trim() {
        return Err(ClaimError::WrongOperation {
            claimed: truncate(&payload.op).to_string(),
            expected: operation.to_string(),
        });
    }
    if payload.spec != digest {
        return Err(ClaimError::WrongSpec {
            claimed: truncate(&payload.spec).to_string(),
            expected: digest.to_string(),
        });
    }
    if now > payload.exp {
        return Err(ClaimError::Expired {
            exp: payload.exp,
            now,
        });
    }
    Ok(payload)
}

/// Issue a claim the way the control plane does (for tests and the demo). The payload JSON is byte-for-byte
/// what Python's `json.dumps(payload, sort_keys=True, separators=(",", ":"))` writes, including its
/// `\uXXXX` escaping of non-ASCII characters. An empty secret is refused.
pub fn sign_claim(secret: &[u8], payload: &ClaimPayload) -> Result<String, ClaimError> {
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        return Err(ClaimError::SecretNotConfigured);
    }
    let json = serde_json::to_string(payload)
        .map_err(|e| ClaimError::Malformed(format!("the payload does not serialize: {e}")))?;
    let body = URL_SAFE_NO_PAD.encode(ascii_escape(&json));
    let mut mac =
        HmacSha256::new_from_slice(secret).map_err(|_| ClaimError::SecretNotConfigured)?;
    mac.update(body.as_bytes());
    Ok(format!(
        "{PREFIX}.{body}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Escape every non-ASCII character as `\uXXXX` (UTF-16 code units), like Python's `ensure_ascii=True`.
/// Non-ASCII characters only occur inside JSON strings, so this keeps the document valid.
fn ascii_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Claim parts quoted in messages are cut short: they come from user input.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-hex";
    const NOW: i64 = 1_780_000_000;
    const DIGEST: &str = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn payload(op: &str, exp: i64) -> ClaimPayload {
        ClaimPayload {
            at: "2026-06-03T12:00:00Z".into(),
            by: "admin".into(),
            exp,
            op: op.into(),
            rid: 42,
            spec: DIGEST.into(),
            v: 2,
        }
    }

    fn body_of(claim: &str) -> String {
        claim.split('.').nth(1).unwrap().to_string()
    }

    /// Re-sign an arbitrary payload text with the right secret (to reach the checks after the MAC).
    fn signed_raw(json: &str) -> String {
        let body = URL_SAFE_NO_PAD.encode(json);
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(body.as_bytes());
        format!("vws1.{body}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_valid_claim_verifies_and_returns_its_payload() {
        let claim = sign_claim(SECRET, &payload("op-restore-1", NOW + 3600)).unwrap();
        let got = verify_claim(Some(&claim), SECRET, "op-restore-1", DIGEST, NOW).unwrap();
        assert_eq!(got, payload("op-restore-1", NOW + 3600));
        // Expiry is inclusive.
        let claim = sign_claim(SECRET, &payload("op", NOW)).unwrap();
        assert!(verify_claim(Some(&claim), SECRET, "op", DIGEST, NOW).is_ok());
        // Whitespace around claim and secret (a file's trailing newline) is ignored.
        let padded = format!("  {claim}\n");
        assert!(verify_claim(Some(&padded), b"test-secret-hex\n", "op", DIGEST, NOW).is_ok());
        assert_eq!(
            sign_claim(b"\n", &payload("op", NOW)),
            Err(ClaimError::SecretNotConfigured)
        );
    }

    #[test]
    fn the_payload_is_canonical_sorted_compact_json() {
        let claim = sign_claim(SECRET, &payload("op-restore-1", 1_780_003_600)).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body_of(&claim)).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"at":"2026-06-03T12:00:00Z","by":"admin","exp":1780003600,"op":"op-restore-1","rid":42,"spec":"{DIGEST}","v":2}}"#
            )
        );
        let mut p = payload("op", 1);
        p.by = "Zoë 🙂".into();
        let claim = sign_claim(SECRET, &p).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body_of(&claim)).unwrap()).unwrap();
        assert!(json.contains(r#""by":"Zo\u00eb \ud83d\ude42""#), "{json}");
        assert_eq!(serde_json::from_str::<ClaimPayload>(&json).unwrap(), p);
    }

    #[test]
    fn a_claim_from_an_independent_implementation_verifies() {
        // Built by hand: base64url of the canonical JSON, MAC computed with the hmac crate directly.
        let json = format!(
            r#"{{"at":"2026-06-03T12:00:00Z","by":"ops@example.com","exp":{},"op":"restore-db","rid":7,"spec":"{DIGEST}","v":2}}"#,
            NOW + 60
        );
        let claim = signed_raw(&json);
        let p = verify_claim(Some(&claim), SECRET, "restore-db", DIGEST, NOW).unwrap();
        assert_eq!((p.rid, p.by.as_str()), (7, "ops@example.com"));
        // Padded base64 (Python's urlsafe_b64encode) is accepted too; the MAC covers the text as sent.
        let padded_body = base64::engine::general_purpose::URL_SAFE.encode(&json);
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(padded_body.as_bytes());
        let claim = format!(
            "vws1.{padded_body}.{}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert!(verify_claim(Some(&claim), SECRET, "restore-db", DIGEST, NOW).is_ok());
    }

    #[test]
    fn every_failure_has_its_own_error() {
        let good = sign_claim(SECRET, &payload("op-a", NOW + 10)).unwrap();
        let cases: Vec<(&str, Option<String>, &[u8], ClaimError)> = vec![
            ("absent", None, SECRET, ClaimError::Missing),
            ("empty", Some("  ".into()), SECRET, ClaimError::Missing),
            (
                "no secret",
                Some(good.clone()),
                b" \n",
                ClaimError::SecretNotConfigured,
            ),
            (
                "two parts",
                Some("vws1.abc".into()),
                SECRET,
                ClaimError::Malformed("expected 3 dot-separated parts, found 2".into()),
            ),
            (
                "four parts",
                Some(format!("{good}.tampered")),
                SECRET,
                ClaimError::Malformed("expected 3 dot-separated parts, found 4".into()),
            ),
            (
                "other prefix",
                Some(good.replacen("vws1", "vws2", 1)),
                SECRET,
                ClaimError::Malformed("prefix \"vws2\" is not \"vws1\"".into()),
            ),
            (
                "digest not hex",
                Some(format!("vws1.{}.zz", body_of(&good))),
                SECRET,
                ClaimError::Malformed("the signature part is not hex-encoded HMAC-SHA256".into()),
            ),
            (
                "wrong secret",
                Some(sign_claim(b"other-secret", &payload("op-a", NOW + 10)).unwrap()),
                SECRET,
                ClaimError::BadSignature,
            ),
            (
                "payload altered",
                Some({
                    let other = sign_claim(SECRET, &payload("op-b", NOW + 10)).unwrap();
                    format!(
                        "vws1.{}.{}",
                        body_of(&other),
                        good.rsplit('.').next().unwrap()
                    )
                }),
                SECRET,
                ClaimError::BadSignature,
            ),
            (
                "truncated digest",
                Some(good[..good.len() - 2].to_string()),
                SECRET,
                ClaimError::BadSignature,
            ),
            (
                "wrong version",
                Some(signed_raw(
                    r#"{"at":"x","by":"y","exp":9999999999,"op":"op-a","rid":1,"spec":"s","v":3}"#,
                )),
                SECRET,
                ClaimError::WrongVersion { found: 3 },
            ),
            (
                "a version 1 claim approves a name only",
                Some(signed_raw(
                    r#"{"at":"x","by":"y","exp":9999999999,"op":"op-a","rid":1,"v":1}"#,
                )),
                SECRET,
                ClaimError::NameOnly,
            ),
            (
                "other spec",
                Some(
                    sign_claim(SECRET, &{
                        let mut p = payload("op-a", NOW + 10);
                        p.spec = "sha256:ffff".into();
                        p
                    })
                    .unwrap(),
                ),
                SECRET,
                ClaimError::WrongSpec {
                    claimed: "sha256:ffff".into(),
                    expected: DIGEST.into(),
                },
            ),
            (
                "wrong operation",
                Some(sign_claim(SECRET, &payload("op-b", NOW + 10)).unwrap()),
                SECRET,
                ClaimError::WrongOperation {
                    claimed: "op-b".into(),
                    expected: "op-a".into(),
                },
            ),
            (
                "expired",
                Some(sign_claim(SECRET, &payload("op-a", NOW - 1)).unwrap()),
                SECRET,
                ClaimError::Expired {
                    exp: NOW - 1,
                    now: NOW,
                },
            ),
        ];
        for (name, claim, secret, want) in cases {
            let got = verify_claim(claim.as_deref(), secret, "op-a", DIGEST, NOW);
            assert_eq!(got, Err(want), "case {name}");
        }
    }

    #[test]
    fn a_signed_payload_that_is_not_a_claim_is_malformed() {
        for json in [
            "not json",
            r#"{"v":2}"#,
            r#"{"at":"x","by":"y","exp":"soon","op":"op-a","rid":1,"spec":"s","v":2}"#,
        ] {
            let got = verify_claim(Some(&signed_raw(json)), SECRET, "op-a", DIGEST, NOW);
            assert!(
                matches!(&got, Err(ClaimError::Malformed(m)) if m.starts_with("the payload is not a vws1 object")),
                "{json}: {got:?}"
            );
        }
        let body_not_base64 = {
            let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
            mac.update(b"***");
            format!("vws1.***.{}", hex::encode(mac.finalize().into_bytes()))
        };
        assert!(matches!(
            verify_claim(Some(&body_not_base64), SECRET, "op-a", DIGEST, NOW),
            Err(ClaimError::Malformed(m)) if m.starts_with("the payload is not base64url")
        ));
    }

    #[test]
    fn messages_name_the_field_and_never_quote_the_secret() {
        let claim = sign_claim(SECRET, &payload("op-b", NOW + 10)).unwrap();
        let err = verify_claim(Some(&claim), SECRET, "op-a", DIGEST, NOW).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("spec.approvals.claim approves Operation \"op-b\""),
            "{msg}"
        );
        assert!(!msg.contains("test-secret-hex"));
        let long_prefix = format!("{}.a.b", "x".repeat(500));
        let msg = verify_claim(Some(&long_prefix), SECRET, "op-a", DIGEST, NOW)
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    fn spec(params: serde_json::Value, claim: Option<&str>) -> OperationSpec {
        serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                          "name": "app"},
            "type": "Restore", "engine": "velero", "parameters": params,
            "approvals": {"required": true, "claim": claim},
        }))
        .unwrap()
    }

    #[test]
    fn the_spec_digest_is_sha256_of_the_canonical_request() {
        // An independent computation: the canonical text written by hand, hashed directly.
        let canonical = r#"{"engine":"velero","namespace":"team-beta","parameters":{"backupName":"team-beta-b1","namespaceMapping":{"team-beta":"team-beta"},"x":"Zo\u00eb"},"targetRef":{"apiVersion":"apps.vworkspace.io/v1alpha1","kind":"ApplicationInstance","name":"app"},"type":"Restore"}"#;
        let want = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let params = serde_json::json!({"x": "Zoë", "namespaceMapping": {"team-beta": "team-beta"},
                                        "backupName": "team-beta-b1"});
        assert_eq!(spec_digest("team-beta", &spec(params.clone(), None)), want);
        // The claim itself is not part of it; parameters, namespace and target are.
        assert_eq!(
            spec_digest("team-beta", &spec(params.clone(), Some("vws1.a.b"))),
            want
        );
        let mut other = params.clone();
        other["backupName"] = "team-beta-b2".into();
        assert_ne!(spec_digest("team-beta", &spec(other, None)), want);
        assert_ne!(spec_digest("team-alpha", &spec(params.clone(), None)), want);
        let mut retarget = spec(params, None);
        retarget.target_ref.name = "other".into();
        assert_ne!(spec_digest("team-beta", &retarget), want);
        // No parameters and empty parameters ask for the same thing.
        let none = spec(serde_json::Value::Null, None);
        assert_eq!(
            spec_digest("n", &none),
            spec_digest("n", &spec(serde_json::json!({}), None))
        );
    }

    #[test]
    fn a_claim_for_other_parameters_is_refused() {
        let approved = spec(serde_json::json!({"backupName": "team-beta-b1"}), None);
        let mut p = payload("restore-1", NOW + 60);
        p.spec = spec_digest("team-beta", &approved);
        let claim = sign_claim(SECRET, &p).unwrap();
        let ok = spec_digest(
            "team-beta",
            &spec(
                serde_json::json!({"backupName": "team-beta-b1"}),
                Some(&claim),
            ),
        );
        assert!(verify_claim(Some(&claim), SECRET, "restore-1", &ok, NOW).is_ok());
        let swapped = spec_digest(
            "team-beta",
            &spec(serde_json::json!({"backupName": "team-beta-b2"}), None),
        );
        assert!(matches!(
            verify_claim(Some(&claim), SECRET, "restore-1", &swapped, NOW),
            Err(ClaimError::WrongSpec { .. })
        ));
        let msg = verify_claim(Some(&claim), SECRET, "restore-1", &swapped, NOW)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("parameters changed since the approval"),
            "{msg}"
        );
    }

    #[test]
    fn the_examples_claim_binds_its_spec_as_python_computes_it() {
        let doc: Value = serde_saphyr::from_str(include_str!(
            "../../../../examples/cluster-repo/clusters/eu-prod-1/namespaces/team-beta/operation-vaultwarden-restore.yaml"
        ))
        .unwrap();
        let spec: OperationSpec = serde_json::from_value(doc["spec"].clone()).unwrap();
        let claim = doc["spec"]["approvals"]["claim"].as_str().unwrap();
        let payload: ClaimPayload =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body_of(claim)).unwrap()).unwrap();
        // hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()) in Python.
        let python = "sha256:405cc29e62a315d1b227b66a0d2404421245be7a89daf44121d402cd82ebb512";
        assert_eq!((payload.v, payload.spec.as_str()), (VERSION, python));
        assert_eq!(spec_digest("team-beta", &spec), python);
    }
}

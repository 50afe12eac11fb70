//! The output commit's message and its trailers: the only state hydrate keeps, and it lives in Git.
//!
//! ```text
//! hydrate eu-prod-1: render 7d3f2a1 (12 objects; +2 ~1 -0)
//!
//! Rendered clusters/eu-prod-1 at 7d3f2a1… with vworkspace-operator 0.1.0.
//!
//! Intent-Commit: 7d3f2a1c…
//! Hydrated-Cluster: eu-prod-1
//! Verified-Intent: 7d3f2a1c… ssh SHA256:uWHf… alice@example.com
//! ```
//!
//! `Intent-Commit` names the intent revision rendered (the next run verifies from there), `Hydrated-Cluster`
//! the cluster, and one `Verified-Intent` per intent commit that this rendering took in, with its verdict
//! (signature kind, key fingerprint, signer): the `Rendered` notes are derived from them, so they can be
//! written again after a crash. Pure.

use gix::ObjectId;

pub const INTENT_COMMIT: &str = "Intent-Commit";
pub const HYDRATED_CLUSTER: &str = "Hydrated-Cluster";
pub const VERIFIED_INTENT: &str = "Verified-Intent";

/// An intent commit taken in by a rendering, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIntent {
    pub commit: ObjectId,
    /// `ssh`, `openpgp` or `x509`.
    pub kind: String,
    pub fingerprint: String,
    pub signer: String,
}

/// The trailers of an output commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trailers {
    pub intent_commit: Option<ObjectId>,
    pub cluster: Option<String>,
    pub verified: Vec<VerifiedIntent>,
}

/// What the message says.
#[derive(Debug, Clone)]
pub struct OutputMessage<'a> {
    pub cluster: &'a str,
    pub intent_path: &'a str,
    pub intent_commit: ObjectId,
    pub objects: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub verified: &'a [VerifiedIntent],
}

/// A value fit for one trailer line: no line breaks.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ").trim().to_string()
}

/// The full commit message.
pub fn format(m: &OutputMessage<'_>) -> String {
    let short = m.intent_commit.to_hex_with_len(7);
    let mut out = format!(
        "hydrate {}: render {short} ({} objects; +{} ~{} -{})\n\nRendered {} at {} with vworkspace-operator {}.\n\n",
        one_line(m.cluster),
        m.objects,
        m.added,
        m.changed,
        m.removed,
        one_line(m.intent_path),
        m.intent_commit,
        env!("CARGO_PKG_VERSION"),
    );
    out.push_str(&format!("{INTENT_COMMIT}: {}\n", m.intent_commit));
    out.push_str(&format!("{HYDRATED_CLUSTER}: {}\n", one_line(m.cluster)));
    for v in m.verified {
        out.push_str(&format!(
            "{VERIFIED_INTENT}: {} {} {} {}\n",
            v.commit,
            one_line(&v.kind).replace(' ', "_"),
            one_line(&v.fingerprint).replace(' ', "_"),
            one_line(&v.signer)
        ));
    }
    out
}

/// Read the trailers of a commit message: the `Token: value` lines of its last paragraph. Lines that do not
/// parse are ignored; an output commit of this tool always has `Intent-Commit` and `Hydrated-Cluster`.
pub fn parse(message: &str) -> Trailers {
    let text = message.replace("\r\n", "\n");
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or("");
    let mut out = Trailers::default();
    for line in last.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key {
            INTENT_COMMIT => out.intent_commit = ObjectId::from_hex(value.as_bytes()).ok(),
            HYDRATED_CLUSTER => out.cluster = Some(value.to_string()),
            VERIFIED_INTENT => {
                let mut parts = value.splitn(4, ' ');
                let (Some(commit), Some(kind), Some(fingerprint)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let Ok(commit) = ObjectId::from_hex(commit.as_bytes()) else {
                    continue;
                };
                out.verified.push(VerifiedIntent {
                    commit,
                    kind: kind.to_string(),
                    fingerprint: fingerprint.to_string(),
                    signer: parts.next().unwrap_or("").to_string(),
                });
            }
            _ => {}
        }
    }
    out
}

/// The message of a raw commit object (what follows the first blank line), decoded lossily.
pub fn body(raw: &[u8]) -> String {
    let body = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(&[][..], |at| &raw[at + 2..]);
    String::from_utf8_lossy(body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ObjectId::from_hex(b"7d3f2a1c00000000000000000000000000000001").unwrap();
        let v = vec![
            VerifiedIntent {
                commit: t,
                kind: "ssh".into(),
                fingerprint: "SHA256:abc".into(),
                signer: "alice@example.com".into(),
            },
            VerifiedIntent {
                commit: ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap(),
                kind: "openpgp".into(),
                fingerprint: "ABCDEF".into(),
                signer: "Bob Builder <bob@example.com>\nInjected: x".into(),
            },
        ];
        let text = format(&OutputMessage {
            cluster: "eu-prod-1",
            intent_path: "clusters/eu-prod-1",
            intent_commit: t,
            objects: 12,
            added: 2,
            changed: 1,
            removed: 0,
            verified: &v,
        });
        assert!(
            text.starts_with("hydrate eu-prod-1: render 7d3f2a1 (12 objects; +2 ~1 -0)\n\n"),
            "{text}"
        );
        let parsed = parse(&text);
        assert_eq!(parsed.intent_commit, Some(t));
        assert_eq!(parsed.cluster.as_deref(), Some("eu-prod-1"));
        assert_eq!(parsed.verified.len(), 2);
        assert_eq!(parsed.verified[0], v[0]);
        assert_eq!(
            parsed.verified[1].signer,
            "Bob Builder <bob@example.com> Injected: x"
        );
        // Only the last paragraph counts: a trailer-looking line in the body is not a trailer.
        let body = format!("subject\n\n{INTENT_COMMIT}: {t}\n\nsomething else\n");
        assert_eq!(parse(&body), Trailers::default());
    }
}

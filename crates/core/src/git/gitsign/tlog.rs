//! The Rekor transparency-log entry gitsign embeds in offline mode, and its offline verification.
//!
//! The entry is a serialized `dev.sigstore.rekor.v1.TransparencyLogEntry` protobuf (sigstore
//! protobuf-specs) with its `canonicalized_body` cleared: the body is the hashedrekord 0.0.1 entry
//! of this very signature, so it is rebuilt here from the signature and certificate, exactly as
//! gitsign's `ToLogEntry` does. Checks, all against the log key of the trusted root:
//! - the signed inclusion promise (SET): the log's signature over the canonical JSON
//!   `{"body","integratedTime","logID","logIndex"}`. It is what authenticates the integrated time;
//! - the Merkle inclusion proof (RFC 6962 / RFC 9162 §2.1.3) of the rebuilt body's leaf hash up to
//!   the proof's root hash, and the signed checkpoint (signed note) that commits to that root.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use sha2::{Digest as _, Sha256, Sha384};

use super::GitsignError;
use super::trusted_root::{LogKey, TransparencyLog, TrustedRoot};

/// A decoded `TransparencyLogEntry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// The entry's global index in the log (across shards); the SET covers this one.
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: i64,
    pub inclusion_promise: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: Option<Vec<u8>>,
}

/// A decoded `InclusionProof`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InclusionProof {
    /// Index of the leaf in the tree (shard) the proof is for.
    pub log_index: u64,
    pub root_hash: Vec<u8>,
    pub tree_size: u64,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

/// What a verified log entry establishes.
#[derive(Debug, Clone)]
pub(crate) struct LoggedEntry {
    pub integrated_time: Timestamp,
    pub log_index: u64,
    pub log_url: String,
    pub inclusion_proof: bool,
}

fn malformed(reason: impl Into<String>) -> GitsignError {
    GitsignError::LogEntryMalformed {
        reason: reason.into(),
    }
}

/// Minimal protobuf wire-format reader: varints and length-delimited fields; fixed-width fields are
/// skipped; groups are rejected.
struct Wire<'a> {
    buf: &'a [u8],
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, GitsignError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.buf = rest;
            if i == 9 && byte > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], GitsignError> {
        let len = usize::try_from(len).map_err(|_| malformed("field length too large"))?;
        if len > self.buf.len() {
            return Err(malformed("field runs past the end of the message"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, GitsignError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = self.varint()?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            other => return Err(malformed(format!("unsupported wire type {other}"))),
        };
        Ok(Some((number, field)))
    }
}

/// Visit every field of `buf`, rejecting a second occurrence of any field not listed as repeated.
fn for_each_field<'a>(
    message: &str,
    buf: &'a [u8],
    repeated: &[u64],
    mut visit: impl FnMut(u64, Field<'a>) -> Result<(), GitsignError>,
) -> Result<(), GitsignError> {
    let mut wire = Wire { buf };
    let mut seen = Vec::new();
    while let Some((number, field)) = wire.next()? {
        if !repeated.contains(&number) {
            if seen.contains(&number) {
                return Err(malformed(format!("{message} field {number} appears twice")));
            }
            seen.push(number);
        }
        visit(number, field)?;
    }
    Ok(())
}

fn varint_field(message: &str, number: u64, field: Field<'_>) -> Result<u64, GitsignError> {
    match field {
        Field::Varint(v) => Ok(v),
        _ => Err(malformed(format!(
            "{message} field {number} is not a varint"
        ))),
    }
}

fn bytes_field<'a>(message: &str, number: u64, field: Field<'a>) -> Result<&'a [u8], GitsignError> {
    match field {
        Field::Bytes(b) => Ok(b),
        _ => Err(malformed(format!(
            "{message} field {number} is not length-delimited"
        ))),
    }
}

fn string_field(message: &str, number: u64, field: Field<'_>) -> Result<String, GitsignError> {
    String::from_utf8(bytes_field(message, number, field)?.to_vec())
        .map_err(|_| malformed(format!("{message} field {number} is not UTF-8")))
}

fn non_negative(message: &str, name: &str, value: u64) -> Result<u64, GitsignError> {
    // int64 fields: a negative value arrives as a huge two's-complement varint.
    if value > i64::MAX as u64 {
        return Err(malformed(format!("{message}.{name} is negative")));
    }
    Ok(value)
}

/// Decode a serialized `TransparencyLogEntry`.
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<LogEntry, GitsignError> {
    const M: &str = "TransparencyLogEntry";
    let mut entry = LogEntry::default();
    let mut has_log_id = false;
    let mut has_kind = false;
    for_each_field(M, bytes, &[], |number, field| {
        match number {
            1 => entry.log_index = non_negative(M, "log_index", varint_field(M, 1, field)?)?,
            2 => {
                has_log_id = true;
                for_each_field("LogId", bytes_field(M, 2, field)?, &[], |n, f| {
                    if n == 1 {
                        entry.log_id = bytes_field("LogId", 1, f)?.to_vec();
                    }
                    Ok(())
                })?;
            }
            3 => {
                has_kind = true;
                for_each_field("KindVersion", bytes_field(M, 3, field)?, &[], |n, f| {
                    match n {
                        1 => entry.kind = string_field("KindVersion", 1, f)?,
                        2 => entry.version = string_field("KindVersion", 2, f)?,
                        _ => {}
                    }
                    Ok(())
                })?;
            }
            4 => {
                let t = non_negative(M, "integrated_time", varint_field(M, 4, field)?)?;
                entry.integrated_time =
                    i64::try_from(t).map_err(|_| malformed("integrated_time out of range"))?;
            }
            5 => {
                let mut set = Vec::new();
                for_each_field(
                    "InclusionPromise",
                    bytes_field(M, 5, field)?,
                    &[],
                    |n, f| {
                        if n == 1 {
                            set = bytes_field("InclusionPromise", 1, f)?.to_vec();
                        }
                        Ok(())
                    },
                )?;
                entry.inclusion_promise = Some(set);
            }
            6 => entry.inclusion_proof = Some(decode_proof(bytes_field(M, 6, field)?)?),
            7 => entry.canonicalized_body = Some(bytes_field(M, 7, field)?.to_vec()),
            _ => {}
        }
        Ok(())
    })?;
    if !has_log_id || entry.log_id.is_empty() {
        return Err(malformed("it has no log_id"));
    }
    if !has_kind {
        return Err(malformed("it has no kind_version"));
    }
    if entry.integrated_time == 0 {
        return Err(malformed("it has no integrated_time"));
    }
    Ok(entry)
}

fn decode_proof(bytes: &[u8]) -> Result<InclusionProof, GitsignError> {
    const M: &str = "InclusionProof";
    let mut proof = InclusionProof::default();
    for_each_field(M, bytes, &[4], |number, field| {
        match number {
            1 => proof.log_index = non_negative(M, "log_index", varint_field(M, 1, field)?)?,
            2 => proof.root_hash = bytes_field(M, 2, field)?.to_vec(),
            3 => proof.tree_size = non_negative(M, "tree_size", varint_field(M, 3, field)?)?,
            4 => proof.hashes.push(bytes_field(M, 4, field)?.to_vec()),
            5 => {
                let mut envelope = String::new();
                for_each_field("Checkpoint", bytes_field(M, 5, field)?, &[], |n, f| {
                    if n == 1 {
                        envelope = string_field("Checkpoint", 1, f)?;
                    }
                    Ok(())
                })?;
                proof.checkpoint = Some(envelope);
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(proof)
}

/// PEM as Go's `pem.EncodeToMemory` writes it (64-column base64 lines), which is what gitsign puts
/// into the hashedrekord entry.
fn certificate_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The canonical (RFC 8785) JSON body of the hashedrekord 0.0.1 entry for this signature: the
/// SHA-256 of the signed attributes, the signature, and the PEM certificate. Every value is hex or
/// base64, so no JSON escaping is needed; keys are in sorted order.
pub(crate) fn hashedrekord_body(
    signed_attrs_der: &[u8],
    signature: &[u8],
    cert_der: &[u8],
) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":"#,
            r#"{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","#,
            r#""publicKey":{{"content":"{}"}}}}}}}}"#
        ),
        hex::encode(Sha256::digest(signed_attrs_der)),
        STANDARD.encode(signature),
        STANDARD.encode(certificate_pem(cert_der)),
    )
    .into_bytes()
}

/// The canonical JSON a Rekor v1 signed entry timestamp (inclusion promise) signs.
pub(crate) fn inclusion_promise_payload(
    body: &[u8],
    integrated_time: i64,
    log_id: &[u8],
    log_index: u64,
) -> Vec<u8> {
    format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(body),
        integrated_time,
        hex::encode(log_id),
        log_index
    )
    .into_bytes()
}

/// RFC 6962 leaf hash.
pub(crate) fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or why the proof is malformed.
pub(crate) fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    proof: &[Vec<u8>],
) -> Result<[u8; 32], String> {
    if index >= size {
        return Err(format!(
            "leaf index {index} is not below the tree size {size}"
        ));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if p.len() != 32 {
            return Err(format!("a proof hash is {} bytes, not 32", p.len()));
        }
        if s == 0 {
            return Err("the proof has more hashes than the tree height".into());
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err("the proof has fewer hashes than the tree height".into());
    }
    Ok(r)
}

/// Verify an ECDSA (DER) signature over `message` with a log key.
fn log_signature_ok(key: &LogKey, message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    match key {
        LogKey::P256(k) => p256::ecdsa::Signature::from_der(signature)
            .is_ok_and(|s| k.verify_prehash(&Sha256::digest(message), &s).is_ok()),
        LogKey::P384(k) => p384::ecdsa::Signature::from_der(signature)
            .is_ok_and(|s| k.verify_prehash(&Sha384::digest(message), &s).is_ok()),
        LogKey::Unsupported(_) => false,
    }
}

/// A parsed signed note (checkpoint): the signed text and its signature lines.
#[derive(Debug)]
pub(crate) struct Checkpoint<'a> {
    /// The signed text: every line up to and including the newline before the blank line.
    pub note: &'a str,
    pub origin: &'a str,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    /// (signer name, 4-byte key hint, signature)
    pub signatures: Vec<(&'a str, [u8; 4], Vec<u8>)>,
}

pub(crate) fn parse_checkpoint(envelope: &str) -> Result<Checkpoint<'_>, String> {
    let split = envelope
        .find("\n\n")
        .ok_or("no blank line separates the note from its signatures")?;
    let note = &envelope[..=split];
    let mut lines = note.lines();
    let origin = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or("no origin line")?;
    let tree_size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or("the second line is not a tree size")?;
    let root_hash = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .ok_or("the third line is not a base64 root hash")?;
    let mut signatures = Vec::new();
    for line in envelope[split + 2..].lines().filter(|l| !l.is_empty()) {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| format!("signature line {line:?} does not start with an em dash"))?;
        let (name, b64) = rest
            .rsplit_once(' ')
            .ok_or_else(|| format!("signature line {line:?} has no signature"))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| format!("signature line {line:?} is not base64"))?;
        if raw.len() < 5 {
            return Err(format!("signature line {line:?} is too short"));
        }
        let mut hint = [0u8; 4];
        hint.copy_from_slice(&raw[..4]);
        signatures.push((name, hint, raw[4..].to_vec()));
    }
    if signatures.is_empty() {
        return Err("it has no signature lines".into());
    }
    Ok(Checkpoint {
        note,
        origin,
        tree_size,
        root_hash,
        signatures,
    })
}

/// Verify a decoded log entry for `body` (the rebuilt hashedrekord) against the trusted root.
pub(crate) fn verify_entry(
    entry: &LogEntry,
    body: &[u8],
    root: &TrustedRoot,
) -> Result<LoggedEntry, GitsignError> {
    if entry.kind != "hashedrekord" || entry.version != "0.0.1" {
        return Err(GitsignError::UnsupportedLogEntry {
            kind: entry.kind.clone(),
            version: entry.version.clone(),
        });
    }
    if let Some(embedded) = &entry.canonicalized_body
        && embedded.as_slice() != body
    {
        return Err(GitsignError::LogEntryBodyMismatch);
    }
    let log: &TransparencyLog =
        root.log_by_id(&entry.log_id)
            .ok_or_else(|| GitsignError::UnknownLog {
                log_id: hex::encode(&entry.log_id),
            })?;
    if let LogKey::Unsupported(algorithm) = &log.key {
        return Err(GitsignError::UnsupportedLogKey {
            url: log.base_url.clone(),
            algorithm: algorithm.clone(),
        });
    }

    // The inclusion promise authenticates the entry and, above all, its integrated time.
    let set = entry
        .inclusion_promise
        .as_deref()
        .ok_or(GitsignError::NoInclusionPromise)?;
    let payload =
        inclusion_promise_payload(body, entry.integrated_time, &log.log_id, entry.log_index);
    if !log_signature_ok(&log.key, &payload, set) {
        return Err(GitsignError::InclusionPromiseInvalid {
            url: log.base_url.clone(),
        });
    }
    let integrated_time = Timestamp::from_second(entry.integrated_time).map_err(|_| {
        malformed(format!(
            "integrated_time {} is out of range",
            entry.integrated_time
        ))
    })?;
    if !log.valid.contains(integrated_time) {
        return Err(GitsignError::LogKeyNotValid {
            url: log.base_url.clone(),
            window: log.valid,
            time: integrated_time,
        });
    }

    if let Some(proof) = &entry.inclusion_proof {
        verify_inclusion(proof, body, log)?;
    }
    Ok(LoggedEntry {
        integrated_time,
        log_index: entry.log_index,
        log_url: log.base_url.clone(),
        inclusion_proof: entry.inclusion_proof.is_some(),
    })
}

fn verify_inclusion(
    proof: &InclusionProof,
    body: &[u8],
    log: &TransparencyLog,
) -> Result<(), GitsignError> {
    let invalid = |reason: String| GitsignError::InclusionProofInvalid { reason };
    let computed = root_from_inclusion_proof(
        proof.log_index,
        proof.tree_size,
        leaf_hash(body),
        &proof.hashes,
    )
    .map_err(invalid)?;
    if computed.as_slice() != proof.root_hash {
        return Err(invalid(format!(
            "the proof leads to root {} but states root {}: it is not a proof for this entry",
            hex::encode(computed),
            hex::encode(&proof.root_hash)
        )));
    }
    let envelope = proof
        .checkpoint
        .as_deref()
        .ok_or(GitsignError::CheckpointMissing)?;
    let checkpoint = parse_checkpoint(envelope)
        .map_err(|reason| GitsignError::CheckpointMalformed { reason })?;
    let hint = &log.log_id[..4];
    let signed = checkpoint
        .signatures
        .iter()
        .filter(|(_, h, _)| h.as_slice() == hint)
        .any(|(_, _, sig)| log_signature_ok(&log.key, checkpoint.note.as_bytes(), sig));
    if !signed {
        return Err(GitsignError::CheckpointSignatureInvalid {
            url: log.base_url.clone(),
            origin: checkpoint.origin.to_string(),
        });
    }
    if checkpoint.tree_size != proof.tree_size {
        return Err(GitsignError::CheckpointMismatch {
            what: format!(
                "tree size {} differs from the proof's {}",
                checkpoint.tree_size, proof.tree_size
            ),
        });
    }
    if checkpoint.root_hash != proof.root_hash {
        return Err(GitsignError::CheckpointMismatch {
            what: format!(
                "root hash {} differs from the proof's {}",
                hex::encode(&checkpoint.root_hash),
                hex::encode(&proof.root_hash)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference Merkle tree hash (RFC 6962 §2.1) over leaf hashes.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// Reference audit path (RFC 6962 §2.1.1).
    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]).to_vec());
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]).to_vec());
            p
        }
    }

    #[test]
    fn inclusion_proofs_of_every_leaf_in_trees_up_to_33() {
        for size in 1..=33usize {
            let leaves: Vec<[u8; 32]> = (0..size).map(|i| leaf_hash(&[i as u8])).collect();
            let root = mth(&leaves);
            for (m, leaf) in leaves.iter().enumerate() {
                let p = path(m, &leaves);
                assert_eq!(
                    root_from_inclusion_proof(m as u64, size as u64, *leaf, &p).unwrap(),
                    root,
                    "size {size} leaf {m}"
                );
                // Another leaf with the same path does not reach the root.
                let other = leaf_hash(b"other");
                assert_ne!(
                    root_from_inclusion_proof(m as u64, size as u64, other, &p).unwrap(),
                    root
                );
                // A wrong index either fails or leads elsewhere.
                if size > 1 {
                    let wrong = (m + 1) % size;
                    let r = root_from_inclusion_proof(wrong as u64, size as u64, *leaf, &p);
                    assert!(r.is_err() || r.unwrap() != root || leaves[wrong] == *leaf);
                }
            }
        }
    }

    #[test]
    fn malformed_proofs_are_rejected() {
        let leaf = leaf_hash(b"x");
        assert!(root_from_inclusion_proof(3, 3, leaf, &[]).is_err());
        assert!(root_from_inclusion_proof(0, 2, leaf, &[]).is_err());
        assert!(root_from_inclusion_proof(0, 1, leaf, &[vec![0; 32]]).is_err());
        assert!(root_from_inclusion_proof(0, 2, leaf, &[vec![0; 31]]).is_err());
    }

    #[test]
    fn protobuf_decoding_is_strict() {
        // log_index 1, log_id {key_id: [1,2]}, kind_version {hashedrekord, 0.0.1}, integrated_time 5
        let mut ok = vec![0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0x01, 0x02];
        ok.extend([0x1a, 0x15, 0x0a, 0x0c]);
        ok.extend(b"hashedrekord");
        ok.extend([0x12, 0x05]);
        ok.extend(b"0.0.1");
        ok.extend([0x20, 0x05]);
        let entry = decode_entry(&ok).unwrap();
        assert_eq!(entry.log_index, 1);
        assert_eq!(entry.log_id, vec![1, 2]);
        assert_eq!(entry.kind, "hashedrekord");
        assert_eq!(entry.integrated_time, 5);
        assert!(entry.inclusion_promise.is_none());

        let mut dup = ok.clone();
        dup.extend([0x20, 0x06]);
        assert!(
            decode_entry(&dup)
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        let mut truncated = ok.clone();
        truncated.extend([0x3a, 0x10, 0x00]);
        assert!(
            decode_entry(&truncated)
                .unwrap_err()
                .to_string()
                .contains("past the end")
        );
        let mut negative = vec![0x08];
        negative.extend([0xff; 9]);
        negative.push(0x01);
        negative.extend(&ok[2..]);
        assert!(
            decode_entry(&negative)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        let no_time = &ok[..ok.len() - 2];
        assert!(
            decode_entry(no_time)
                .unwrap_err()
                .to_string()
                .contains("integrated_time")
        );
        assert!(
            decode_entry(&[0x0b])
                .unwrap_err()
                .to_string()
                .contains("wire type")
        );
    }

    #[test]
    fn checkpoint_parsing() {
        let envelope = "log.example - 1\n7\nAAAA\nTimestamp: 1\n\n\u{2014} log.example AQIDBAUG\n";
        let cp = parse_checkpoint(envelope).unwrap();
        assert_eq!(cp.origin, "log.example - 1");
        assert_eq!(cp.tree_size, 7);
        assert_eq!(cp.root_hash, vec![0, 0, 0]);
        assert_eq!(cp.note, "log.example - 1\n7\nAAAA\nTimestamp: 1\n");
        assert_eq!(
            cp.signatures,
            vec![("log.example", [1, 2, 3, 4], vec![5, 6])]
        );
        for bad in [
            "log\n7\nAAAA\n",
            "log\nseven\nAAAA\n\n\u{2014} log AQIDBAUG\n",
            "log\n7\n!!\n\n\u{2014} log AQIDBAUG\n",
            "log\n7\nAAAA\n\n- log AQIDBAUG\n",
            "log\n7\nAAAA\n\n\u{2014} log AQID\n",
            "log\n7\nAAAA\n\n",
        ] {
            assert!(parse_checkpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pem_has_64_column_lines() {
        let pem = certificate_pem(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        // 100 bytes are 136 base64 characters: 64 + 64 + 8.
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        assert!(pem.ends_with("-----\n"));
    }
}

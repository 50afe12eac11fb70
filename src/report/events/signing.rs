//! Standard Webhooks signatures of a body (`webhook-id`, `webhook-timestamp`, `webhook-signature`), when a
//! signing key is set.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::WHSEC_PREFIX;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The request-signing key.
///
/// Read from a file: content starting with `whsec_` is a Standard Webhooks secret and the key is the base64
/// text after the prefix (surrounding whitespace ignored); any other content is the key itself, raw bytes,
/// minus one trailing newline (LF or CRLF).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    pub fn parse(content: &[u8]) -> Result<Self, String> {
        let trimmed = content.trim_ascii();
        let key = if let Some(b64) = trimmed.strip_prefix(WHSEC_PREFIX.as_bytes()) {
            STANDARD
                .decode(b64)
                .map_err(|_| "the text after \"whsec_\" is not base64".to_string())?
        } else {
            let raw = content
                .strip_suffix(b"\r\n")
                .or_else(|| content.strip_suffix(b"\n"))
                .unwrap_or(content);
            raw.to_vec()
        };
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        Ok(Self(key))
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length; new_from_slice cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The message id of a body: `msg_` + the first 32 hex digits of its SHA-256. A retry of the same batch
/// sends the same body and so the same id.
pub fn message_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("msg_{}", &hex::encode(digest)[..32])
}

//! One PEM block (RFC 7468, strict): `-----BEGIN <label>-----`, base64 lines, `-----END <label>-----`, with only
//! blank lines around it. Gitsign signatures and the cosign keys of the trust policy are read with it.

use base64::Engine as _;

/// Why a text is not one PEM block of the wanted label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// The first non-blank line is not the BEGIN line.
    NoBegin,
    /// A `Key: value` header inside the block (RFC 1421 headers are not allowed).
    Header,
    /// No END line.
    NoEnd,
    /// Text after the END line.
    TrailingText,
    /// The body is not base64.
    Base64(String),
}

/// The DER bytes of the one `label` block in `text`.
pub fn decode(text: &str, label: &str) -> Result<Vec<u8>, PemError> {
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut lines = text.lines().map(str::trim).skip_while(|l| l.is_empty());
    if lines.next() != Some(begin.as_str()) {
        return Err(PemError::NoBegin);
    }
    let mut body = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(PemError::Header);
        }
        body.push_str(line);
    }
    if !ended {
        return Err(PemError::NoEnd);
    }
    if lines.any(|l| !l.is_empty()) {
        return Err(PemError::TrailingText);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| PemError::Base64(e.to_string()))
}

//! SSH commit signatures (`-----BEGIN SSH SIGNATURE-----`, the SSHSIG format) checked against a list of
//! allowed signers in git's `allowed_signers` format (`ssh-keygen(1)`, section ALLOWED SIGNERS):
//!
//! ```text
//! # principals [options] keytype base64-key [comment]
//! alice@example.com ssh-ed25519 AAAAC3Nza...
//! *@example.com,bob@example.org namespaces="git",valid-after="20240101",valid-before="20260101Z" ssh-ed25519 AAAA...
//! ```
//!
//! Principals are a comma-separated list of patterns (`*` and `?` wildcards, `!` negates), matched against
//! the committer email. Options: `namespaces="…"` (a pattern list that must admit `git`),
//! `valid-after="…"`, `valid-before="…"` (`YYYYMMDD[HHMM[SS]]`, optional `Z`/`UTC` suffix; always read as
//! UTC) and `cert-authority`, which is refused: SSH certificates are not supported.
//!
//! Validity is judged at the commit's committer time, as git does (`ssh-keygen -Overify-time=…`).
//! The parser is pure; keys are parsed once when the policy is loaded and indexed by key blob.

use std::collections::HashMap;

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::sigcheck::{Failure, Reason, SigCheck, Span, fmt_time};

/// The SSHSIG namespace git uses for commit and tag signatures.
pub const GIT_NAMESPACE: &str = "git";

/// A malformed `allowed_signers` text. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedSignersError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
}

/// One line of an allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// 1-based line number in the allowed_signers text, for messages.
    pub line: usize,
    /// The principals pattern list, as written.
    pub principals: String,
    /// The `namespaces=` pattern list, when given.
    pub namespaces: Option<String>,
    /// `valid-after`, seconds since the epoch.
    pub valid_after: Option<i64>,
    /// `valid-before`, seconds since the epoch.
    pub valid_before: Option<i64>,
    pub key: PublicKey,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// A parsed allowed_signers list, indexed by key.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    entries: Vec<AllowedSigner>,
    by_key: HashMap<KeyData, Vec<usize>>,
}

impl AllowedSigners {
    /// Parse allowed_signers text. Blank lines and `#` comments are skipped; every other line must parse.
    pub fn parse(text: &str) -> Result<Self, AllowedSignersError> {
        let mut out = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let entry = parse_line(trimmed, line)
                .map_err(|message| AllowedSignersError::Line { line, message })?;
            // One key, one line: with a key on two lines, removing one line (to revoke it) would leave it
            // trusted through the other, and which line's options apply would depend on the committer.
            if let Some(first) = out.by_key.get(entry.key.key_data()).and_then(|v| v.first()) {
                let first = &out.entries[*first];
                return Err(AllowedSignersError::Line {
                    line,
                    message: format!(
                        "key {} is already on line {} (principals {:?}): a key is listed once; put all \
                         its principals on one line, comma-separated",
                        entry.fingerprint, first.line, first.principals
                    ),
                });
            }
            out.by_key
                .entry(entry.key.key_data().clone())
                .or_default()
                .push(out.entries.len());
            out.entries.push(entry);
        }
        Ok(out)
    }

    /// The parsed lines.
    pub fn entries(&self) -> &[AllowedSigner] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Verify an armored SSH signature over `payload` made for a commit by `committer_email` at
    /// `commit_time`. When `require_committer_match` is set, a line only applies if one of its principals
    /// matches the committer email.
    pub fn verify(
        &self,
        armored: &[u8],
        payload: &[u8],
        committer_email: &str,
        commit_time: impl Into<Span>,
        require_committer_match: bool,
    ) -> SigCheck {
        let commit_time = commit_time.into();
        let sig = match SshSig::from_pem(armored) {
            Ok(sig) => sig,
            Err(e) => {
                return SigCheck::failed(
                    None,
                    Failure::new(
                        Reason::MalformedSignature,
                        format!("cannot decode the SSH signature: {e}"),
                    ),
                );
            }
        };
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let fp = Some(fingerprint.clone());
        if sig.namespace() != GIT_NAMESPACE {
            return SigCheck::failed(
                fp,
                Failure::new(
                    Reason::WrongNamespace,
                    format!(
                        "the signature was made for namespace {:?}, not \"git\"",
                        sig.namespace()
                    ),
                ),
            );
        }
        let Some(candidates) = self.by_key.get(sig.public_key()) else {
            return SigCheck::failed(
                fp,
                Failure::new(
                    Reason::UnknownKey,
                    format!("key {fingerprint} is not in sshAllowedSigners"),
                ),
            );
        };
        // All candidates hold the same key: one cryptographic check covers them.
        let key = &self.entries[candidates[0]].key;
        if let Err(e) = key.verify(GIT_NAMESPACE, payload, &sig) {
            let reason = match e {
                ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
                    Reason::UnsupportedAlgorithm
                }
                _ => Reason::BadSignature,
            };
            return SigCheck::failed(
                fp,
                Failure::new(
                    reason,
                    format!(
                        "the SSH signature by {fingerprint} does not verify over the commit: {e}"
                    ),
                ),
            );
        }

        // The key is trusted through one of its lines; the best failure is reported otherwise.
        let mut best: Option<(u8, Failure)> = None;
        for &idx in candidates {
            let entry = &self.entries[idx];
            match entry.admits(committer_email, commit_time, require_committer_match) {
                Ok(signer) => return SigCheck::ok(signer, fingerprint),
                Err((rank, failure)) => {
                    if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                        best = Some((rank, failure));
                    }
                }
            }
        }
        let failure = best.map(|(_, f)| f).unwrap_or_else(|| {
            Failure::new(
                Reason::UnknownKey,
                format!("key {fingerprint} has no usable line"),
            )
        });
        SigCheck::failed(fp, failure)
    }
}

impl AllowedSigner {
    /// Whether this line admits a signature by its key for the committer over the span `time`. Returns the
    /// signer identity, or a failure ranked by how far the line got (higher is more specific).
    fn admits(
        &self,
        committer_email: &str,
        time: Span,
        require_committer_match: bool,
    ) -> Result<String, (u8, Failure)> {
        let principal_ok = match_pattern_list(committer_email, &self.principals);
        if require_committer_match && !principal_ok {
            return Err((
                1,
                Failure::new(
                    Reason::SignerMismatch,
                    format!(
                        "committer email {committer_email:?} is not among the principals {:?} of allowed_signers line {}",
                        self.principals, self.line
                    ),
                ),
            ));
        }
        if let Some(ns) = &self.namespaces
            && !match_pattern_list(GIT_NAMESPACE, ns)
        {
            return Err((
                2,
                Failure::new(
                    Reason::NamespaceNotAllowed,
                    format!(
                        "allowed_signers line {} restricts the key to namespaces={ns:?}, which does not admit \"git\"",
                        self.line
                    ),
                ),
            ));
        }
        if let Some(after) = self.valid_after
            && time.from < after
        {
            return Err((
                3,
                Failure::new(
                    Reason::KeyNotYetValid,
                    format!(
                        "allowed_signers line {}: key valid after {}, commit made at {}",
                        self.line,
                        fmt_time(after),
                        fmt_time(time.from)
                    ),
                ),
            ));
        }
        if let Some(before) = self.valid_before
            && time.from.max(time.to) > before
        {
            let when = if time.from > before {
                format!("commit made at {}", fmt_time(time.from))
            } else {
                format!(
                    "commit dated {} but first seen at {}",
                    fmt_time(time.from),
                    fmt_time(time.to)
                )
            };
            return Err((
                3,
                Failure::new(
                    Reason::KeyExpired,
                    format!(
                        "allowed_signers line {}: key valid before {}, {when}",
                        self.line,
                        fmt_time(before),
                    ),
                ),
            ));
        }
        Ok(if principal_ok {
            committer_email.to_string()
        } else {
            self.principals.clone()
        })
    }
}

/// Split off the next whitespace-delimited token, honouring double quotes inside it (as OpenSSH's
/// `strdelim` and option scanner do). Returns the token and the rest.
fn next_token(s: &str) -> Result<(&str, &str), String> {
    let s = s.trim_start_matches([' ', '\t']);
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ' ' | '\t' if !in_quote => return Ok((&s[..i], &s[i..])),
            _ => {}
        }
    }
    if in_quote {
        return Err("unterminated quote".to_string());
    }
    Ok((s, ""))
}

/// Key types this build can verify signatures of.
fn supported(alg: &ssh_key::Algorithm) -> bool {
    use ssh_key::{Algorithm, EcdsaCurve};
    matches!(
        alg,
        Algorithm::Ed25519
            | Algorithm::SkEd25519
            | Algorithm::SkEcdsaSha2NistP256
            | Algorithm::Rsa { .. }
            | Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256 | EcdsaCurve::NistP384
            }
    )
}

fn is_key_type(token: &str) -> bool {
    token.ends_with("-cert-v01@openssh.com") || ssh_key::Algorithm::new(token).is_ok()
}

fn parse_line(line: &str, line_no: usize) -> Result<AllowedSigner, String> {
    let (principals, rest) = next_token(line)?;
    let principals = unquote(principals)?;
    if principals.is_empty() {
        return Err("empty principals".to_string());
    }
    let (second, after_second) = next_token(rest)?;
    if second.is_empty() {
        return Err("missing key".to_string());
    }
    let (options, key_text) = if is_key_type(second) {
        (None, rest)
    } else {
        (Some(second), after_second)
    };

    let mut entry_opts = Options::default();
    if let Some(options) = options {
        entry_opts = parse_options(options)?;
    }

    let mut words = key_text.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("missing key type or key data".to_string());
    };
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!(
            "{kind}: certificates are not supported as allowed signers"
        ));
    }
    let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| format!("cannot parse the {kind} public key: {e}"))?;
    if !supported(&key.algorithm()) {
        return Err(format!(
            "{kind} keys are not supported (supported: ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ssh-rsa, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com)"
        ));
    }
    refuse_weak_ed25519(key.key_data())?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok(AllowedSigner {
        line: line_no,
        principals,
        namespaces: entry_opts.namespaces,
        valid_after: entry_opts.valid_after,
        valid_before: entry_opts.valid_before,
        key,
        fingerprint,
    })
}

/// Refuse an Ed25519 key (plain or security-key) that is not a valid curve point or is of small order: a
/// small-order key admits signatures made without any secret.
fn refuse_weak_ed25519(key: &KeyData) -> Result<(), String> {
    let bytes = match key {
        KeyData::Ed25519(k) => &k.0,
        KeyData::SkEd25519(k) => &k.public_key().0,
        _ => return Ok(()),
    };
    let point = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| "the Ed25519 public key is not a valid curve point".to_string())?;
    refuse_small_order(&point)
}

/// Refuse a small-order ("weak") Ed25519 public key: a signature by such a key can be made without any secret
/// and verifies over many messages (`verify` accepts it; only `verify_strict` would not).
fn refuse_small_order(key: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
    if key.is_weak() {
        return Err(
            "a small-order (weak) Ed25519 public key: anyone can make signatures it verifies"
                .to_string(),
        );
    }
    Ok(())
}

/// Parse an Ed25519 public key as the trust policy and the notes reader take one (`controlPlaneKeys`,
/// `notesKeys`, `--notes-key`, a record's `key`): an OpenSSH line (`ssh-ed25519 AAAA… comment`) or the standard
/// base64 of the 32 raw bytes. A small-order key is refused. `signs` names what the key signs, for the message
/// refusing another algorithm ("only ssh-ed25519 keys sign {signs}").
pub fn parse_ed25519_public_key(
    text: &str,
    signs: &str,
) -> Result<ed25519_dalek::VerifyingKey, String> {
    use base64::Engine as _;
    let text = text.trim();
    let raw: [u8; 32] = if text.starts_with("ssh-") {
        let key = PublicKey::from_openssh(text).map_err(|e| e.to_string())?;
        key.key_data()
            .ed25519()
            .ok_or_else(|| {
                format!(
                    "{} key: only ssh-ed25519 keys sign {signs}",
                    key.algorithm()
                )
            })?
            .0
    } else {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("neither an ssh-ed25519 line nor base64: {e}"))?;
        raw.try_into()
            .map_err(|r: Vec<u8>| format!("{} bytes, an Ed25519 public key has 32", r.len()))?
    };
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| e.to_string())?;
    refuse_small_order(&key)?;
    Ok(key)
}

#[derive(Default)]
struct Options {
    namespaces: Option<String>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// Parse `opt[,opt…]` where an option is `cert-authority` or `name="value"`; names are case-insensitive.
fn parse_options(text: &str) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut rest = text;
    while !rest.is_empty() {
        // Find the end of this option: a comma outside quotes.
        let mut in_quote = false;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quote => escaped = true,
                '"' => in_quote = !in_quote,
                ',' if !in_quote => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let opt = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let lname = name.to_ascii_lowercase();
        match (lname.as_str(), value) {
            ("cert-authority", None) => {
                return Err(
                    "cert-authority is not supported: list the signers' own keys, not an SSH certificate authority"
                        .to_string(),
                );
            }
            ("namespaces", Some(v)) => {
                if opts.namespaces.is_some() {
                    return Err("namespaces given twice".to_string());
                }
                opts.namespaces = Some(unquote_required(v, "namespaces")?);
            }
            ("valid-after", Some(v)) => {
                if opts.valid_after.is_some() {
                    return Err("valid-after given twice".to_string());
                }
                let v = unquote_required(v, "valid-after")?;
                opts.valid_after =
                    Some(parse_time(&v).map_err(|e| format!("valid-after={v:?}: {e}"))?);
            }
            ("valid-before", Some(v)) => {
                if opts.valid_before.is_some() {
                    return Err("valid-before given twice".to_string());
                }
                let v = unquote_required(v, "valid-before")?;
                opts.valid_before =
                    Some(parse_time(&v).map_err(|e| format!("valid-before={v:?}: {e}"))?);
            }
            ("namespaces" | "valid-after" | "valid-before", None) => {
                return Err(format!("option {name} needs a quoted value"));
            }
            _ => return Err(format!("unknown option {name:?}")),
        }
    }
    if let (Some(a), Some(b)) = (opts.valid_after, opts.valid_before)
        && b <= a
    {
        return Err("valid-before is not after valid-after".to_string());
    }
    Ok(opts)
}

/// Remove surrounding double quotes if present, resolving `\"` escapes.
fn unquote(s: &str) -> Result<String, String> {
    if let Some(inner) = s.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| "unterminated quote".to_string())?;
        Ok(inner.replace("\\\"", "\""))
    } else if s.contains('"') {
        Err(format!("unexpected quote in {s:?}"))
    } else {
        Ok(s.to_string())
    }
}

fn unquote_required(s: &str, name: &str) -> Result<String, String> {
    if !s.starts_with('"') {
        return Err(format!("the value of {name} must be in double quotes"));
    }
    unquote(s)
}

/// Parse `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, with an optional `Z` or `UTC` suffix, as UTC.
/// (OpenSSH reads times without a suffix as local time; an operator has no meaningful local time zone, so
/// they are read as UTC here.)
pub fn parse_time(s: &str) -> Result<i64, String> {
    let body = if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        b
    } else if s.len() > 3 && s.as_bytes()[s.len() - 3..].eq_ignore_ascii_case(b"UTC") {
        // The last three bytes are ASCII, so cutting them leaves a char boundary.
        &s[..s.len() - 3]
    } else {
        s
    };
    if !body.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&body.len()) {
        return Err("expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS".to_string());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i32, String> {
        body[r].parse::<i32>().map_err(|e| e.to_string())
    };
    let year = num(0..4)?;
    let month = num(4..6)?;
    let day = num(6..8)?;
    let (hour, minute, second) = match body.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        _ => (num(8..10)?, num(10..12)?, num(12..14)?),
    };
    let small = |v: i32| i8::try_from(v).map_err(|_| "field out of range".to_string());
    let dt = jiff::civil::DateTime::new(
        i16::try_from(year).map_err(|_| "year out of range".to_string())?,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(second)?,
        0,
    )
    .map_err(|e| e.to_string())?;
    let ts = dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?
        .timestamp();
    Ok(ts.as_second())
}

/// OpenSSH `match_pattern_list`: a comma-separated list of `*`/`?` patterns, where a `!` prefix negates.
/// True when some positive pattern matches and no negated one does. Matching ignores ASCII case.
pub fn match_pattern_list(s: &str, list: &str) -> bool {
    let s = s.to_ascii_lowercase();
    let mut positive = false;
    for pat in list.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if glob(s.as_bytes(), pat.to_ascii_lowercase().as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `*` matches any sequence, `?` any single byte; everything else matches itself.
fn glob(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
    const KEY2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHse6Xz9612zc9/EUYR3125tIN3h6bttx0Kb6BsJDWpV";
    const P521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAAn61ZFYpTWS8qgo5X6LNLWRh/tPzOaINz7ocapsuy+ZeOD98esydVcqlOiPMas/0k3e1Veag6RCeH7a/zrTiNqoQCg88iNsfzdHtxE5GfWyzc5aFw83wQUZ0eXu+OGqBMWX0AD6V4edXBXlRqEbHCnOh1KJ9TCz0UfJ6zV05DxL25OuA==";

    #[test]
    fn parses_lines_with_and_without_options() {
        let text = format!(
            "# comment\n\nalice@example.com {KEY} a comment\n\
             \"*@example.com,bob@x\" namespaces=\"git,file\",valid-after=\"20240101\",VALID-BEFORE=\"20250101120000Z\" {KEY2}\n"
        );
        let signers = AllowedSigners::parse(&text).unwrap();
        let e = signers.entries();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 3);
        assert_eq!(e[0].principals, "alice@example.com");
        assert!(e[0].namespaces.is_none());
        assert_eq!(e[1].principals, "*@example.com,bob@x");
        assert_eq!(e[1].namespaces.as_deref(), Some("git,file"));
        assert_eq!(e[1].valid_after, Some(1_704_067_200));
        assert_eq!(e[1].valid_before, Some(1_735_732_800));
        assert!(e[0].fingerprint.starts_with("SHA256:"));
        assert_eq!(signers.by_key.len(), 2);
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        let cases = [
            (format!("a@x cert-authority {KEY}"), "cert-authority"),
            (format!("a@x namespaces=git {KEY}"), "double quotes"),
            (format!("a@x bogus=\"1\" {KEY}"), "unknown option"),
            (format!("a@x valid-after=\"2024\" {KEY}"), "YYYYMMDD"),
            (format!("a@x valid-after=\"20241301\" {KEY}"), "valid-after"),
            (
                format!("a@x valid-after=\"20250101\",valid-before=\"20240101\" {KEY}"),
                "not after",
            ),
            ("a@x ssh-ed25519 AAAAnotbase64!".to_string(), "cannot parse"),
            ("a@x".to_string(), "missing key"),
            ("a@x ssh-ed25519".to_string(), "missing key"),
            (format!("\"a@x {KEY}"), "unterminated"),
            (
                "a@x ssh-ed25519-cert-v01@openssh.com AAAA".to_string(),
                "certificates",
            ),
            (format!("a@x {P521}"), "not supported"),
        ];
        for (line, want) in cases {
            let text = format!("ok@x {KEY}\n{line}\n");
            let err = AllowedSigners::parse(&text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("line 2:"), "{line}: {msg}");
            assert!(msg.contains(want), "{line}: {msg} (wanted {want})");
        }
    }

    #[test]
    fn a_key_is_listed_once() {
        // The same key under other principals, other options, another comment: one key, one line.
        for second in [
            format!("bob@x {KEY}"),
            format!("a@x valid-before=\"20300101\" {KEY} other comment"),
            format!("a@x {KEY}"),
        ] {
            let text = format!("# keys\na@x,c@x {KEY}\n{second}\n");
            let err = AllowedSigners::parse(&text).unwrap_err().to_string();
            assert!(
                err.starts_with("line 3: key SHA256:")
                    && err.contains("already on line 2 (principals \"a@x,c@x\")"),
                "{second}: {err}"
            );
        }
    }

    #[test]
    fn small_order_ed25519_keys_are_refused() {
        // The identity point (order 1) and the point of order 2.
        for blob in [
            "AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAC3NzaC1lZDI1NTE5AAAAIOz///////////////////////////////////////9/",
        ] {
            let text = format!("ok@x {KEY}\nweak@x ssh-ed25519 {blob}\n");
            let err = AllowedSigners::parse(&text).unwrap_err().to_string();
            assert!(
                err.starts_with("line 2:") && err.contains("small-order (weak) Ed25519"),
                "{err}"
            );
        }
    }

    /// One parser for the Ed25519 keys of `controlPlaneKeys`, `notesKeys`, `--notes-key` and a record's `key`:
    /// the same key as an OpenSSH line or as base64; another length, another algorithm and a small-order key
    /// are refused with why.
    #[test]
    fn ed25519_public_keys_as_ssh_lines_or_raw_base64() {
        let parsed = parse_ed25519_public_key(&format!("  {KEY} a comment \n"), "jobs").unwrap();
        let blob = KEY.split(' ').nth(1).unwrap();
        let raw = PublicKey::from_openssh(KEY).unwrap();
        let raw = raw.key_data().ed25519().unwrap().0;
        assert_eq!(parsed.to_bytes(), raw);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse_ed25519_public_key(&b64, "notes").unwrap(), parsed);
        assert_ne!(blob, b64);
        let err = parse_ed25519_public_key("AAAA", "jobs").unwrap_err();
        assert_eq!(err, "3 bytes, an Ed25519 public key has 32");
        let err = parse_ed25519_public_key("not base64!", "jobs").unwrap_err();
        assert!(
            err.starts_with("neither an ssh-ed25519 line nor base64"),
            "{err}"
        );
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC+mBKA3a0p2pX6ibeasxCMtGhImOeIC2UpNLQ8+PhjiKwPfFTqdtBMZ8WkI4R+C/paA3zFxSfa+ey99RPaO2h23Blmzzfd6macpi2lEV0XlZXJTWURPqOMtKyhA8oBW5ij3vAKCKSgdwU7D/fHYQVt4Jge8jLiUzr3ugaYLxP2Gw==";
        let err = parse_ed25519_public_key(rsa, "notes").unwrap_err();
        assert_eq!(err, "ssh-rsa key: only ssh-ed25519 keys sign notes");
        // Only `ssh-…` lines are read as OpenSSH lines.
        let err = parse_ed25519_public_key(P521, "jobs").unwrap_err();
        assert!(
            err.starts_with("neither an ssh-ed25519 line nor base64"),
            "{err}"
        );
        for weak in [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_string(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz///////////////////////////////////////9/"
                .to_string(),
            base64::engine::general_purpose::STANDARD.encode({
                let mut identity = [0u8; 32];
                identity[0] = 1;
                identity
            }),
        ] {
            let err = parse_ed25519_public_key(&weak, "jobs").unwrap_err();
            assert!(
                err.starts_with("a small-order (weak) Ed25519 public key"),
                "{weak}: {err}"
            );
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("19700101").unwrap(), 0);
        assert_eq!(parse_time("19700101000001Z").unwrap(), 1);
        assert_eq!(parse_time("197001010001UTC").unwrap(), 60);
        assert!(parse_time("1970010").is_err());
        assert!(parse_time("19700132").is_err());
        assert!(parse_time("1970010100000x").is_err());
        // Found by fuzz/fuzz_targets/allowed_signers: a time whose last three bytes cut a multi-byte
        // character panicked (the `UTC` suffix test sliced the string there).
        assert!(parse_time("20200101\u{ed34}\t").is_err());
        assert!(parse_time("20200101\u{20ac}x").is_err());
        let line = format!("alice@example.com valid-after=\"20200101\u{20ac}x\" {KEY}");
        let err = AllowedSigners::parse(&line).unwrap_err().to_string();
        assert!(err.contains("valid-after"), "{err}");
    }

    #[test]
    fn patterns() {
        let cases = [
            ("alice@example.com", "alice@example.com", true),
            ("alice@example.com", "ALICE@Example.com", true),
            ("alice@example.com", "*@example.com", true),
            ("alice@example.com", "?lice@example.com", true),
            ("alice@example.com", "bob@x,alice@example.com", true),
            (
                "alice@example.com",
                "*@example.com,!alice@example.com",
                false,
            ),
            ("alice@example.com", "*@example.org", false),
            ("alice@example.com", "alice@example.co", false),
            ("alice@example.com", "*", true),
            ("git", "git", true),
            ("git", "file,gi*", true),
            ("git", "file", false),
            ("", "*", true),
            ("a", "", false),
        ];
        for (s, p, want) in cases {
            assert_eq!(match_pattern_list(s, p), want, "{s} vs {p}");
        }
    }
}

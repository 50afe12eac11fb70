//! The trust policy: which keys may sign intent, and how much history must be signed.
//!
//! ```yaml
//! mode: range                 # range (default) | head
//! requireCommitterMatch: true # default: the signer identity must be the committer email
//! sshAllowedSigners: |
//!   alice@example.com namespaces="git" ssh-ed25519 AAAAC3Nza...
//! openpgpKeys:
//!   - |
//!     -----BEGIN PGP PUBLIC KEY BLOCK-----
//!     ...
//! sigstoreTrustedRoot: /etc/vworkspace/trusted_root.json   # gitsign: path, JSON text, or inline mapping
//! gitsignIdentities:
//!   - issuer: https://accounts.google.com
//!     subject: alice@example.com
//! ```
//!
//! Keys are parsed and evaluated once, when the policy is loaded. Unknown fields are refused, and every
//! error names the field (and line or list index) at fault.
//!
//! Signature kinds are dispatched in exactly one place, [`TrustPolicy::check`], on the armor header of the
//! signature ([`SignatureKind::detect`]). A new kind (gitsign) adds a variant there, its policy fields here,
//! and one match arm.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::gitsign::{self, GitsignError, GitsignIdentity, TrustedRoot};
use super::openpgp::{OpenPgpKeyError, OpenPgpKeyring};
use super::sigcheck::{Failure, Reason, SigCheck, Span};
use super::ssh::{AllowedSigners, AllowedSignersError, parse_ed25519_public_key};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_BYTES: u64 = 4 << 20;

/// How much history must be signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every commit since the last verified one that touches the path, both sides of merges included.
    #[default]
    Range,
    /// Only the target commit (weaker: unsigned history under a signed head is accepted).
    Head,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Range => "range",
            Mode::Head => "head",
        }
    }
}

/// The kind of a commit signature, from its armor header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureKind {
    /// `-----BEGIN SSH SIGNATURE-----`
    Ssh,
    /// `-----BEGIN PGP SIGNATURE-----`
    #[serde(rename = "openpgp")]
    OpenPgp,
    /// `-----BEGIN SIGNED MESSAGE-----`: X.509 (gpgsm) or gitsign (Sigstore).
    X509,
}

impl SignatureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Ssh => "ssh",
            SignatureKind::OpenPgp => "openpgp",
            SignatureKind::X509 => "x509",
        }
    }

    fn from_label(label: &str) -> Option<Self> {
        match label {
            "SSH SIGNATURE" => Some(SignatureKind::Ssh),
            "PGP SIGNATURE" => Some(SignatureKind::OpenPgp),
            "SIGNED MESSAGE" => Some(SignatureKind::X509),
            _ => None,
        }
    }

    /// Recognise the signature by its armor: exactly one `-----BEGIN <label>-----` … `-----END <label>-----`
    /// block of a known label, nothing but whitespace after it.
    pub fn detect(signature: &[u8]) -> Result<Self, Failure> {
        let text = std::str::from_utf8(signature).map_err(|_| {
            Failure::new(
                Reason::MalformedSignature,
                "the signature is not valid UTF-8",
            )
        })?;
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("").trim_end();
        let label = first
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| {
                Failure::new(
                    Reason::UnknownSignatureFormat,
                    "the signature does not start with an armor header (-----BEGIN …-----)",
                )
            })?;
        let kind = Self::from_label(label).ok_or_else(|| {
            Failure::new(
                Reason::UnknownSignatureFormat,
                format!("unknown signature format \"-----BEGIN {label}-----\""),
            )
        })?;
        let end = format!("-----END {label}-----");
        let mut found_end = false;
        for line in lines.by_ref() {
            let line = line.trim_end();
            if line == end {
                found_end = true;
                break;
            }
            if line.starts_with("-----BEGIN ") {
                return Err(Failure::new(
                    Reason::MalformedSignature,
                    "armor header inside the signature block",
                ));
            }
        }
        if !found_end {
            return Err(Failure::new(
                Reason::MalformedSignature,
                format!("the signature has no \"{end}\" line"),
            ));
        }
        let rest: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
        if rest.iter().any(|l| l.starts_with("-----BEGIN ")) {
            return Err(Failure::new(
                Reason::MultipleSignatures,
                "the signature header holds more than one armored signature",
            ));
        }
        if !rest.is_empty() {
            return Err(Failure::new(
                Reason::MalformedSignature,
                "data after the end of the signature",
            ));
        }
        Ok(kind)
    }
}

/// Why a policy could not be loaded. Messages name the file and field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read trust policy {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("trust policy{}: invalid YAML: {message}", at(.path))]
    Yaml {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("trust policy{}: {field}: {message}", at(.path))]
    Field {
        path: Option<PathBuf>,
        field: String,
        message: String,
    },
    #[error("trust policy{}: sshAllowedSigners: {source}", at(.path))]
    Ssh {
        path: Option<PathBuf>,
        source: AllowedSignersError,
    },
    #[error("trust policy{}: {source}", at(.path))]
    OpenPgp {
        path: Option<PathBuf>,
        source: OpenPgpKeyError,
    },
    #[error(
        "trust policy{}: it trusts no key: set sshAllowedSigners, openpgpKeys, gitsignIdentities and/or controlPlaneKeys",
        at(.path)
    )]
    NoKeys { path: Option<PathBuf> },
}

fn at(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

fn yes() -> bool {
    true
}

/// The policy file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    ssh_allowed_signers: Option<String>,
    #[serde(default)]
    openpgp_keys: Vec<String>,
    #[serde(default = "yes")]
    require_committer_match: bool,
    /// The Sigstore trusted root: a path, the JSON text, or the document as a mapping.
    #[serde(default)]
    sigstore_trusted_root: Option<serde_json::Value>,
    #[serde(default)]
    gitsign_identities: Vec<GitsignIdentity>,
    /// Pull and Push modes: the control plane's Ed25519 keys for signed jobs (docs/pull.md#signed-jobs).
    #[serde(default)]
    control_plane_keys: Vec<ControlPlaneKeyFile>,
    /// The operator's notes keys: records they sign are genuine (docs/audit-trail.md#authenticity).
    #[serde(default)]
    notes_keys: Vec<super::notes::auth::KeyEntry>,
    /// Which signatures charts must carry (docs/trust-policy.md#charts).
    #[serde(default)]
    charts: Option<crate::charts::ChartsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlPlaneKeyFile {
    name: String,
    /// `ssh-ed25519 AAAA…` or the base64 of the 32 raw bytes.
    key: String,
}

/// What the policy trusts for gitsign (Sigstore keyless) signatures.
#[derive(Debug, Clone)]
pub struct GitsignTrust {
    /// The Fulcio CAs and Rekor logs certificates and log entries are checked against.
    pub root: TrustedRoot,
    /// The OIDC identities allowed to sign.
    pub identities: Vec<GitsignIdentity>,
}

impl GitsignTrust {
    /// Verify a gitsign signature offline. With `require_committer_match`, an email identity must be the
    /// committer email; a URI identity (a CI workload) has no email to compare and is trusted by its
    /// explicit `gitsignIdentities` entry alone.
    pub fn verify(
        &self,
        signature: &[u8],
        payload: &[u8],
        committer_email: &str,
        require_committer_match: bool,
    ) -> SigCheck {
        let v = match gitsign::verify(signature, payload, &self.root, &self.identities) {
            Ok(v) => v,
            Err(e) => {
                return SigCheck::failed(None, Failure::new(gitsign_reason(&e), e.to_string()));
            }
        };
        let fingerprint = format!("sha256:{}", v.cert_fingerprint);
        if require_committer_match
            && v.subject_is_email
            && !v.subject.eq_ignore_ascii_case(committer_email)
        {
            return SigCheck::failed(
                Some(fingerprint),
                Failure::new(
                    Reason::SignerMismatch,
                    format!(
                        "committer email {committer_email:?} is not the gitsign identity {} (issuer {})",
                        v.subject, v.issuer
                    ),
                ),
            );
        }
        SigCheck {
            signer: Some(v.subject),
            issuer: Some(v.issuer),
            fingerprint: Some(fingerprint),
            failure: None,
        }
    }
}

/// The verdict reason for a gitsign failure.
fn gitsign_reason(e: &GitsignError) -> Reason {
    use GitsignError as E;
    match e {
        E::Armor { .. }
        | E::Cms { .. }
        | E::NotSignedData { .. }
        | E::NotDetached
        | E::SignerCount { .. }
        | E::SignerCertificateMissing { .. }
        | E::NoSignedAttributes
        | E::SignedAttribute { .. }
        | E::LogEntryMalformed { .. } => Reason::MalformedSignature,
        E::UnsupportedDigest { .. }
        | E::UnsupportedSignatureAlgorithm { .. }
        | E::UnsupportedKey { .. }
        | E::UnsupportedLogEntry { .. }
        | E::UnsupportedLogKey { .. } => Reason::UnsupportedAlgorithm,
        E::MessageDigestMismatch { .. } | E::BadSignature { .. } => Reason::BadSignature,
        E::OfflineUnverifiable => Reason::OfflineUnverifiable,
        E::LogEntryBodyMismatch
        | E::UnknownLog { .. }
        | E::NoInclusionPromise
        | E::InclusionPromiseInvalid { .. }
        | E::LogKeyNotValid { .. }
        | E::InclusionProofInvalid { .. }
        | E::CheckpointMissing
        | E::CheckpointMalformed { .. }
        | E::CheckpointSignatureInvalid { .. }
        | E::CheckpointMismatch { .. } => Reason::TransparencyLogInvalid,
        E::CertificateNotValidAtIntegratedTime {
            not_before, time, ..
        } => {
            if time < not_before {
                Reason::KeyNotYetValid
            } else {
                Reason::KeyExpired
            }
        }
        E::CertificateUsage { .. }
        | E::CertificateExtension { .. }
        | E::ChainNotTrusted { .. }
        | E::CertificateAuthorityNotValid { .. }
        | E::MissingIssuer
        | E::MissingSubject => Reason::UntrustedCertificate,
        E::IdentityNotTrusted { .. } => Reason::UntrustedIdentity,
    }
}

/// Read a policy-sized text file: a regular file (a FIFO, a device or a directory is refused before it is
/// opened, see [`super::bounded`]) of at most [`MAX_POLICY_BYTES`], whatever size its metadata says
/// (`sigstoreTrustedRoot: /dev/zero` took all memory; found while seeding fuzz/fuzz_targets/trust_policy).
pub fn read_to_string_limited(path: &Path) -> std::io::Result<String> {
    Ok(super::bounded::read_to_string(path, MAX_POLICY_BYTES)?)
}

/// Load `sigstoreTrustedRoot`: a mapping (the document), a string starting with `{` (the JSON text), or
/// the path of the file (relative paths are relative to the policy file's directory).
fn load_trusted_root(
    value: &serde_json::Value,
    policy_path: Option<&Path>,
) -> Result<TrustedRoot, String> {
    let text = match value {
        serde_json::Value::Object(_) => value.to_string(),
        serde_json::Value::String(s) if s.trim_start().starts_with('{') => s.clone(),
        serde_json::Value::String(s) if !s.trim().is_empty() => {
            let mut file = PathBuf::from(s.trim());
            if file.is_relative() {
                match policy_path.and_then(Path::parent) {
                    Some(dir) => file = dir.join(file),
                    None => {
                        return Err(format!(
                            "{s:?} is a relative path and the policy is not a file: use an absolute path"
                        ));
                    }
                }
            }
            let text = read_to_string_limited(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            return TrustedRoot::from_json(&text).map_err(|e| format!("{}: {e}", file.display()));
        }
        _ => {
            return Err(
                "must be the trusted_root.json document (a mapping or JSON text) or the path of the file"
                    .to_string(),
            );
        }
    };
    TrustedRoot::from_json(&text).map_err(|e| e.to_string())
}

/// A control-plane key the trust policy names (`controlPlaneKeys`): it signs Pull jobs and Push intents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneKey {
    pub name: String,
    pub key: VerifyingKey,
}

/// A loaded trust policy, keys parsed.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub mode: Mode,
    pub require_committer_match: bool,
    ssh: AllowedSigners,
    openpgp: OpenPgpKeyring,
    gitsign: Option<GitsignTrust>,
    control_plane: Vec<ControlPlaneKey>,
    notes: super::notes::auth::NotesTrust,
    charts: crate::charts::ChartTrust,
}

impl TrustPolicy {
    /// Read and parse a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let read_err = |message: String| PolicyError::Read {
            path: path.to_path_buf(),
            message,
        };
        let text = read_to_string_limited(path).map_err(|e| read_err(e.to_string()))?;
        Self::parse(&text, Some(path))
    }

    /// Parse a policy from YAML text (e.g. a Secret's data).
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        Self::parse(text, None)
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Self, PolicyError> {
        let path = path.map(Path::to_path_buf);
        // YAML 1.1 spells booleans `yes`/`no`/`on`/`off`/`y`/`n` too, and a policy written as `no` would
        // read as false: only `true` and `false` are booleans here (anything else is a string, refused by a
        // bool field).
        let options = serde_saphyr::options! { strict_booleans: true };
        let value: serde_json::Value =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| PolicyError::Yaml {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if !value.is_object() {
            return Err(PolicyError::Field {
                path,
                field: ".".to_string(),
                message: "the policy must be a mapping".to_string(),
            });
        }
        let file: PolicyFile = serde_path_to_error::deserialize(&value).map_err(|e| {
            let field = e.path().to_string();
            PolicyError::Field {
                path: path.clone(),
                field,
                message: e.into_inner().to_string(),
            }
        })?;
        let ssh = AllowedSigners::parse(file.ssh_allowed_signers.as_deref().unwrap_or(""))
            .map_err(|source| PolicyError::Ssh {
                path: path.clone(),
                source,
            })?;
        let openpgp =
            OpenPgpKeyring::load(&file.openpgp_keys).map_err(|source| PolicyError::OpenPgp {
                path: path.clone(),
                source,
            })?;
        let field_err = |field: &str, message: String| PolicyError::Field {
            path: path.clone(),
            field: field.to_string(),
            message,
        };
        let gitsign = match (&file.sigstore_trusted_root, file.gitsign_identities) {
            (None, identities) if identities.is_empty() => None,
            (None, _) => {
                return Err(field_err(
                    "gitsignIdentities",
                    "needs sigstoreTrustedRoot (the Sigstore trusted root that gitsign certificates and \
                     log entries are checked against)"
                        .to_string(),
                ));
            }
            (Some(_), identities) if identities.is_empty() => {
                return Err(field_err(
                    "sigstoreTrustedRoot",
                    "is set but gitsignIdentities is empty: no gitsign signer would be trusted"
                        .to_string(),
                ));
            }
            (Some(value), identities) => Some(GitsignTrust {
                root: load_trusted_root(value, path.as_deref())
                    .map_err(|message| field_err("sigstoreTrustedRoot", message))?,
                identities,
            }),
        };
        let mut control_plane = Vec::new();
        for (i, k) in file.control_plane_keys.iter().enumerate() {
            let key = parse_ed25519_public_key(&k.key, "jobs")
                .map_err(|message| field_err(&format!("controlPlaneKeys[{i}].key"), message))?;
            if k.name.is_empty() {
                return Err(field_err(
                    &format!("controlPlaneKeys[{i}].name"),
                    "empty".to_string(),
                ));
            }
            if let Some(j) = control_plane
                .iter()
                .position(|c: &ControlPlaneKey| c.name == k.name)
            {
                return Err(field_err(
                    &format!("controlPlaneKeys[{i}].name"),
                    format!("{:?} is named twice (also controlPlaneKeys[{j}])", k.name),
                ));
            }
            // One key, one entry: under two names, removing one name would not revoke the key.
            if let Some(j) = control_plane
                .iter()
                .position(|c: &ControlPlaneKey| c.key == key)
            {
                return Err(field_err(
                    &format!("controlPlaneKeys[{i}].key"),
                    format!(
                        "the same key as controlPlaneKeys[{j}] ({:?}): a key is listed once, under one name \
                         (removing one of two names would not revoke it)",
                        control_plane[j].name
                    ),
                ));
            }
            control_plane.push(ControlPlaneKey {
                name: k.name.clone(),
                key,
            });
        }
        let notes = super::notes::auth::NotesTrust::from_entries(&file.notes_keys)
            .map_err(|(field, message)| field_err(&field, message))?;
        let charts = match file.charts {
            None => crate::charts::ChartTrust::default(),
            Some(section) => crate::charts::ChartTrust::from_file(section)
                .map_err(|(field, message)| field_err(&field, message))?,
        };
        if ssh.is_empty() && openpgp.is_empty() && gitsign.is_none() && control_plane.is_empty() {
            return Err(PolicyError::NoKeys { path });
        }
        Ok(Self {
            mode: file.mode,
            require_committer_match: file.require_committer_match,
            ssh,
            openpgp,
            gitsign,
            control_plane,
            notes,
            charts,
        })
    }

    /// Which signatures charts must carry (the `charts` section; without one, none).
    pub fn charts(&self) -> &crate::charts::ChartTrust {
        &self.charts
    }

    /// The operator's notes keys (`notesKeys`): the records they sign are genuine.
    pub fn notes_keys(&self) -> &super::notes::auth::NotesTrust {
        &self.notes
    }

    /// The control-plane keys for signed jobs (empty: jobs are not required to be signed).
    pub fn control_plane_keys(&self) -> &[ControlPlaneKey] {
        &self.control_plane
    }

    /// The SSH allowed signers.
    pub fn ssh(&self) -> &AllowedSigners {
        &self.ssh
    }

    /// The OpenPGP keys.
    pub fn openpgp(&self) -> &OpenPgpKeyring {
        &self.openpgp
    }

    /// The gitsign trust (trusted root and identities), when the policy sets it.
    pub fn gitsign(&self) -> Option<&GitsignTrust> {
        self.gitsign.as_ref()
    }

    /// Check `signature` over `payload` for a commit by `committer_email` made at `commit_time` (SSH validity
    /// is judged over that span: the committer time to when the commit was first seen, see
    /// [`super::sigcheck::Span`]), judged at `now` (OpenPGP expiry, signatures from the future). The one place
    /// signature kinds are dispatched.
    pub fn check(
        &self,
        signature: &[u8],
        payload: &[u8],
        committer_email: &str,
        commit_time: impl Into<Span>,
        now: i64,
    ) -> (Option<SignatureKind>, SigCheck) {
        let kind = match SignatureKind::detect(signature) {
            Ok(k) => k,
            Err(f) => return (None, SigCheck::failed(None, f)),
        };
        let check = match kind {
            SignatureKind::Ssh if self.ssh.is_empty() => SigCheck::failed(
                None,
                Failure::new(
                    Reason::UntrustedSignatureKind,
                    "SSH signatures are not trusted by this policy (sshAllowedSigners is empty)",
                ),
            ),
            SignatureKind::Ssh => self.ssh.verify(
                signature,
                payload,
                committer_email,
                commit_time,
                self.require_committer_match,
            ),
            SignatureKind::OpenPgp if self.openpgp.is_empty() => SigCheck::failed(
                None,
                Failure::new(
                    Reason::UntrustedSignatureKind,
                    "OpenPGP signatures are not trusted by this policy (openpgpKeys is empty)",
                ),
            ),
            SignatureKind::OpenPgp => self.openpgp.verify(
                signature,
                payload,
                committer_email,
                now,
                self.require_committer_match,
            ),
            SignatureKind::X509 => match &self.gitsign {
                None => SigCheck::failed(
                    None,
                    Failure::new(
                        Reason::UntrustedSignatureKind,
                        "x509/gitsign signatures are not trusted by this policy \
                         (sigstoreTrustedRoot and gitsignIdentities are not set)",
                    ),
                ),
                Some(trust) => trust.verify(
                    signature,
                    payload,
                    committer_email,
                    self.require_committer_match,
                ),
            },
        };
        (Some(kind), check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn defaults() {
        let p = TrustPolicy::from_yaml(&format!("sshAllowedSigners: \"a@x {KEY}\"\n")).unwrap();
        assert_eq!(p.mode, Mode::Range);
        assert!(p.require_committer_match);
        assert_eq!(p.ssh().entries().len(), 1);
        let p = TrustPolicy::from_yaml(&format!(
            "mode: head\nrequireCommitterMatch: false\nsshAllowedSigners: |\n  a@x,b@x {KEY}\n"
        ))
        .unwrap();
        assert_eq!(p.mode, Mode::Head);
        assert!(!p.require_committer_match);
        assert_eq!(p.ssh().entries().len(), 1);
        let p = TrustPolicy::from_yaml(&format!(
            "requireCommitterMatch: true\nsshAllowedSigners: \"a@x {KEY}\"\n"
        ))
        .unwrap();
        assert!(p.require_committer_match);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("mode: tail\nsshAllowedSigners: x\n", "mode"),
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nsigstoreTrustedRoot: x\n") as &str,
                "sigstoreTrustedRoot: is set but gitsignIdentities is empty",
            ),
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nrequireCommitterMatch: maybe\n"),
                "requireCommitterMatch",
            ),
            ("sshAllowedSigners: [1]\n", "sshAllowedSigners"),
            ("openpgpKeys: notalist\n", "openpgpKeys"),
            (
                "sshAllowedSigners: \"a@x ssh-ed25519 zzz\"\n",
                "sshAllowedSigners: line 1",
            ),
            ("openpgpKeys: [\"junk\"]\n", "openpgpKeys[0]"),
            (
                "controlPlaneKeys: [{name: cp, key: AAAA}]\n",
                "controlPlaneKeys[0].key: 3 bytes, an Ed25519 public key has 32",
            ),
            (
                "controlPlaneKeys: [{name: cp, key: \"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7\"}]\n",
                "controlPlaneKeys[0].key",
            ),
            (
                "controlPlaneKeys: [{name: cp, key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=}, {name: cp, key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=}]\n",
                "controlPlaneKeys[1].name: \"cp\" is named twice",
            ),
            ("controlPlaneKeys: [{name: cp}]\n", "controlPlaneKeys[0]"),
            // One key under two names: removing one name would not revoke it.
            (
                "controlPlaneKeys: [{name: a, key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=}, {name: b, key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB b@x\"}]\n",
                "controlPlaneKeys[1].key: the same key as controlPlaneKeys[0] (\"a\")",
            ),
            // A small-order Ed25519 key: signatures need no secret.
            (
                "controlPlaneKeys: [{name: cp, key: AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}]\n",
                "controlPlaneKeys[0].key: a small-order (weak) Ed25519 public key",
            ),
            (
                "controlPlaneKeys: [{name: cp, key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOz///////////////////////////////////////9/\"}]\n",
                "controlPlaneKeys[0].key: a small-order (weak) Ed25519 public key",
            ),
            // YAML 1.1 booleans are strings here: only true and false are booleans.
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nrequireCommitterMatch: no\n"),
                "requireCommitterMatch: invalid type: string \"no\", expected a boolean",
            ),
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nrequireCommitterMatch: off\n"),
                "requireCommitterMatch",
            ),
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nrequireCommitterMatch: n\n"),
                "requireCommitterMatch",
            ),
            (
                &format!("sshAllowedSigners: \"a@x {KEY}\"\nrequireCommitterMatch: yes\n"),
                "requireCommitterMatch",
            ),
            ("mode: range\n", "trusts no key"),
            ("{}\n", "trusts no key"),
            ("- a\n- b\n", "mapping"),
            ("mode: [\n", "invalid YAML"),
        ];
        for (text, want) in cases {
            let err = TrustPolicy::from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err} (wanted {want})");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_regular_files_up_to_the_limit_are_read() {
        // /dev/zero says it holds 0 bytes and never ends; a FIFO blocks whoever opens it for reading.
        let err = TrustPolicy::from_yaml(
            "sigstoreTrustedRoot: /dev/zero\ngitsignIdentities: [{issuer: a, subject: b}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sigstoreTrustedRoot")
                && err.contains("character device, not a regular file"),
            "{err}"
        );
        let err = TrustPolicy::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("policy.yaml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(TrustPolicy::load(&path).map(|_| ())));
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("loading a FIFO as the policy blocked")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy.yaml") && err.contains("FIFO, not a regular file"),
            "{err}"
        );
        let err = TrustPolicy::from_yaml(&format!(
            "sigstoreTrustedRoot: {}\ngitsignIdentities: [{{issuer: a, subject: b}}]\n",
            fifo.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("FIFO, not a regular file"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_POLICY_BYTES as usize + 1]).unwrap();
        let err = TrustPolicy::load(&big).unwrap_err().to_string();
        assert!(err.contains("byte limit"), "{err}");
    }

    #[test]
    fn armor_detection() {
        let ok = |s: &str| SignatureKind::detect(s.as_bytes());
        assert_eq!(
            ok("-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n").unwrap(),
            SignatureKind::Ssh
        );
        assert_eq!(
            ok("-----BEGIN PGP SIGNATURE-----\n\nx\n-----END PGP SIGNATURE-----\n").unwrap(),
            SignatureKind::OpenPgp
        );
        assert_eq!(
            ok("-----BEGIN SIGNED MESSAGE-----\nx\n-----END SIGNED MESSAGE-----\n").unwrap(),
            SignatureKind::X509
        );
        let fails = [
            (
                "-----BEGIN PGP MESSAGE-----\nx\n-----END PGP MESSAGE-----\n",
                Reason::UnknownSignatureFormat,
            ),
            ("hello\n", Reason::UnknownSignatureFormat),
            (
                "-----BEGIN SSH SIGNATURE-----\nx\n",
                Reason::MalformedSignature,
            ),
            (
                "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\ntrailing\n",
                Reason::MalformedSignature,
            ),
            (
                "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n-----BEGIN SSH SIGNATURE-----\ny\n-----END SSH SIGNATURE-----\n",
                Reason::MultipleSignatures,
            ),
            (
                "-----BEGIN SSH SIGNATURE-----\n-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
                Reason::MalformedSignature,
            ),
        ];
        for (text, want) in fails {
            assert_eq!(ok(text).unwrap_err().reason, want, "{text:?}");
        }
    }

    #[test]
    fn the_policy_file_names_the_charts_field_that_is_wrong() {
        let base = "sshAllowedSigners: |\n  a@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnU4X9Bv1jCkR2Ht0bhxEuRJxYqQmOZtAVg3IUhRdrC\n";
        let typo = format!(
            "{base}charts:\n  rules:\n    - prefix: oci://r.example\n      cosignKey: []\n"
        );
        let err = TrustPolicy::from_yaml(&typo).unwrap_err().to_string();
        assert!(
            err.contains("charts.rules[0]") && err.contains("unknown field `cosignKey`"),
            "{err}"
        );
        let bad = format!(
            "{base}charts:\n  rules:\n    - prefix: ftp://r.example\n      unsigned: true\n"
        );
        let err = TrustPolicy::from_yaml(&bad).unwrap_err().to_string();
        assert!(err.contains("charts.rules[0].prefix"), "{err}");
        let ok = format!("{base}charts:\n  default: optional\n");
        let policy = TrustPolicy::from_yaml(&ok).unwrap();
        assert_eq!(
            policy.charts().default,
            Some(crate::charts::ChartDefault::Optional)
        );
        let none = TrustPolicy::from_yaml(base).unwrap();
        assert_eq!(*none.charts(), crate::charts::ChartTrust::default());
    }
}

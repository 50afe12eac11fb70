//! `gitsignIdentities` entries of the trust policy: which OIDC identities may sign.
//!
//! ```yaml
//! gitsignIdentities:
//!   - issuer: https://accounts.google.com
//!     subject: billy@chainguard.dev
//!   - issuer: https://token.actions.githubusercontent.com
//!     subjectRegex: https://github\.com/example/infra/\.github/workflows/release\.yaml@refs/heads/.*
//! ```
//! The issuer is compared exactly; `subject` exactly, or `subjectRegex` as a regular expression that
//! must match the whole subject (it is anchored).

use std::fmt;

use regex::Regex;
use serde::Deserialize;

/// Why a `gitsignIdentities` entry was rejected.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("gitsignIdentities entry: issuer must not be empty")]
    EmptyIssuer,
    #[error(
        "gitsignIdentities entry for issuer {issuer}: set exactly one of subject or subjectRegex"
    )]
    SubjectChoice { issuer: String },
    #[error("gitsignIdentities entry for issuer {issuer}: subject must not be empty")]
    EmptySubject { issuer: String },
    #[error(
        "gitsignIdentities entry for issuer {issuer}: subjectRegex {pattern:?} is invalid: {source}"
    )]
    Regex {
        issuer: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

/// How a subject is matched.
#[derive(Debug, Clone)]
pub enum SubjectMatcher {
    Exact(String),
    /// The user's pattern, and the anchored regex built from it.
    Regex(String, Regex),
}

/// One trusted gitsign identity: an OIDC issuer and a subject (SAN email or URI).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawIdentity")]
pub struct GitsignIdentity {
    issuer: String,
    subject: SubjectMatcher,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawIdentity {
    issuer: String,
    subject: Option<String>,
    subject_regex: Option<String>,
}

impl TryFrom<RawIdentity> for GitsignIdentity {
    type Error = IdentityError;

    fn try_from(raw: RawIdentity) -> Result<Self, Self::Error> {
        match (raw.subject, raw.subject_regex) {
            (Some(subject), None) => Self::exact(raw.issuer, subject),
            (None, Some(pattern)) => Self::regex(raw.issuer, pattern),
            _ => Err(IdentityError::SubjectChoice { issuer: raw.issuer }),
        }
    }
}

impl GitsignIdentity {
    /// An identity with an exact subject.
    pub fn exact(
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let (issuer, subject) = (issuer.into(), subject.into());
        if issuer.is_empty() {
            return Err(IdentityError::EmptyIssuer);
        }
        if subject.is_empty() {
            return Err(IdentityError::EmptySubject { issuer });
        }
        Ok(Self {
            issuer,
            subject: SubjectMatcher::Exact(subject),
        })
    }

    /// An identity whose subject must fully match `pattern`.
    pub fn regex(
        issuer: impl Into<String>,
        pattern: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let (issuer, pattern) = (issuer.into(), pattern.into());
        if issuer.is_empty() {
            return Err(IdentityError::EmptyIssuer);
        }
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| IdentityError::Regex {
            issuer: issuer.clone(),
            pattern: pattern.clone(),
            source: Box::new(e),
        })?;
        Ok(Self {
            issuer,
            subject: SubjectMatcher::Regex(pattern, regex),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn subject(&self) -> &SubjectMatcher {
        &self.subject
    }

    /// Whether a certificate with this issuer and subject is this identity.
    pub fn matches(&self, issuer: &str, subject: &str) -> bool {
        self.issuer == issuer
            && match &self.subject {
                SubjectMatcher::Exact(s) => s == subject,
                SubjectMatcher::Regex(_, re) => re.is_match(subject),
            }
    }
}

impl fmt::Display for GitsignIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            SubjectMatcher::Exact(s) => write!(f, "{s} (issuer {})", self.issuer),
            SubjectMatcher::Regex(p, _) => write!(f, "/{p}/ (issuer {})", self.issuer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<GitsignIdentity, String> {
        serde_json::from_str::<GitsignIdentity>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn exact_subject() {
        let id =
            parse(r#"{"issuer":"https://accounts.google.com","subject":"a@example.com"}"#).unwrap();
        assert!(id.matches("https://accounts.google.com", "a@example.com"));
        assert!(!id.matches("https://accounts.google.com", "b@example.com"));
        assert!(!id.matches("https://accounts.google.com/", "a@example.com"));
        assert!(!id.matches("https://github.com/login/oauth", "a@example.com"));
    }

    #[test]
    fn regex_is_anchored() {
        let id = parse(r#"{"issuer":"https://issuer","subjectRegex":".*@example\\.com"}"#).unwrap();
        assert!(id.matches("https://issuer", "alice@example.com"));
        assert!(!id.matches("https://issuer", "alice@example.com.evil.test"));
        assert!(!id.matches("https://issuer", "alice@example_com"));
        let alt = GitsignIdentity::regex("https://issuer", "a@x|b@x").unwrap();
        // Anchoring wraps the whole alternation, not only its ends.
        assert!(alt.matches("https://issuer", "b@x"));
        assert!(!alt.matches("https://issuer", "a@xyz"));
        assert!(!alt.matches("https://issuer", "zb@x"));
    }

    #[test]
    fn invalid_entries() {
        for (json, want) in [
            (
                r#"{"issuer":"i"}"#,
                "exactly one of subject or subjectRegex",
            ),
            (
                r#"{"issuer":"i","subject":"s","subjectRegex":"s"}"#,
                "exactly one",
            ),
            (r#"{"issuer":"","subject":"s"}"#, "issuer must not be empty"),
            (
                r#"{"issuer":"i","subject":""}"#,
                "subject must not be empty",
            ),
            (
                r#"{"issuer":"i","subjectRegex":"("}"#,
                "subjectRegex \"(\" is invalid",
            ),
            (r#"{"issuer":"i","subject":"s","extra":1}"#, "unknown field"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}

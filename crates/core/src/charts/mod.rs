//! Chart trust: which signatures a chart must carry before Flux may install it (the trust policy's `charts`
//! section). Pure: the rules, the one function that says what a chart needs ([`ChartTrust::requirement`]), and
//! the refusals the renderer, admission and `render` share. Flux's source-controller does the verifying (the
//! OCIRepository's `spec.verify`); the operator renders what it must check and reads back what it found.

pub mod keys;

use std::sync::{Arc, RwLock};

use serde::Deserialize;

pub use keys::CosignKey;

use crate::api::{ChartSourceType, ChartSpec};

/// What happens to a chart no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ChartDefault {
    /// Refused: every chart must fall under a rule (the default once a `charts` section exists).
    #[default]
    Required,
    /// Installed without verification.
    Optional,
}

/// A keyless (Fulcio certificate) identity a signature must carry: regular expressions, as Flux's
/// `matchOIDCIdentity` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeylessIdentity {
    pub issuer: String,
    pub subject: String,
}

/// What a rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// A cosign signature by one of these keys.
    CosignKeys(Vec<CosignKey>),
    /// A keyless cosign signature whose certificate matches one of these identities.
    CosignKeyless(Vec<KeylessIdentity>),
    /// Nothing: the charts under the prefix are installed unverified (an explicit exception).
    Unsigned,
}

/// One rule: the charts under `prefix` need `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRule {
    /// `oci://HOST[:PORT][/PATH]` or `https://HOST[:PORT][/PATH]`, without a trailing `/`; it covers the chart
    /// references equal to it or under it by whole path components.
    pub prefix: String,
    pub verify: Verify,
}

/// The `charts` section, parsed. Without one, every chart is installed unverified (the behaviour before chart
/// trust existed; docs/trust-policy.md says why that is not the default once the section is written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChartTrust {
    pub default: Option<ChartDefault>,
    pub rules: Vec<ChartRule>,
}

/// What one chart needs, by [`ChartTrust::requirement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement<'a> {
    /// Installed without verification: no `charts` section, `default: optional`, or an `unsigned` rule.
    Unverified,
    /// The chart source must verify it under this rule.
    Signed(&'a ChartRule),
    /// Not installed, and why.
    Refused(String),
}

/// The policy file's `charts` section as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChartsFile {
    #[serde(default)]
    default: Option<ChartDefault>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleFile {
    prefix: String,
    #[serde(default)]
    cosign_keys: Vec<KeyFile>,
    #[serde(default)]
    cosign_identities: Vec<KeylessIdentity>,
    #[serde(default)]
    unsigned: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    name: String,
    key: String,
}

/// At most this many rules, keys per rule and identities per rule: a policy is written by people.
pub const MAX_RULES: usize = 256;
pub const MAX_PER_RULE: usize = 32;

impl ChartTrust {
    /// Check a `charts` section; errors are (field path under `charts`, reason).
    pub(crate) fn from_file(file: ChartsFile) -> Result<Self, (String, String)> {
        if file.rules.len() > MAX_RULES {
            return Err((
                "charts.rules".into(),
                format!("{} rules; at most {MAX_RULES}", file.rules.len()),
            ));
        }
        let mut rules: Vec<ChartRule> = Vec::new();
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = |f: &str| format!("charts.rules[{i}].{f}");
            let prefix = normalize_prefix(&r.prefix).map_err(|m| (at("prefix"), m))?;
            if let Some(j) = rules.iter().position(|o| o.prefix == prefix) {
                return Err((
                    at("prefix"),
                    format!("{prefix:?} is also charts.rules[{j}]: one rule per prefix"),
                ));
            }
            let kinds = usize::from(!r.cosign_keys.is_empty())
                + usize::from(!r.cosign_identities.is_empty())
                + usize::from(r.unsigned);
            if kinds != 1 {
                return Err((
                    format!("charts.rules[{i}]"),
                    "needs exactly one of cosignKeys, cosignIdentities or unsigned: true".into(),
                ));
            }
            if r.cosign_keys.len() > MAX_PER_RULE || r.cosign_identities.len() > MAX_PER_RULE {
                return Err((
                    format!("charts.rules[{i}]"),
                    format!("at most {MAX_PER_RULE} keys or identities per rule"),
                ));
            }
            let verify = if r.unsigned {
                Verify::Unsigned
            } else if !r.cosign_keys.is_empty() {
                Verify::CosignKeys(parse_keys(&r.cosign_keys, &at)?)
            } else {
                for (k, id) in r.cosign_identities.iter().enumerate() {
                    check_identity(id).map_err(|m| (at(&format!("cosignIdentities[{k}]")), m))?;
                }
                Verify::CosignKeyless(r.cosign_identities)
            };
            rules.push(ChartRule { prefix, verify });
        }
        Ok(Self {
            default: Some(file.default.unwrap_or_default()),
            rules,
        })
    }

    /// What `chart` needs: the longest rule whose prefix covers its reference, or the default.
    pub fn requirement(&self, chart: &ChartSpec) -> Requirement<'_> {
        if self.rules.is_empty() && !matches!(self.default, Some(ChartDefault::Required)) {
            // No rule can cover it and nothing is required (no charts section, or one without rules).
            return Requirement::Unverified;
        }
        let reference = chart_reference(chart);
        let rule = self
            .rules
            .iter()
            .filter(|r| covers(&r.prefix, &reference))
            .max_by_key(|r| r.prefix.len());
        match (rule, self.default) {
            (None, None | Some(ChartDefault::Optional)) => Requirement::Unverified,
            (None, Some(ChartDefault::Required)) => Requirement::Refused(format!(
                "no rule of the trust policy's charts section covers {reference}, and charts.default is \
                 required: add a rule for its registry (cosignKeys or cosignIdentities), or unsigned: true \
                 to install it unverified"
            )),
            (
                Some(ChartRule {
                    verify: Verify::Unsigned,
                    ..
                }),
                _,
            ) => Requirement::Unverified,
            (Some(rule), _) if chart.source_type == ChartSourceType::Helm => {
                Requirement::Refused(format!(
                    "the trust policy requires cosign signatures for the charts under {} (rule for {reference}), \
                 and a Helm repository (https://) chart cannot be verified: Flux verifies signatures of OCI \
                 artifacts only. Publish the chart to an OCI registry, or give the repository a rule with \
                 unsigned: true",
                    rule.prefix
                ))
            }
            (Some(rule), _) => Requirement::Signed(rule),
        }
    }
}

impl ChartRule {
    /// Who must have signed, for conditions, notes and events: the keys' names and fingerprints, or the
    /// identities.
    pub fn expected_signer(&self) -> String {
        match &self.verify {
            Verify::CosignKeys(keys) => {
                let list: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{} ({})", k.name, k.fingerprint))
                    .collect();
                match list.as_slice() {
                    [one] => format!("cosign key {one}"),
                    _ => format!("one of the cosign keys {}", list.join(", ")),
                }
            }
            Verify::CosignKeyless(ids) => {
                let list: Vec<String> = ids
                    .iter()
                    .map(|i| format!("issuer ~ {:?}, subject ~ {:?}", i.issuer, i.subject))
                    .collect();
                format!("a keyless cosign certificate with {}", list.join(" or "))
            }
            Verify::Unsigned => "nobody (unsigned: true)".into(),
        }
    }
}

/// The chart's reference as rules see it: `<url>/<name>` (`oci://host/charts/podinfo`,
/// `https://charts.example.com/podinfo`), scheme and host in lower case. An OCI URL that already ends with the
/// chart's name is the chart's repository itself (what the OCIRepository pulls), as the renderer has it.
pub fn chart_reference(chart: &ChartSpec) -> String {
    let url = chart.url.trim_end_matches('/');
    let named = chart.source_type == ChartSourceType::Oci
        && url.rsplit('/').next() == Some(chart.name.as_str());
    if named {
        lower_authority(url)
    } else {
        lower_authority(&format!("{url}/{}", chart.name))
    }
}

/// Whether `prefix` covers `reference`: equal, or followed by `/` (whole path components: a rule for
/// `oci://registry.example.com` does not cover `oci://registry.example.com.evil.net/x` nor another port).
fn covers(prefix: &str, reference: &str) -> bool {
    reference
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Check a rule's prefix: `oci://` or `https://`, a host, no query, fragment, credentials or empty component;
/// scheme and host lower-cased, trailing `/` removed.
fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let p = prefix.trim();
    let rest = p
        .strip_prefix("oci://")
        .or_else(|| p.strip_prefix("https://"))
        .ok_or_else(|| format!("{p:?} must start with oci:// or https://"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{p:?} has no host"));
    }
    if rest.contains(['?', '#', '@', ' ', '\\', '*']) || rest.contains("//") {
        return Err(format!(
            "{p:?} must be a plain prefix: a host, an optional port and path components (no wildcards, \
             query, fragment or credentials)"
        ));
    }
    if rest.split('/').any(|c| c == "." || c == "..") {
        return Err(format!("{p:?} has a '.' or '..' path component"));
    }
    let scheme = if p.starts_with("oci://") {
        "oci://"
    } else {
        "https://"
    };
    Ok(lower_authority(&format!("{scheme}{rest}")))
}

/// Lower-case the scheme and host (and port) of a URL; the path keeps its case.
fn lower_authority(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!(
        "{}://{}{path}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

fn parse_keys(
    entries: &[KeyFile],
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<CosignKey>, (String, String)> {
    let mut keys: Vec<CosignKey> = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let field = |f: &str| at(&format!("cosignKeys[{k}].{f}"));
        if !is_key_name(&entry.name) {
            return Err((
                field("name"),
                format!(
                    "{:?} must be 1-63 lower-case letters, digits and '-' (it names the key in the Secret)",
                    entry.name
                ),
            ));
        }
        let key = keys::parse_public_key(&entry.name, &entry.key).map_err(|m| (field("key"), m))?;
        if let Some(j) = keys.iter().position(|o| o.name == key.name) {
            return Err((
                field("name"),
                format!("{:?} is also cosignKeys[{j}]", key.name),
            ));
        }
        // One key, one entry: with two, removing one (to revoke the key) would leave it trusted.
        if let Some(j) = keys.iter().position(|o| o.fingerprint == key.fingerprint) {
            return Err((
                field("key"),
                format!(
                    "the same key ({}) as cosignKeys[{j}] ({:?}): a key is listed once per rule",
                    key.fingerprint, keys[j].name
                ),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn is_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// An identity's regular expressions must compile and be anchored: an unanchored subject such as
/// `github.com/org` would also match `https://github.com/org-evil/…` or a subject that merely contains it.
fn check_identity(id: &KeylessIdentity) -> Result<(), String> {
    for (what, re) in [("issuer", &id.issuer), ("subject", &id.subject)] {
        if re.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if re.len() > 1024 {
            return Err(format!("{what} is longer than 1024 characters"));
        }
        regex::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("{what} {re:?} is not a regular expression: {e}"))?;
        if !re.starts_with('^') || !re.ends_with('$') {
            return Err(format!(
                "{what} {re:?} must be anchored (^…$): unanchored, it matches any identity that contains it"
            ));
        }
    }
    Ok(())
}

/// The chart trust in force, shared by the renderer (and through it admission and the reconciler) and the
/// policy reload, which replaces it when the trust policy changes; renders read a snapshot.
#[derive(Debug, Clone, Default)]
pub struct ChartTrustCell(Arc<RwLock<Arc<ChartTrust>>>);

impl ChartTrustCell {
    pub fn new(trust: ChartTrust) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(trust))))
    }

    /// The chart trust now.
    pub fn get(&self) -> Arc<ChartTrust> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put `trust` in force; whether it differs from what was.
    pub fn set(&self, trust: ChartTrust) -> bool {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = **g != trust;
        *g = Arc::new(trust);
        changed
    }
}

impl PartialEq for ChartTrustCell {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.get() == *other.get()
    }
}

impl Eq for ChartTrustCell {}

#[cfg(test)]
mod tests;

/// Two P-256 public keys (generated for the tests with openssl), shared by the chart-trust tests.
#[cfg(test)]
pub(crate) mod test_keys {
    pub const KEY_A: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEe/FgJb/9Qsb+1rObZAHvtYgW+O/4
tW2YR2J74p91ZJ3eGAlr12GjU1CawDQVV8ApBK2l/aJwzn7nAET3FJHK6A==
-----END PUBLIC KEY-----
";
    pub const KEY_B: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElDp78gAlhhr6Cm1yFNUhp7P5d6kK
My+iOvBBAeRyOXbfdo6m+nxWqC1by62EBfRG2NNAaNj3y0ye3f3p6p05Tg==
-----END PUBLIC KEY-----
";
}

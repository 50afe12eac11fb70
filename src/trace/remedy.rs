//! What to do next, for a condition: the "What to do" column of docs/conditions.md (compiled in, so `trace` and
//! the documentation cannot disagree), and the command that shows more.

use std::collections::BTreeMap;

/// docs/conditions.md, the one place remedies are written.
const CONDITIONS_MD: &str = include_str!("../../docs/conditions.md");

/// Remedies by (section, condition type, reason): the section is `ApplicationInstance`, `Operation` or `any`
/// (the rows "added by this project", which apply to both kinds).
pub struct Remedies {
    rows: BTreeMap<(String, String, String), String>,
}

impl Remedies {
    /// The table of docs/conditions.md.
    pub fn documented() -> Self {
        Self::parse(CONDITIONS_MD)
    }

    /// Read every five-column row (`| Type | Status | Reason | Meaning | What to do |`) under a `## ` heading; a
    /// reason cell may list several reasons separated by `/`.
    pub fn parse(markdown: &str) -> Self {
        let mut rows = BTreeMap::new();
        let mut section = String::new();
        for line in markdown.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                section = match h.trim() {
                    "ApplicationInstance" => "ApplicationInstance",
                    "Operation" => "Operation",
                    _ => "any",
                }
                .to_string();
                continue;
            }
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if !line.trim_start().starts_with('|') || cells.len() != 5 || cells[0] == "Type" {
                continue;
            }
            if cells[0].starts_with("---") || cells[4] == "–" || cells[4].is_empty() {
                continue;
            }
            for reason in cells[2].split('/').map(str::trim).filter(|r| !r.is_empty()) {
                rows.insert(
                    (section.clone(), cells[0].to_string(), reason.to_string()),
                    cells[4].to_string(),
                );
            }
        }
        Self { rows }
    }

    /// The documented remedy for a condition of `kind`.
    pub fn remedy(&self, kind: &str, type_: &str, reason: &str) -> Option<&str> {
        [kind, "any"].iter().find_map(|section| {
            self.rows
                .get(&(section.to_string(), type_.to_string(), reason.to_string()))
                .map(String::as_str)
        })
    }
}

/// A command that shows more about a reason, for an intent `kind` `namespace`/`name` (its release or engine
/// object named `child` when it has one).
pub fn command(
    kind: &str,
    namespace: &str,
    name: &str,
    reason: &str,
    child: Option<&str>,
) -> String {
    let child = child.unwrap_or(name);
    match reason {
        "ChartUnreachable" | "ChartUnverified" | "ChartSourceSyncing" => {
            format!("kubectl describe ocirepositories,helmrepositories -n {namespace} {child}")
        }
        "HelmReleaseFailed" | "HelmReleaseDegraded" | "UpgradeFailed" | "Drifted"
        | "HelmReleaseInstalling" | "HelmReleaseUpgrading" | "WaitingForChildResources"
        | "DependencyNotReady" | "HelmReleaseSuspended" => {
            format!("kubectl describe helmrelease -n {namespace} {child}")
        }
        "UnsignedCommit" | "UntrustedSignature" | "BoundExceeded" | "TrustPolicyInvalid" => {
            "vworkspace-operator verify --repo <cluster repo> --policy <trust policy> <last verified>..HEAD"
                .to_string()
        }
        "SpecMismatch" | "SpecNotInGit" | "SpecNotFromControlPlane" => format!(
            "kubectl get {} -n {namespace} {name} -o yaml --show-managed-fields",
            kind.to_ascii_lowercase()
        ),
        "EngineFailed" | "Timeout" | "EngineStarted" => {
            format!("kubectl get events -n {namespace} --field-selector involvedObject.name={child}")
        }
        _ => format!("kubectl describe {} -n {namespace} {name}", kind.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_reason_has_its_remedy() {
        let r = Remedies::documented();
        assert_eq!(
            r.remedy("ApplicationInstance", "Ready", "ChartUnreachable"),
            Some("check the URL, version and registry credentials")
        );
        // A row that lists several reasons, and a row that applies to both kinds.
        assert_eq!(
            r.remedy("ApplicationInstance", "Ready", "Upgrading"),
            Some("wait")
        );
        assert_eq!(
            r.remedy("Operation", "Blocked", "UnsignedCommit"),
            Some("sign it (or revert)")
        );
        assert_eq!(
            r.remedy("Operation", "Blocked", "AwaitingApproval"),
            Some("issue a new claim")
        );
        assert_eq!(
            r.remedy("ApplicationInstance", "Ready", "HelmReleaseSuspended"),
            Some("`flux resume helmrelease -n NS NAME` (or `flux resume source oci …`)")
        );
        assert!(
            r.remedy("ApplicationInstance", "Ready", "NoSuchReason")
                .is_none()
        );
        assert!(r.rows.len() > 40, "{}", r.rows.len());
    }
}

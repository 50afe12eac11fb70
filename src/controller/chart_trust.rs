//! Chart trust in an instance's conditions (pure): what source-controller found when it verified the chart's
//! signature (the OCIRepository's `SourceVerified` condition), said with what the trust policy expected, and
//! the digest and signer of a verified chart that runs. `status::application_conditions` calls it.

use serde_json::Value;

use super::child_status::{child_condition, field, of_current_generation};
use crate::api::conditions::{Cond, reasons, types};

/// What the trust policy requires of an instance's chart, when it requires a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSignature {
    /// The chart as the intent names it: `oci://…/<chart>:<version>` (and `@<digest>` when pinned).
    pub chart: String,
    /// Who must have signed it (`ChartRule::expected_signer`).
    pub expected: String,
}

/// The chart source failed to verify the chart for its current generation (`SourceVerified=False`): the
/// instance is not Ready, whatever an older release still running says.
pub(super) fn source_unverified(src: &Value, signature: &ChartSignature) -> Option<Vec<Cond>> {
    let verified = child_condition(src, "SourceVerified")?;
    if field(verified, "status") != "False" || !of_current_generation(src, verified) {
        return None;
    }
    let flux = field(verified, "message");
    let digest = digest_in(flux).map_or_else(String::new, |d| format!(" at {d}"));
    let message = format!(
        "chart {}{digest} failed signature verification; the trust policy expects {}; \
         source-controller: {}",
        signature.chart, signature.expected, flux
    );
    Some(vec![
        Cond::new(
            types::READY,
            "False",
            reasons::CHART_UNVERIFIED,
            message.clone(),
        ),
        Cond::new(
            types::RECONCILING,
            "True",
            reasons::CHART_SOURCE_SYNCING,
            message,
        ),
        Cond::new(types::DEGRADED, "False", reasons::RECOVERED, ""),
    ])
}

/// The artifact digest the newest release installed (helm-controller's `history[0].ociDigest`).
pub fn installed_digest(helm_release: Option<&Value>) -> Option<&str> {
    helm_release?
        .pointer("/status/history/0/ociDigest")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
}

/// Ready=True of a chart that had to be signed says which bytes run and who signed them, once the source has
/// verified its current generation (after a policy change, until source-controller verified again, it says so).
pub(super) fn with_verified(
    conds: &mut [Cond],
    helm_release: Option<&Value>,
    source: Option<&Value>,
    signature: &ChartSignature,
) {
    let Some(ready) = conds
        .iter_mut()
        .find(|c| c.type_ == types::READY && c.status == "True")
    else {
        return;
    };
    let verified = source.is_some_and(|src| {
        child_condition(src, "SourceVerified")
            .is_some_and(|c| field(c, "status") == "True" && of_current_generation(src, c))
    });
    let digest = installed_digest(helm_release).unwrap_or("(digest not reported)");
    ready.message = if verified {
        format!(
            "{}; chart {digest} verified, signed by {}",
            ready.message, signature.expected
        )
    } else {
        format!(
            "{}; chart {digest}: source-controller has not yet verified the signature of the current \
             source (expected: {})",
            ready.message, signature.expected
        )
    };
}

/// The first `sha256:<64 hex>` in a message (source-controller names the digest it verified).
fn digest_in(message: &str) -> Option<&str> {
    let start = message.find("sha256:")?;
    let digest = message.get(start..start + 71)?;
    digest[7..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signature() -> ChartSignature {
        ChartSignature {
            chart: "oci://r.example/charts/wiki:1.0.0".into(),
            expected: "cosign key release (SHA256:abc)".into(),
        }
    }

    #[test]
    fn a_failed_verification_names_the_chart_the_digest_and_the_expected_signer() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        let src = json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "SourceVerified", "status": "False", "reason": "VerificationError", "observedGeneration": 2,
             "message": format!("failed to verify the signature using provider 'cosign': no matching signatures were found for 'r.example/charts/wiki@{digest}'")}]}});
        let conds = source_unverified(&src, &signature()).unwrap();
        assert_eq!(conds[0].reason, "ChartUnverified");
        assert!(
            conds[0]
                .message
                .contains(&format!("wiki:1.0.0 at {digest}")),
            "{}",
            conds[0].message
        );
        assert!(
            conds[0].message.contains("expects cosign key release"),
            "{}",
            conds[0].message
        );
        // A failure of an older generation (before the policy changed the Secret) is not the answer.
        let mut old = src.clone();
        old["metadata"]["generation"] = json!(3);
        assert!(source_unverified(&old, &signature()).is_none());
        let mut ok = src;
        ok["status"]["conditions"][0]["status"] = json!("True");
        assert!(source_unverified(&ok, &signature()).is_none());
    }

    #[test]
    fn ready_says_which_digest_runs_and_who_signed_it() {
        let hr =
            json!({"status": {"history": [{"chartVersion": "1.0.0", "ociDigest": "sha256:ff"}]}});
        let src = json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "SourceVerified", "status": "True", "reason": "Succeeded", "observedGeneration": 2}]}});
        let ready = || {
            vec![Cond::new(
                types::READY,
                "True",
                reasons::HELM_RELEASE_READY,
                "Helm install succeeded",
            )]
        };
        let mut conds = ready();
        with_verified(&mut conds, Some(&hr), Some(&src), &signature());
        assert_eq!(
            conds[0].message,
            "Helm install succeeded; chart sha256:ff verified, signed by cosign key release (SHA256:abc)"
        );
        // The source's spec changed (a key removed): not verified for its current generation yet.
        let mut stale = src.clone();
        stale["metadata"]["generation"] = json!(3);
        let mut conds = ready();
        with_verified(&mut conds, Some(&hr), Some(&stale), &signature());
        assert!(
            conds[0].message.contains("has not yet verified"),
            "{}",
            conds[0].message
        );
    }
}

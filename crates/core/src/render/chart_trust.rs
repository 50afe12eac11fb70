//! What the trust policy's `charts` section makes of an ApplicationInstance's chart source: the OCIRepository's
//! `spec.verify`, the Secret of public keys it reads, or the refusal. One rule ([`chart_refusal`]) for the
//! renderer, admission and `render`.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::HelmEngine;
use crate::api::{AppMode, ApplicationInstanceSpec, ChartSpec};
use crate::charts::{ChartRule, ChartTrust, Requirement, Verify};

/// Why the chart cannot be installed under the chart trust, as (field, reason).
pub fn chart_refusal(
    engine: &HelmEngine,
    trust: &ChartTrust,
    spec: &ApplicationInstanceSpec,
) -> Option<(String, String)> {
    if spec.mode == AppMode::Placeholder {
        return None;
    }
    chart_refusal_of(engine, trust, spec.chart.as_ref()?)
}

/// [`chart_refusal`] for a chart as it will be rendered (an upgrade's version included).
pub(super) fn chart_refusal_of(
    engine: &HelmEngine,
    trust: &ChartTrust,
    chart: &ChartSpec,
) -> Option<(String, String)> {
    match (trust.requirement(chart), engine) {
        (Requirement::Refused(why), _) => Some(("spec.chart.url".into(), why)),
        (Requirement::Signed(rule), HelmEngine::ArgoCd { .. }) => Some((
            "spec.chart.url".into(),
            format!(
                "the trust policy requires cosign signatures for the charts under {}, and the argocd engine \
                 cannot verify chart signatures (Argo CD checks none on Helm charts): use the flux engine, whose \
                 source-controller verifies them, or give the registry a rule with unsigned: true",
                rule.prefix
            ),
        )),
        _ => None,
    }
}

/// The verification of a chart source: the OCIRepository's `spec.verify` and, for keys, the Secret that
/// holds them.
pub(super) struct SourceVerify {
    pub verify: Value,
    pub keys_secret: Option<KeysSecret>,
}

/// The Secret of public keys an OCIRepository's `verify.secretRef` names. Its name carries a hash of its
/// keys: a policy that adds or removes a key renames it, the OCIRepository's spec changes with it, and
/// source-controller verifies the artifact again (it does not for a changed Secret of the same name).
#[derive(serde::Serialize)]
pub(super) struct KeysSecret {
    pub name: String,
    /// `<key name>.pub` → the base64 of the PEM (the Secret's `data`, as the API server returns it).
    pub data: Map<String, Value>,
}

/// What `chart` needs from its source under `trust`; None when it is installed unverified.
pub(super) fn source_verify(
    trust: &ChartTrust,
    chart: &ChartSpec,
    release: &str,
) -> Option<SourceVerify> {
    match trust.requirement(chart) {
        Requirement::Signed(rule) => Some(verify_of(rule, release)),
        Requirement::Unverified | Requirement::Refused(_) => None,
    }
}

fn verify_of(rule: &ChartRule, release: &str) -> SourceVerify {
    match &rule.verify {
        Verify::CosignKeys(keys) => {
            let mut hash = Sha256::new();
            let mut data = Map::new();
            for k in keys {
                hash.update(k.name.as_bytes());
                hash.update([0]);
                hash.update(k.pem.as_bytes());
                data.insert(
                    format!("{}.pub", k.name),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&k.pem)),
                );
            }
            let name = format!("{release}-cosign-{}", &hex::encode(hash.finalize())[..10]);
            SourceVerify {
                verify: json!({"provider": "cosign", "secretRef": {"name": name}}),
                keys_secret: Some(KeysSecret { name, data }),
            }
        }
        Verify::CosignKeyless(ids) => SourceVerify {
            verify: json!({"provider": "cosign", "matchOIDCIdentity": ids
                .iter()
                .map(|i| json!({"issuer": i.issuer, "subject": i.subject}))
                .collect::<Vec<_>>()}),
            keys_secret: None,
        },
        Verify::Unsigned => SourceVerify {
            verify: Value::Null,
            keys_secret: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApplicationInstance;
    use crate::charts::ChartTrustCell;
    use crate::render::{RenderError, RenderOptions, Renderer, Templates};

    use crate::charts::test_keys::{KEY_A, KEY_B};

    fn trust(keys: &[(&str, &str)]) -> ChartTrust {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(n, k)| json!({"name": n, "key": k}))
            .collect();
        let file = json!({"rules": [
            {"prefix": "oci://registry.example/charts", "cosignKeys": keys},
            {"prefix": "oci://keyless.example", "cosignIdentities": [
                {"issuer": "^https://issuer.example$", "subject": "^ci@example.com$"}]},
            {"prefix": "https://charts.example", "cosignKeys": [{"name": "a", "key": KEY_A}]},
        ]});
        ChartTrust::from_file(serde_json::from_value(file).unwrap()).unwrap()
    }

    fn renderer(trust: ChartTrust, engine: HelmEngine) -> Renderer {
        Renderer::new(Templates::embedded(), RenderOptions::default())
            .with_chart_trust(ChartTrustCell::new(trust))
            .with_helm_engine(engine)
    }

    fn app(source: &str, url: &str, digest: Option<&str>) -> ApplicationInstance {
        let mut chart =
            json!({"sourceType": source, "url": url, "name": "wiki", "version": "1.2.3"});
        if let Some(d) = digest {
            chart["digest"] = json!(d);
        }
        serde_json::from_value(json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "wiki", "namespace": "team-a", "labels": {"app.vworkspace.io/cluster-id": "c1"}},
            "spec": {"appRef": {"catalogId": "wiki"}, "mode": "managed", "chart": chart,
                "release": {"name": "wiki", "namespace": "team-a"}, "values": {"source": "inline", "inline": {}}}
        }))
        .unwrap()
    }

    fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| crate::render::kind(o) == kind)
            .unwrap_or_else(|| panic!("no {kind} in {objects:?}"))
    }

    #[test]
    fn a_chart_under_a_key_rule_gets_verify_and_the_secret_of_its_keys() {
        let r = renderer(trust(&[("a", KEY_A), ("b", KEY_B)]), HelmEngine::Flux);
        let objects = r
            .render_application(&app("oci", "oci://registry.example/charts", None))
            .unwrap();
        let oci = find(&objects, "OCIRepository");
        let secret = find(&objects, "Secret");
        let name = crate::render::name(secret);
        assert!(name.starts_with("wiki-cosign-"), "{name}");
        assert_eq!(
            oci["spec"]["verify"],
            json!({"provider": "cosign", "secretRef": {"name": name}})
        );
        assert_eq!(oci["spec"]["ref"], json!({"tag": "1.2.3"}));
        assert_eq!(crate::render::namespace(secret), "team-a");
        assert_eq!(
            secret["metadata"]["labels"]["app.vworkspace.io/application-instance"],
            "wiki"
        );
        let data = secret["data"].as_object().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a.pub", "b.pub"]);
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data["a.pub"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(pem).unwrap(), KEY_A);

        // A key removed: the Secret is renamed, so the OCIRepository's spec changes and Flux verifies again.
        let fewer = renderer(trust(&[("b", KEY_B)]), HelmEngine::Flux)
            .render_application(&app("oci", "oci://registry.example/charts", None))
            .unwrap();
        let renamed = crate::render::name(find(&fewer, "Secret"));
        assert_ne!(renamed, name);
        assert_eq!(
            find(&fewer, "OCIRepository")["spec"]["verify"]["secretRef"]["name"],
            renamed
        );
    }

    #[test]
    fn keyless_rules_match_identities_and_digests_pin_the_artifact() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = renderer(trust(&[("a", KEY_A)]), HelmEngine::Flux);
        let objects = r
            .render_application(&app("oci", "oci://keyless.example/x", Some(&digest)))
            .unwrap();
        assert!(objects.iter().all(|o| crate::render::kind(o) != "Secret"));
        let oci = find(&objects, "OCIRepository");
        assert_eq!(
            oci["spec"]["verify"],
            json!({"provider": "cosign", "matchOIDCIdentity": [
                {"issuer": "^https://issuer.example$", "subject": "^ci@example.com$"}]})
        );
        assert_eq!(oci["spec"]["ref"], json!({"digest": digest}));
        // Without a rule covering it (and the section's default, required), the chart is refused.
        let err = r
            .render_application(&app("oci", "oci://elsewhere.example/x", None))
            .unwrap_err();
        assert!(
            matches!(&err, RenderError::Intent { field, reason } if field == "spec.chart.url" && reason.contains("no rule")),
            "{err}"
        );
    }

    #[test]
    fn helm_repositories_and_the_argocd_engine_under_a_signature_rule_are_refused() {
        let flux = renderer(trust(&[("a", KEY_A)]), HelmEngine::Flux);
        let err = flux
            .render_application(&app("helm", "https://charts.example", None))
            .unwrap_err();
        assert!(err.to_string().contains("Helm repository"), "{err}");
        let argo = renderer(
            trust(&[("a", KEY_A)]),
            HelmEngine::parse("argocd", "argocd").unwrap(),
        );
        let err = argo
            .render_application(&app("oci", "oci://registry.example/charts", None))
            .unwrap_err();
        assert!(err.to_string().contains("argocd engine"), "{err}");
        // The same rule at admission.
        let spec = app("helm", "https://charts.example", None).spec;
        let (field, _) = chart_refusal(&HelmEngine::Flux, &trust(&[("a", KEY_A)]), &spec).unwrap();
        assert_eq!(field, "spec.chart.url");
    }
}

use super::*;

use super::test_keys::{KEY_A, KEY_B};

fn parse(yaml: &str) -> Result<ChartTrust, (String, String)> {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let file: ChartsFile = serde_json::from_value(value).map_err(|e| ("".into(), e.to_string()))?;
    ChartTrust::from_file(file)
}

fn chart(source: &str, url: &str, name: &str) -> ChartSpec {
    serde_json::from_value(serde_json::json!({
        "sourceType": source, "url": url, "name": name, "version": "1.0.0"
    }))
    .unwrap()
}

fn keys_rule(prefix: &str) -> String {
    format!(
        "  - prefix: {prefix}\n    cosignKeys:\n      - name: release\n        key: |\n{}",
        KEY_A
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    )
}

#[test]
fn the_longest_covering_rule_decides_by_whole_path_components() {
    let yaml = format!(
        "default: required\nrules:\n{}  - prefix: oci://registry.example.com/charts/experimental\n    unsigned: true\n",
        keys_rule("oci://Registry.Example.com/charts/")
    );
    let trust = parse(&yaml).unwrap();
    assert_eq!(trust.rules[0].prefix, "oci://registry.example.com/charts");
    let need = |url: &str, name: &str| trust.requirement(&chart("oci", url, name));
    assert!(matches!(
        need("oci://registry.example.com/charts", "podinfo"),
        Requirement::Signed(r) if r.prefix == "oci://registry.example.com/charts"
    ));
    assert_eq!(
        need("oci://registry.example.com/charts/experimental", "x"),
        Requirement::Unverified
    );
    // Not the same path component, host or port: the default (required) refuses.
    for (url, name) in [
        ("oci://registry.example.com/charts-evil", "podinfo"),
        ("oci://registry.example.com.evil.net/charts", "podinfo"),
        ("oci://registry.example.com:5000/charts", "podinfo"),
        ("oci://other.example.com/charts", "podinfo"),
    ] {
        match need(url, name) {
            Requirement::Refused(why) => assert!(why.contains("no rule"), "{url}: {why}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // The registry's host in upper case is the same registry.
    assert!(matches!(
        need("oci://REGISTRY.example.com/charts", "podinfo"),
        Requirement::Signed(_)
    ));
}

#[test]
fn without_a_section_or_with_optional_unlisted_charts_install_unverified() {
    let none = ChartTrust::default();
    assert_eq!(
        none.requirement(&chart("oci", "oci://r.example/c", "x")),
        Requirement::Unverified
    );
    let optional = parse(&format!(
        "default: optional\nrules:\n{}",
        keys_rule("oci://r.example")
    ))
    .unwrap();
    assert_eq!(
        optional.requirement(&chart("oci", "oci://other.example/c", "x")),
        Requirement::Unverified
    );
    assert!(matches!(
        optional.requirement(&chart("oci", "oci://r.example/c", "x")),
        Requirement::Signed(_)
    ));
    // A section without `default` requires.
    let implicit = parse(&format!("rules:\n{}", keys_rule("oci://r.example"))).unwrap();
    assert_eq!(implicit.default, Some(ChartDefault::Required));
}

#[test]
fn a_helm_repository_under_a_signature_rule_is_refused_with_the_reason() {
    let trust = parse(&format!(
        "rules:\n{}",
        keys_rule("https://charts.example.com")
    ))
    .unwrap();
    match trust.requirement(&chart("helm", "https://charts.example.com/", "wiki")) {
        Requirement::Refused(why) => {
            assert!(why.contains("Helm repository"), "{why}");
            assert!(why.contains("https://charts.example.com/wiki"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let exempt =
        parse("rules:\n  - prefix: https://charts.example.com\n    unsigned: true\n").unwrap();
    assert_eq!(
        exempt.requirement(&chart("helm", "https://charts.example.com", "wiki")),
        Requirement::Unverified
    );
}

#[test]
fn bad_rules_are_refused_naming_the_field() {
    let two_keys = format!(
        "rules:\n  - prefix: oci://r.example\n    cosignKeys:\n      - name: a\n        key: |\n{a}      - name: b\n        key: |\n{a}",
        a = KEY_A
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    );
    let cases: Vec<(String, &str, &str)> = vec![
        ("rules:\n  - prefix: http://r.example\n    unsigned: true\n".into(), "charts.rules[0].prefix", "oci://"),
        ("rules:\n  - prefix: oci://\n    unsigned: true\n".into(), "charts.rules[0].prefix", "no host"),
        ("rules:\n  - prefix: oci://r.example/*\n    unsigned: true\n".into(), "charts.rules[0].prefix", "plain prefix"),
        ("rules:\n  - prefix: oci://u:p@r.example\n    unsigned: true\n".into(), "charts.rules[0].prefix", "plain prefix"),
        ("rules:\n  - prefix: oci://r.example/../x\n    unsigned: true\n".into(), "charts.rules[0].prefix", "'..'"),
        ("rules:\n  - prefix: oci://r.example\n".into(), "charts.rules[0]", "exactly one"),
        (
            "rules:\n  - prefix: oci://r.example\n    unsigned: true\n  - prefix: oci://r.example/\n    unsigned: true\n".into(),
            "charts.rules[1].prefix",
            "one rule per prefix",
        ),
        (
            "rules:\n  - prefix: oci://r.example\n    cosignIdentities:\n      - issuer: https://token.actions.githubusercontent.com\n        subject: ^https://github.com/org/.*$\n".into(),
            "charts.rules[0].cosignIdentities[0]",
            "anchored",
        ),
        (
            "rules:\n  - prefix: oci://r.example\n    cosignIdentities:\n      - issuer: ^(a$\n        subject: ^x$\n".into(),
            "charts.rules[0].cosignIdentities[0]",
            "not a regular expression",
        ),
        (
            "rules:\n  - prefix: oci://r.example\n    cosignKeys:\n      - name: Release\n        key: x\n".into(),
            "charts.rules[0].cosignKeys[0].name",
            "lower-case",
        ),
        (
            "rules:\n  - prefix: oci://r.example\n    cosignKeys:\n      - name: a\n        key: not a key\n".into(),
            "charts.rules[0].cosignKeys[0].key",
            "PEM",
        ),
        (two_keys, "charts.rules[0].cosignKeys[1].key", "listed once"),
    ];
    for (yaml, field, reason) in cases {
        let (f, why) = parse(&yaml).unwrap_err();
        assert_eq!(f, field, "{yaml}: {why}");
        assert!(why.contains(reason), "{yaml}: {why}");
    }
    let (_, why) = parse("notation: {}\n").unwrap_err();
    assert!(why.contains("unknown field"), "{why}");
}

#[test]
fn the_expected_signer_names_keys_by_fingerprint_and_identities_by_pattern() {
    let yaml = format!(
        "rules:\n  - prefix: oci://r.example\n    cosignKeys:\n      - name: a\n        key: |\n{}      - name: b\n        key: |\n{}",
        KEY_A
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>(),
        KEY_B
            .lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    );
    let trust = parse(&yaml).unwrap();
    let signer = trust.rules[0].expected_signer();
    assert!(
        signer.starts_with("one of the cosign keys a (SHA256:"),
        "{signer}"
    );
    assert!(signer.contains(", b (SHA256:"), "{signer}");
    let one = parse(&format!("rules:\n{}", keys_rule("oci://r.example"))).unwrap();
    assert!(
        one.rules[0]
            .expected_signer()
            .starts_with("cosign key release (SHA256:")
    );
}

#[test]
fn the_cell_says_whether_a_new_trust_differs() {
    let cell = ChartTrustCell::default();
    assert!(!cell.set(ChartTrust::default()));
    let trust = parse(&format!("rules:\n{}", keys_rule("oci://r.example"))).unwrap();
    assert!(cell.set(trust.clone()));
    assert!(!cell.set(trust.clone()));
    assert_eq!(*cell.get(), trust);
}

#[test]
fn an_oci_url_that_names_the_chart_is_the_charts_own_reference() {
    assert_eq!(
        chart_reference(&chart("oci", "oci://Reg.example/charts/wiki", "wiki")),
        "oci://reg.example/charts/wiki"
    );
    assert_eq!(
        chart_reference(&chart("oci", "oci://reg.example/charts/", "wiki")),
        "oci://reg.example/charts/wiki"
    );
    assert_eq!(
        chart_reference(&chart("helm", "https://charts.example/wiki", "wiki")),
        "https://charts.example/wiki/wiki"
    );
}

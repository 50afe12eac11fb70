//! The API server's own grammar for names, labels and annotations (`k8s.io/apimachinery`'s
//! `validation.IsDNS1123Subdomain`, `IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`, and
//! `ValidateObjectMeta` for custom resources), and the reserved namespaces: one implementation, used by
//! `render`, `hydrate`, the webhook and the reconcilers ([`super::check_api_server`]).
//!
//! The regular expressions are the `*_RE` macros so that the CRD's CEL rules (`crate::api`) are built from
//! the same text with `concat!`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric (at most 63).
#[macro_export]
macro_rules! dns1123_label_re {
    () => {
        "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    };
}

/// A DNS-1123 subdomain: DNS-1123 labels joined by '.' (at most 253).
#[macro_export]
macro_rules! dns1123_subdomain_re {
    () => {
        concat!(
            $crate::dns1123_label_re!(),
            "([.]",
            $crate::dns1123_label_re!(),
            ")*"
        )
    };
}

/// The name part of a qualified name, and a non-empty label value (at most 63).
macro_rules! qualified_name_part_re {
    () => {
        "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
    };
}

fn anchored(re: &str) -> Regex {
    Regex::new(&format!("^(?:{re})$")).expect("static regex")
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| anchored(dns1123_label_re!()));
static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| anchored(dns1123_subdomain_re!()));
static NAME_PART: LazyLock<Regex> = LazyLock::new(|| anchored(qualified_name_part_re!()));

/// `IsDNS1123Label`.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && LABEL.is_match(s)
}

/// `IsDNS1123Subdomain`.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && SUBDOMAIN.is_match(s)
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS-1123 subdomain, the name at most 63 characters of
/// alphanumerics, '-', '_', '.', starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns1123_subdomain(p))
        && name.len() <= 63
        && NAME_PART.is_match(name)
}

/// `IsValidLabelValue`: empty, or at most 63 characters like a qualified name's name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || (s.len() <= 63 && NAME_PART.is_match(s))
}

/// The API server's limit on the total size of an object's annotations (keys and values, bytes).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const SUBDOMAIN_WORDS: &str = "must be a lowercase RFC 1123 subdomain: lower-case letters, digits, '-' and '.', \
     starting and ending with a letter or digit, at most 253 characters";
const LABEL_WORDS: &str = "must be a lowercase RFC 1123 label: lower-case letters, digits and '-', starting \
     and ending with a letter or digit, at most 63 characters";
const KEY_WORDS: &str = "must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 \
     letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
const VALUE_WORDS: &str = "must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending \
     with a letter or digit";

/// What the API server's `ValidateObjectMeta` refuses in an intent's metadata: `(field, reason)` pairs.
pub fn check_object_meta(object: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let meta = &object["metadata"];
    if let Some(name) = meta["name"].as_str()
        && !is_dns1123_subdomain(name)
    {
        out.push((
            "metadata.name".into(),
            format!("{name:?} {SUBDOMAIN_WORDS}"),
        ));
    }
    if let Some(ns) = meta["namespace"].as_str()
        && !is_dns1123_label(ns)
    {
        out.push(("metadata.namespace".into(), format!("{ns:?} {LABEL_WORDS}")));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                out.push(("metadata.labels".into(), format!("key {k:?} {KEY_WORDS}")));
            }
            match v.as_str() {
                Some(v) if is_label_value(v) => {}
                _ => out.push((
                    "metadata.labels".into(),
                    format!("value of {k:?} {VALUE_WORDS}"),
                )),
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut size = 0;
        for (k, v) in annotations {
            size += k.len() + v.as_str().map_or(0, str::len);
            if !is_qualified_name(&k.to_ascii_lowercase()) {
                out.push((
                    "metadata.annotations".into(),
                    format!("key {k:?} {KEY_WORDS}"),
                ));
            }
        }
        if size > MAX_ANNOTATIONS_BYTES {
            out.push((
                "metadata.annotations".into(),
                format!("{size} bytes, over the API server's {MAX_ANNOTATIONS_BYTES}-byte limit"),
            ));
        }
    }
    out
}

/// `ValidateEnvVarName` as of Kubernetes 1.34 (relaxed names): at least one printable ASCII character, no '='.
pub fn is_env_var_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// Namespaces intents may never target, whatever their labels: the cluster's own (`kube-*`), Flux's and the
/// operator's. The reason, or `None` for an ordinary namespace.
pub fn reserved_namespace(ns: &str) -> Option<String> {
    const RESERVED: [&str; 2] = ["flux-system", "vworkspace-system"];
    (ns.starts_with("kube-") || RESERVED.contains(&ns)).then(|| {
        format!(
            "NamespaceReserved: {ns} is reserved for the cluster, Flux or the operator (kube-*, flux-system, \
             vworkspace-system); intents go in tenant namespaces"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_api_servers_grammar() {
        for ok in ["a", "next-cloud", "a.b-c", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok) || ok.contains('.'), "{ok}");
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "Next_Cloud",
            "-a",
            "a-",
            "a..b",
            "a\n",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
        assert!(!is_dns1123_subdomain(&format!("{}.a", "a".repeat(252))));
        for ok in ["app.vworkspace.io/cluster-id", "a", "A_b.c", "x.io/Y"] {
            assert!(is_qualified_name(ok), "{ok}");
        }
        for bad in ["", "/a", "a/", "A.io/x", "a/b/c", "-a", &"a".repeat(64)] {
            assert!(!is_qualified_name(bad), "{bad:?}");
        }
        assert!(is_label_value("") && is_label_value("Eu_1.x") && !is_label_value(&"a".repeat(64)));
        assert!(
            is_env_var_name("DB-HOST.x") && !is_env_var_name("A=B") && !is_env_var_name("A\nB")
        );
        assert!(
            reserved_namespace("kube-system").is_some() && reserved_namespace("team-a").is_none()
        );
        let problems = check_object_meta(&json!({"metadata": {
            "name": "Next_Cloud", "namespace": "n",
            "labels": {"l": "x".repeat(64)}, "annotations": {"ok.io/A": "v"}}}));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "metadata.labels"]);
    }
}

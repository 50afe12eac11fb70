//! The inline-secret rule set (docs/api.md, "Validation rules"; decision 15): what counts as secret material in inline values, and the same
//! patterns for redacting logs, events, notes and posted messages.

use serde_json::Value;

/// What inline values may hold where a secret would go.
pub const EXTERNAL_SECRET_PLACEHOLDER: &str = "<set via externalSecret>";
/// What redaction writes in place of secret material.
pub const REDACTED: &str = "[REDACTED]";

/// A key as the rule reads it: Unicode compatibility forms folded (NFKC: full-width letters, ligatures),
/// invisible characters (zero-width, soft hyphen, bidi controls, …) dropped, Cyrillic and Greek letters that
/// look like Latin ones mapped to them, lower case, surrounding white space trimmed. `ｐａｓｓｗｏｒｄ `,
/// `pаssword` (Cyrillic a) and `DB_PASSWORD\u{200b}` all read `password`/`db_password`.
pub fn normalize_key(key: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = key
        .nfkc()
        .filter(|&c| !is_invisible(c))
        .flat_map(char::to_lowercase)
        .map(latin_look_alike)
        .collect();
    folded.trim().to_string()
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}'
    ) || (c.is_control() && !c.is_whitespace())
}

/// Lower-case Cyrillic and Greek letters commonly used as look-alikes of Latin ones.
fn latin_look_alike(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        c => c,
    }
}

/// Whether a key names secret material: read through [`normalize_key`], it ends with `password` or
/// `secret`, or is `accessKey`, `secretKey`, `apiKey` or `token`.
pub fn is_secret_key(key: &str) -> bool {
    let lower = normalize_key(key);
    lower.ends_with("password")
        || lower.ends_with("secret")
        || matches!(
            lower.as_str(),
            "accesskey" | "secretkey" | "apikey" | "token"
        )
}

/// Whether a string holds a PEM private key (`-----BEGIN … PRIVATE KEY-----`).
pub fn contains_private_key(text: &str) -> bool {
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        match after.find("-----") {
            Some(end) if after[..end].ends_with("PRIVATE KEY") && !after[..end].contains('\n') => {
                return true;
            }
            _ => rest = after,
        }
    }
    false
}

/// Whether a leaf value is allowed under a secret-named key: empty, or the external-secret placeholder.
fn is_allowed_placeholder(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == EXTERNAL_SECRET_PLACEHOLDER,
        _ => false,
    }
}

/// Every field path (relative to `base`) holding inline secret material, with the rule it broke.
pub fn find_inline_secrets(value: &Value, base: &str) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    walk(value, base, None, &mut out);
    out
}

/// An environment-style pair, `{name: DB_PASSWORD, value: …}` (or `key:` for `name:`), whose name names
/// secret material: the `value` then holds it, and is judged as if it were under that name.
fn pair_name(map: &serde_json::Map<String, Value>) -> Option<&str> {
    let name = ["name", "key"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))?;
    (map.contains_key("value") && is_secret_key(name)).then_some(name)
}

fn walk(value: &Value, path: &str, key: Option<&str>, out: &mut Vec<(String, &'static str)>) {
    match value {
        Value::Object(map) => {
            let pair = pair_name(map);
            for (k, v) in map {
                let key = if k == "value" {
                    pair.or(Some(k))
                } else {
                    Some(k.as_str())
                };
                walk(v, &format!("{path}.{k}"), key, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), key, out);
            }
        }
        leaf => {
            if let Value::String(s) = leaf
                && contains_private_key(s)
            {
                out.push((path.to_string(), "value holds a PEM private key"));
            } else if key.is_some_and(is_secret_key) && !is_allowed_placeholder(leaf) {
                out.push((
                    path.to_string(),
                    "key names secret material; reference a Secret (values.secretRef) or use \"<set via externalSecret>\"",
                ));
            }
        }
    }
}

/// Replace secret material in a JSON value (under secret-named keys, or PEM private keys) with `[REDACTED]`.
pub fn redact_value(value: &mut Value) {
    fn go(value: &mut Value, key: Option<&str>) {
        match value {
            Value::Object(map) => {
                let pair = pair_name(map).map(str::to_string);
                for (k, v) in map.iter_mut() {
                    let key = if k == "value" {
                        pair.as_deref().or(Some(k))
                    } else {
                        Some(k.as_str())
                    };
                    go(v, key);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| go(v, key)),
            leaf => {
                let secret = match &*leaf {
                    Value::String(s) => contains_private_key(s),
                    _ => false,
                } || (key.is_some_and(is_secret_key) && !is_allowed_placeholder(leaf));
                if secret {
                    *leaf = Value::String(REDACTED.into());
                }
            }
        }
    }
    go(value, None);
}

/// Redact free text: PEM private key blocks, and `key: value` / `key=value` pairs whose key names secret
/// material, become `[REDACTED]`.
pub fn redact_text(text: &str) -> String {
    use std::sync::LazyLock;
    static PEM: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
        )
        .expect("static regex")
    });
    static PAIR: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)\b([A-Za-z0-9_.-]*(?:password|secret)|accesskey|secretkey|apikey|token)("?\s*[:=]\s*"?)([^\s",}]+)"#,
        )
        .expect("static regex")
    });
    let text = PEM.replace_all(text, REDACTED);
    PAIR.replace_all(&text, format!("${{1}}${{2}}{REDACTED}"))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_follow_the_rule_set() {
        for k in [
            "password",
            "adminPassword",
            "DB_PASSWORD",
            "clientSecret",
            "secret",
            "accessKey",
            "SecretKey",
            "apiKey",
            "token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "passwordKey",
            "secretName",
            "existingSecretKey",
            "tokenTTL",
            "host",
            "tokens",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn keys_are_read_through_case_width_look_alikes_and_white_space() {
        for k in [
            "password ",
            " DB_PASSWORD\t",
            "ｐａｓｓｗｏｒｄ",
            "pаssword",
            "PАSSWORD",
            "db_pass\u{200b}word",
            "ＡＰＩＫＥＹ",
            "ѕecret",
            "tοken",
        ] {
            assert!(is_secret_key(k), "{k:?}");
        }
        assert!(!is_secret_key("passwordKey ") && !is_secret_key("tokens"));
    }

    #[test]
    fn env_style_pairs_at_any_depth_are_judged_by_their_name() {
        let v = json!({
            "env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "HOST", "value": "db"},
                    {"name": "API_TOKEN ", "value": ""}],
            "deep": {"x": [{"extraEnv": [{"key": "smtpPassword", "value": "p"}]}]},
            "ref": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "ph": [{"name": "adminSecret", "value": "<set via externalSecret>"}]
        });
        let found: Vec<String> = find_inline_secrets(&v, "v")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(found, ["v.env[0].value", "v.deep.x[0].extraEnv[0].value"]);
        let mut r = v.clone();
        redact_value(&mut r);
        assert_eq!(r["env"][0]["value"], "[REDACTED]");
        assert_eq!(r["env"][1]["value"], "db");
    }

    #[test]
    fn finds_inline_secrets_but_allows_placeholders() {
        let v = json!({
            "db": {"password": "hunter2", "user": "app"},
            "smtp": {"password": ""},
            "s3": {"accessKey": "<set via externalSecret>", "secretKey": "abc"},
            "tls": {"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"},
            "list": [{"token": "t"}],
            "cert": "-----BEGIN CERTIFICATE-----"
        });
        let found: Vec<String> = find_inline_secrets(&v, "spec.values.inline")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            found,
            vec![
                "spec.values.inline.db.password",
                "spec.values.inline.s3.secretKey",
                "spec.values.inline.tls.key",
                "spec.values.inline.list[0].token",
            ]
        );
    }

    #[test]
    fn redacts_values_and_text() {
        let mut v = json!({"a": {"password": "x", "user": "u"}, "b": ["-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"]});
        redact_value(&mut v);
        assert_eq!(
            v,
            json!({"a": {"password": "[REDACTED]", "user": "u"}, "b": ["[REDACTED]"]})
        );
        assert_eq!(
            redact_text("login failed: password=hunter2 token: abc user=bob"),
            "login failed: password=[REDACTED] token: [REDACTED] user=bob"
        );
        assert_eq!(
            redact_text(
                "key -----BEGIN EC PRIVATE KEY-----\nAAA\n-----END EC PRIVATE KEY----- end"
            ),
            "key [REDACTED] end"
        );
    }
}

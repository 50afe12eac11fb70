//! A validator for Kubernetes structural OpenAPI v3 schemas (the `openAPIV3Schema` of a CRD version).
//!
//! Used to check intents against our own CRDs before anything else (so a typo is a clear problem rather than
//! a field the API server silently prunes), and in tests to check every rendered object against the upstream
//! Flux, Velero, VolSync, CSI snapshot and Argo CRDs. It is stricter than the API server in one way: a field the
//! schema does not know is an error, not pruned.
//!
//! Supported: `type`, `nullable`, `enum`, `properties`, `required`, `additionalProperties`, `items`,
//! `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`, `minItems`/`maxItems`, `minProperties`/`maxProperties`,
//! `allOf`/`anyOf`/`oneOf`/`not`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`. `format` and CEL rules (`x-kubernetes-validations`) are not checked.

use serde_json::Value;

/// One schema violation: the field path (`spec.chart.sourceType`, `spec.items[0]`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// Validate a whole object (with apiVersion, kind and metadata) against a CRD version's `openAPIV3Schema`.
pub fn validate_object(object: &Value, schema: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    check(object, schema, "", true, &mut out);
    out
}

/// Validate a value against a schema; `path` prefixes every field in the result.
pub fn validate_value(value: &Value, schema: &Value, path: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    check(value, schema, path, false, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn push(out: &mut Vec<Violation>, path: &str, reason: impl Into<String>) {
    out.push(Violation {
        field: path.to_string(),
        reason: reason.into(),
    });
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(v: &Value, s: &Value, path: &str, root: bool, out: &mut Vec<Violation>) {
    let Some(s) = s.as_object() else { return };
    let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
    if v.is_null() && flag("nullable") {
        return;
    }
    if flag("x-kubernetes-int-or-string") {
        if !(v.is_string() || type_name(v) == "integer") {
            push(
                out,
                path,
                format!("must be an integer or a string, not {}", type_name(v)),
            );
        }
        return;
    }
    for sub in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(v, sub, path, false, out);
    }
    for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let passing = alts
                .iter()
                .filter(|alt| validate_value(v, alt, path).is_empty())
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                push(out, path, format!("does not match {key} of the schema"));
            }
        }
    }
    if let Some(not) = s.get("not")
        && validate_value(v, not, path).is_empty()
    {
        push(out, path, "matches a schema it must not match");
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        push(out, path, format!("{v} is not one of {}", list.join(", ")));
        return;
    }
    let ty = s.get("type").and_then(Value::as_str).or_else(|| {
        (s.contains_key("properties") || s.contains_key("additionalProperties")).then_some("object")
    });
    match ty {
        Some("string") => match v.as_str() {
            Some(text) => check_string(text, s, path, out),
            None => push(out, path, format!("must be a string, not {}", type_name(v))),
        },
        Some("integer") => {
            if type_name(v) != "integer" {
                push(
                    out,
                    path,
                    format!("must be an integer, not {}", type_name(v)),
                );
            } else {
                check_number(v, s, path, out);
            }
        }
        Some("number") => {
            if v.is_number() {
                check_number(v, s, path, out);
            } else {
                push(out, path, format!("must be a number, not {}", type_name(v)));
            }
        }
        Some("boolean") if !v.is_boolean() => {
            push(
                out,
                path,
                format!("must be a boolean, not {}", type_name(v)),
            );
        }
        Some("array") => match v.as_array() {
            Some(items) => check_array(items, s, path, out),
            None => push(out, path, format!("must be an array, not {}", type_name(v))),
        },
        Some("object") => match v.as_object() {
            Some(map) => check_object(map, s, path, root, out),
            None => push(
                out,
                path,
                format!("must be an object, not {}", type_name(v)),
            ),
        },
        _ => {}
    }
}

fn check_string(
    text: &str,
    s: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        push(out, path, format!("must be at least {min} characters long"));
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        push(out, path, format!("must be at most {max} characters long"));
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                push(
                    out,
                    path,
                    format!("{text:?} does not match the pattern {pattern}"),
                );
            }
            Ok(_) => {}
            Err(_) => {} // a pattern in a syntax the regex crate lacks is not checked
        }
    }
}

fn check_number(
    v: &Value,
    s: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let Some(n) = v.as_f64() else { return };
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = s
            .get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if n < min || (exclusive && n == min) {
            push(
                out,
                path,
                format!("must be {} {min}", if exclusive { ">" } else { ">=" }),
            );
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = s
            .get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if n > max || (exclusive && n == max) {
            push(
                out,
                path,
                format!("must be {} {max}", if exclusive { "<" } else { "<=" }),
            );
        }
    }
}

fn check_array(
    items: &[Value],
    s: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        push(out, path, format!("must have at least {min} items"));
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        push(out, path, format!("must have at most {max} items"));
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item, item_schema, &format!("{path}[{i}]"), false, out);
        }
    }
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    s: &serde_json::Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<Violation>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let embedded = root
        || s.get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    for req in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = req.as_str()
            && !map.contains_key(key)
        {
            push(out, &join(path, key), "required");
        }
    }
    if let Some(n) = s.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < n
    {
        push(out, path, format!("must have at least {n} fields"));
    }
    if let Some(n) = s.get("maxProperties").and_then(Value::as_u64)
        && (map.len() as u64) > n
    {
        push(out, path, format!("must have at most {n} fields"));
    }
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (key, value) in map {
        let field = join(path, key);
        // An object's own apiVersion/kind/metadata follow Kubernetes' rules, whatever the CRD says of them.
        if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            if key == "metadata" {
                check_metadata(value, &field, out);
            } else if !value.is_string() {
                push(out, &field, "must be a string");
            }
            continue;
        }
        if let Some(prop) = props.and_then(|p| p.get(key)) {
            check(value, prop, &field, false, out);
            continue;
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(true)) => {}
            Some(extra @ Value::Object(_)) => check(value, extra, &field, false, out),
            _ if preserve => {}
            _ => push(out, &field, "unknown field (not in the schema)"),
        }
    }
}

fn check_metadata(v: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(map) = v.as_object() else {
        push(out, path, "must be an object");
        return;
    };
    for (key, value) in map {
        let field = join(path, key);
        match key.as_str() {
            "name" | "namespace" | "generateName" | "uid" | "resourceVersion"
            | "creationTimestamp" | "deletionTimestamp"
                if !value.is_string() && !value.is_null() =>
            {
                push(out, &field, "must be a string");
            }
            "labels" | "annotations" => match value.as_object() {
                Some(m) => {
                    for (k, v) in m {
                        if !v.is_string() {
                            push(out, &join(&field, k), "must be a string");
                        }
                    }
                }
                None => push(out, &field, "must be a string map"),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "list": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "map": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }
            }
        })
    }

    #[test]
    fn accepts_a_valid_object() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"name": "n", "kind": "a", "port": "http", "list": [1, 2], "free": {"any": {"thing": 1}}, "map": {"k": "v"}}});
        assert_eq!(validate_object(&obj, &schema()), vec![]);
    }

    #[test]
    fn names_every_violation_with_its_field() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"kind": "c", "port": true, "list": [1, -1, "x"], "map": {"k": 1}, "typo": 1}});
        let got: Vec<String> = validate_object(&obj, &schema())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec![
                "spec.name: required",
                "spec.kind: \"c\" is not one of \"a\", \"b\"",
                "spec.port: must be an integer or a string, not boolean",
                "spec.list[1]: must be >= 0",
                "spec.list[2]: must be an integer, not string",
                "spec.map.k: must be a string, not integer",
                "spec.typo: unknown field (not in the schema)",
            ]
        );
    }
}

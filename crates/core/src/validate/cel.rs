//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated client-side as the API server evaluates them:
//! `render`, `verify` and the reconcilers run the very rule texts the API server runs (one rule, two
//! evaluators), with the Kubernetes CEL library (kube-cel's functions on the `cel` crate).
//!
//! Semantics kept from the API server: `self` is the value at the rule's node (with the schema's defaults
//! applied, declared property names that are CEL reserved words escaped as `__word__`, map keys as they are);
//! transition rules (those reading `oldSelf`) run only on an update where the old value exists; `fieldPath`,
//! `message`, `messageExpression` and the default message `failed rule: <rule>`.
//!
//! The rules are compiled once per schema; regular expressions once per process (the `cel` crate's own
//! `matches` compiles its pattern on every call, which made a chart URL check cost about 100 µs).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use kube_cel::KubeCelExt;
use kube_cel::cel::extractors::This;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, ExecutionError, FunctionContext, Program, Value as CelValue};
use serde_json::Value;

/// The base context: the Kubernetes CEL library, with a `matches` that caches its compiled patterns.
pub(crate) static BASE: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut ctx = Context::default().with_all();
    ctx.add_function("matches", cached_matches);
    ctx
});

fn cached_matches(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    pattern: Arc<String>,
) -> Result<bool, ExecutionError> {
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> =
        LazyLock::new(Default::default);
    let cached = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(pattern.as_str())
        .cloned();
    let re = match cached {
        Some(re) => re,
        None => {
            let re = Arc::new(
                regex::Regex::new(&pattern)
                    .map_err(|e| ftx.error(format!("'{pattern}' not a valid regex:\n{e}")))?,
            );
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            // Only rule texts reach here; the bound keeps a hostile template set from growing it forever.
            if cache.len() >= 256 {
                cache.clear();
            }
            cache.insert(pattern.to_string(), re.clone());
            re
        }
    };
    Ok(re.is_match(&this))
}

enum Message {
    Static(String),
    /// The expression, and the message to fall back on when it does not evaluate to a one-line string.
    Expression(Program, String),
}

struct Rule {
    program: Program,
    message: Message,
    field_path: Option<String>,
    transition: bool,
}

/// The rules at one node of the schema: its property path from the root, its schema, its rules.
struct Node {
    path: Vec<String>,
    schema: Value,
    rules: Vec<Rule>,
}

/// Every CEL rule of one CRD version's schema, compiled.
pub struct CrdRules {
    nodes: Vec<Node>,
}

/// A rule that did not hold: the field (`spec.chart.url`) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl CrdRules {
    /// Compile the rules of an `openAPIV3Schema`. A rule that does not compile is a bug in our types: it panics
    /// (the CRD tests compile every rule).
    pub fn compile(schema: &Value) -> Self {
        let mut nodes = Vec::new();
        collect(schema, &mut Vec::new(), &mut nodes);
        Self { nodes }
    }

    /// The rules that do not hold for `object` (and, on an update, `old`), in schema order.
    pub fn check(&self, object: &Value, old: Option<&Value>) -> Vec<Violation> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let Some(value) = navigate(object, &node.path) else {
                continue;
            };
            let old_value = old.and_then(|o| navigate(o, &node.path));
            let mut ctx = BASE.new_inner_scope();
            ctx.add_variable_from_value("self", typed(value, &node.schema));
            if let Some(o) = old_value {
                ctx.add_variable_from_value("oldSelf", typed(o, &node.schema));
            }
            for rule in &node.rules {
                if rule.transition && old_value.is_none() {
                    continue;
                }
                let failed = match rule.program.execute(&ctx) {
                    Ok(CelValue::Bool(true)) => continue,
                    Ok(CelValue::Bool(false)) => None,
                    Ok(other) => Some(format!("rule did not evaluate to a boolean: {other:?}")),
                    Err(e) => Some(format!("rule could not be evaluated: {e}")),
                };
                let message = failed.unwrap_or_else(|| match &rule.message {
                    Message::Static(m) => m.clone(),
                    Message::Expression(p, fallback) => match p.execute(&ctx) {
                        Ok(CelValue::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                            s.to_string()
                        }
                        _ => fallback.clone(),
                    },
                });
                let mut field = node.path.join(".");
                if let Some(fp) = &rule.field_path {
                    let fp = fp.trim_start_matches('.');
                    if !fp.is_empty() {
                        if !field.is_empty() {
                            field.push('.');
                        }
                        field.push_str(fp);
                    }
                }
                out.push(Violation { field, message });
            }
        }
        out
    }
}

fn collect(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Node>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let rules = rules
            .iter()
            .map(|r| {
                let text = r["rule"].as_str().expect("a rule has a rule");
                let program = Program::compile(text)
                    .unwrap_or_else(|e| panic!("CEL rule {text:?} at {path:?}: {e}"));
                let fallback = r["message"]
                    .as_str()
                    .map_or_else(|| format!("failed rule: {text}"), str::to_string);
                let message = match r["messageExpression"].as_str() {
                    Some(m) => Message::Expression(
                        Program::compile(m)
                            .unwrap_or_else(|e| panic!("CEL message {m:?} at {path:?}: {e}")),
                        fallback,
                    ),
                    None => Message::Static(fallback),
                };
                Rule {
                    program,
                    message,
                    field_path: r["fieldPath"].as_str().map(str::to_string),
                    transition: text.contains("oldSelf"),
                }
            })
            .collect();
        out.push(Node {
            path: path.clone(),
            schema: schema.clone(),
            rules,
        });
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            path.push(name.clone());
            collect(child, path, out);
            path.pop();
        }
    }
}

fn navigate<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// CEL's reserved words: a declared property named like one is `__word__` in a CRD rule.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// JSON to CEL as the API server presents a value to a CRD rule: the schema's defaults applied, declared
/// property names escaped, map keys (additionalProperties, preserve-unknown-fields) as they are.
fn typed(value: &Value, schema: &Value) -> CelValue {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let key = |k: &str| {
                if props.is_some_and(|p| p.contains_key(k)) && RESERVED.contains(&k) {
                    format!("__{k}__")
                } else {
                    k.to_string()
                }
            };
            let mut out: HashMap<Key, CelValue> = map
                .iter()
                .map(|(k, v)| {
                    let child = props.and_then(|p| p.get(k)).or(additional);
                    let cv = child.map_or_else(|| plain(v), |s| typed(v, s));
                    (Key::String(Arc::new(key(k))), cv)
                })
                .collect();
            for (k, s) in props.into_iter().flatten() {
                if !map.contains_key(k)
                    && let Some(d) = s.get("default")
                {
                    out.insert(Key::String(Arc::new(key(k))), typed(d, s));
                }
            }
            CelValue::Map(Map { map: Arc::new(out) })
        }
        Value::Array(items) => {
            let item = schema.get("items");
            CelValue::List(Arc::new(
                items
                    .iter()
                    .map(|v| item.map_or_else(|| plain(v), |s| typed(v, s)))
                    .collect(),
            ))
        }
        other => plain(other),
    }
}

/// JSON to CEL with keys as they are (maps, and objects as a ValidatingAdmissionPolicy sees them).
pub(crate) fn plain(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(CelValue::Int)
            .or_else(|| n.as_u64().map(CelValue::UInt))
            .unwrap_or_else(|| CelValue::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(plain).collect())),
        Value::Object(map) => {
            let out: HashMap<Key, CelValue> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), plain(v)))
                .collect();
            CelValue::Map(Map { map: Arc::new(out) })
        }
    }
}

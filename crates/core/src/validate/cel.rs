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

use super::cel_access::Access;

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
    /// What the rules (and message expressions) read of `self` and `oldSelf`: only that is converted.
    reads_self: Option<Access>,
    reads_old: Option<Access>,
    /// Verdicts already reached, by the node's inputs.
    memo: super::memo::Memo<Vec<Violation>>,
}

/// How many verdicts a rule node keeps (its distinct inputs seen most recently, at most).
const NODE_MEMO: usize = 64;

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
        self.evaluate(object, old, true)
    }

    /// `check`, with the values cut to what the rules read (`cut`, and then a node's verdict is kept by its
    /// inputs: [`super::memo`]) or whole (the tests compare both).
    fn evaluate(&self, object: &Value, old: Option<&Value>, cut: bool) -> Vec<Violation> {
        let whole = Access::Whole;
        let mut out = Vec::new();
        for node in &self.nodes {
            let Some(value) = navigate(object, &node.path) else {
                continue;
            };
            let old_value = old.and_then(|o| navigate(o, &node.path));
            let (reads_self, reads_old) = if cut {
                (node.reads_self.as_ref(), node.reads_old.as_ref())
            } else {
                (Some(&whole), Some(&whole))
            };
            let this = reads_self.map(|a| a.read(value));
            // An old value that is there but not read still decides whether the transition rules run.
            let before = old_value.map(|o| reads_old.map(|a| a.read(o)));
            let inputs = Inputs {
                this: this.as_deref(),
                old: before.as_ref().map(|b| b.as_deref()),
            };
            if cut {
                let key =
                    super::memo::key(&[inputs.this, inputs.old.map(|o| o.unwrap_or(&Value::Null))]);
                out.extend(node.memo.get_or(key, || node.check(&inputs)));
            } else {
                out.extend(node.check(&inputs));
            }
        }
        out
    }
}

/// What a node's rules are given: `self` and, on an update where the old value exists, `oldSelf` (`None`
/// inside when the rules do not read it).
struct Inputs<'a> {
    this: Option<&'a Value>,
    old: Option<Option<&'a Value>>,
}

impl Node {
    /// The node's rules that do not hold for `inputs`.
    fn check(&self, inputs: &Inputs) -> Vec<Violation> {
        let mut ctx = BASE.new_inner_scope();
        if let Some(this) = inputs.this {
            ctx.add_variable_from_value("self", typed(this, &self.schema));
        }
        if let Some(Some(old)) = inputs.old {
            ctx.add_variable_from_value("oldSelf", typed(old, &self.schema));
        }
        let mut out = Vec::new();
        for rule in &self.rules {
            if rule.transition && inputs.old.is_none() {
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
            let mut field = self.path.join(".");
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
            .collect::<Vec<Rule>>();
        let programs = || {
            rules.iter().flat_map(|r| {
                std::iter::once(&r.program).chain(match &r.message {
                    Message::Expression(p, _) => Some(p),
                    Message::Static(_) => None,
                })
            })
        };
        out.push(Node {
            path: path.clone(),
            schema: schema.clone(),
            reads_self: Access::of("self", programs()),
            reads_old: Access::of("oldSelf", programs()),
            rules,
            memo: super::memo::Memo::new(NODE_MEMO),
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

/// Every YAML document under examples/ (valid and invalid intents) and fuzz/seeds/.
#[cfg(test)]
pub(crate) fn example_documents() -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("examples"), root.join("fuzz/seeds")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|text| serde_saphyr::from_multiple::<Value>(&text).ok())
        .flatten()
        .filter(|d| d.is_object())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cutting the values to what the rules read, and keeping verdicts by them, changes no verdict and no
    /// message: every example intent, as a create and as updates (unchanged, and with every string field of its
    /// spec changed).
    #[test]
    fn rules_see_the_same_with_values_cut_to_what_they_read() {
        let docs = example_documents();
        assert!(docs.len() > 20, "{}", docs.len());
        let mut compared = 0;
        for doc in &docs {
            let rules = match doc["kind"].as_str() {
                Some("ApplicationInstance") => &*super::super::APP_CEL,
                Some("Operation") => &*super::super::OP_CEL,
                _ => continue,
            };
            let mut changed = doc.clone();
            if let Some(spec) = changed.get_mut("spec") {
                touch_strings(spec);
            }
            for old in [None, Some(doc), Some(&changed)] {
                for new in [doc, &changed] {
                    let whole = rules.evaluate(new, old, false);
                    // Cut, then cut again (the second from the nodes' memos).
                    assert_eq!(rules.evaluate(new, old, true), whole, "{new}");
                    assert_eq!(rules.evaluate(new, old, true), whole, "{new}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 60, "{compared}");
    }

    fn touch_strings(v: &mut Value) {
        match v {
            Value::String(s) => s.push('x'),
            Value::Array(items) => items.iter_mut().for_each(touch_strings),
            Value::Object(map) => map.values_mut().for_each(touch_strings),
            _ => {}
        }
    }
}

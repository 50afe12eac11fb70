//! What of a variable a set of CEL expressions can read, from their syntax trees: the values handed to CEL are
//! cut down to that before they are converted, so a rule that only asks `has(self.values)` does not make the
//! whole of a tenant's Helm values be converted (twice: to CEL values, then to the interpreter's own), once per
//! rule node. Converting was most of what checking an intent cost, and grew with the size of its values.
//!
//! The analysis over-approximates, so cutting is never seen by an expression: a variable used other than as the
//! root of a chain of field selections (passed to a function, compared whole, iterated by a macro, indexed) is
//! read whole from that point (an index by a string literal, `x['f']`, is a selection); `has(x.f)` reads only
//! whether `f` is there (its value is cut to an empty one of the same JSON type); a field no expression names
//! is left out. A field selection whose operand is not such a chain is walked as any other expression.

use std::collections::BTreeMap;

use kube_cel::cel::IdedExpr;
use kube_cel::cel::Program;
use kube_cel::cel::common::ast::{EntryExpr, Expr, LiteralValue, operators};
use serde_json::Value;

/// What is read of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// Whether it is there (`has()`), not what it is.
    Presence,
    /// These fields, each as far as it is read.
    Fields(BTreeMap<String, Access>),
    /// All of it.
    Whole,
}

impl Access {
    /// What `programs` read of the variable `var`; `None` when none of them names it.
    pub(crate) fn of<'a>(
        var: &str,
        programs: impl IntoIterator<Item = &'a Program>,
    ) -> Option<Access> {
        let mut acc = None;
        for p in programs {
            walk(p.expression(), var, &mut acc);
        }
        acc
    }

    fn merge(&mut self, other: Access) {
        match (&mut *self, other) {
            (Access::Whole, _) => {}
            (_, Access::Whole) => *self = Access::Whole,
            (_, Access::Presence) => {}
            (Access::Presence, fields) => *self = fields,
            (Access::Fields(mine), Access::Fields(theirs)) => {
                for (k, v) in theirs {
                    match mine.get_mut(&k) {
                        Some(m) => m.merge(v),
                        None => {
                            mine.insert(k, v);
                        }
                    }
                }
            }
        }
    }

    /// `value` as far as it is read, borrowed when all of it is.
    pub(crate) fn read<'v>(&self, value: &'v Value) -> std::borrow::Cow<'v, Value> {
        match self {
            Access::Whole => std::borrow::Cow::Borrowed(value),
            cut => std::borrow::Cow::Owned(cut.cut(value)),
        }
    }

    /// `value` as far as it is read: what is not read is left out (fields) or emptied (presence only). A field
    /// is found by its JSON name or, for a CEL reserved word, its escaped `__name__` form.
    pub(crate) fn cut(&self, value: &Value) -> Value {
        match (self, value) {
            (Access::Whole, v) => v.clone(),
            (Access::Presence, Value::Object(_)) => Value::Object(Default::default()),
            (Access::Presence, Value::Array(_)) => Value::Array(Vec::new()),
            (Access::Presence, v) => v.clone(),
            (Access::Fields(fields), Value::Object(map)) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| {
                        let access = fields.get(k).or_else(|| fields.get(&format!("__{k}__")))?;
                        Some((k.clone(), access.cut(v)))
                    })
                    .collect(),
            ),
            // Fields selected of something that is not an object: CEL errors the same on the whole value.
            (Access::Fields(_), v) => v.clone(),
        }
    }
}

fn mark(acc: &mut Option<Access>, path: &[&str], leaf: Access) {
    let mut access = leaf;
    for field in path.iter().rev() {
        access = Access::Fields(BTreeMap::from([(field.to_string(), access)]));
    }
    match acc {
        Some(a) => a.merge(access),
        None => *acc = Some(access),
    }
}

/// The fields selected from `var` by `expr`, when it is a plain chain `var.a['b']…`: an index by a string
/// literal reads that one key as a selection does (and fails the same when it is missing), so a policy that
/// writes `object.spec.release['namespace']` (a CEL reserved word cannot be selected) reads only that field.
fn chain<'e>(expr: &'e Expr, var: &str) -> Option<Vec<&'e str>> {
    match expr {
        Expr::Ident(name) if name == var => Some(Vec::new()),
        Expr::Select(s) if !s.test => {
            let mut path = chain(&s.operand.expr, var)?;
            path.push(&s.field);
            Some(path)
        }
        Expr::Call(c) if c.func_name == operators::INDEX && c.target.is_none() => {
            let [operand, index] = c.args.as_slice() else {
                return None;
            };
            let Expr::Literal(LiteralValue::String(key)) = &index.expr else {
                return None;
            };
            let mut path = chain(&operand.expr, var)?;
            path.push(key.inner());
            Some(path)
        }
        _ => None,
    }
}

fn walk(e: &IdedExpr, var: &str, acc: &mut Option<Access>) {
    if let Some(path) = chain(&e.expr, var) {
        mark(acc, &path, Access::Whole);
        return;
    }
    match &e.expr {
        Expr::Select(s) => {
            if s.test
                && let Some(mut path) = chain(&s.operand.expr, var)
            {
                path.push(&s.field);
                mark(acc, &path, Access::Presence);
                return;
            }
            walk(&s.operand, var, acc);
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, var, acc);
            }
            for a in &c.args {
                walk(a, var, acc);
            }
        }
        // Its variables may shadow `var`: walked as if they did not (reading more is safe).
        Expr::Comprehension(c) => {
            for sub in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                walk(sub, var, acc);
            }
        }
        Expr::List(l) => {
            for el in &l.elements {
                walk(el, var, acc);
            }
        }
        Expr::Map(m) => entries(&m.entries, var, acc),
        Expr::Struct(s) => entries(&s.entries, var, acc),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entries(
    entries: &[kube_cel::cel::common::ast::IdedEntryExpr],
    var: &str,
    acc: &mut Option<Access>,
) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::StructField(f) => walk(&f.value, var, acc),
            EntryExpr::MapEntry(m) => {
                walk(&m.key, var, acc);
                walk(&m.value, var, acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn access(var: &str, texts: &[&str]) -> Option<Access> {
        let programs: Vec<Program> = texts.iter().map(|t| Program::compile(t).unwrap()).collect();
        Access::of(var, &programs)
    }

    #[test]
    fn only_what_the_expressions_read_is_kept() {
        let spec = json!({"mode": "full", "chart": {"url": "oci://x", "name": "n"},
                          "values": {"inline": {"huge": [1, 2, 3]}}, "other": 1});
        let a = access(
            "self",
            &[
                "self.mode == 'placeholder' || has(self.values)",
                "!has(self.chart) || self.chart.url.startsWith('oci://')",
            ],
        )
        .unwrap();
        assert_eq!(
            a.cut(&spec),
            json!({"mode": "full", "chart": {"url": "oci://x"}, "values": {}})
        );
        // Read whole: passed to a function, compared, iterated, indexed.
        for text in [
            "size(self) > 0",
            "self == oldSelf",
            "self.all(k, k != 'x')",
            "self[self.mode] != null",
            "self.values.inline.exists(k, k == 'huge')",
        ] {
            let a = access("self", &[text]).unwrap();
            let cut = a.cut(&spec);
            if text.starts_with("self.values") {
                assert_eq!(
                    cut,
                    json!({"values": {"inline": {"huge": [1, 2, 3]}}}),
                    "{text}"
                );
            } else {
                assert_eq!(cut, spec, "{text}");
            }
        }
        // An index by a string literal selects that key, whatever it is named.
        let a = access(
            "self",
            &["self['chart'].url == 'oci://x'", "self['values'] != null"],
        )
        .unwrap();
        assert_eq!(
            a.cut(&spec),
            json!({"chart": {"url": "oci://x"}, "values": {"inline": {"huge": [1, 2, 3]}}})
        );
        // A variable not named is not read.
        assert!(access("oldSelf", &["self.mode == 'x'"]).is_none());
        // Presence and a deeper read of the same field: the deeper read wins.
        let a = access("self", &["has(self.chart)", "self.chart.name == 'n'"]).unwrap();
        assert_eq!(a.cut(&spec), json!({"chart": {"name": "n"}}));
        // A reserved word is selected in its escaped form.
        let a = access("self", &["self.__namespace__ == 'x'"]).unwrap();
        assert_eq!(
            a.cut(&json!({"namespace": "team", "name": "a"})),
            json!({"namespace": "team"})
        );
    }
}

//! `{{ value | embed }}`: a value placed in the rendered object as itself, without a text round trip.
//!
//! `tojson` writes a value as JSON text that the renderer then parses back; for an intent's chart values (the
//! largest part of a HelmRelease) that is a serialization and a parse of bytes the renderer already holds as a
//! value. `embed` writes a marker instead (a JSON string: a NUL, `embed:`, this render's random nonce and the
//! value's index), and after the output is parsed the renderer puts the value where its marker stands. The
//! object is the same as with `tojson`, the text is never built.
//!
//! The marker must stand as a whole value (a mapping's value or a list's item). A marker inside a longer string,
//! as a key, or not found at all (its text went through another filter) is an error naming the template, never
//! a silently different object. A tenant cannot forge a marker: the nonce is 128 random bits drawn per render
//! and never printed. Embedded values count towards the output limit at their JSON size, and are refused deeper
//! than the output parser's nesting limit (128, as serde_json's).

use std::sync::Arc;

use minijinja::value::{Value as TemplateValue, ValueKind};
use minijinja::{Error, ErrorKind, State};
use serde_json::Value;

use super::lazy::Lazy;

/// The nesting limit of an embedded value: the same as the parser's for template output text.
const MAX_DEPTH: usize = 128;

/// The values one render embedded, by index, and its nonce (a render-local extension of the template state).
#[derive(Default)]
pub(super) struct Embeds {
    /// `\0embed:<nonce>:`, the prefix of every marker of this render.
    prefix: String,
    values: Vec<Embedded>,
    /// The JSON size of every embedded value, for the output limit.
    pub(super) bytes: usize,
}

/// One embedded value: converted from a template value, or an intent's JSON held by the renderer's lazy value
/// (taken, not copied, when nothing else holds it any more: the renderer drops the render's context first).
enum Embedded {
    Value(Value),
    Shared(Arc<Lazy<Value>>),
}

impl Embedded {
    fn to_value(&self) -> Value {
        match self {
            Embedded::Value(v) => v.clone(),
            Embedded::Shared(lazy) => lazy.inner.clone(),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Embedded::Value(v) => v,
            Embedded::Shared(lazy) => {
                Arc::try_unwrap(lazy).map_or_else(|lazy| lazy.inner.clone(), |lazy| lazy.inner)
            }
        }
    }
}

/// The `embed` filter, with the output limit it enforces (the renderer's `max_output_bytes`).
pub(super) fn filter(
    max_bytes: usize,
) -> impl Fn(&mut State, &TemplateValue) -> Result<TemplateValue, Error> + Send + Sync + 'static {
    move |state: &mut State, value: &TemplateValue| {
        let embedded = match value.downcast_object::<Lazy<Value>>() {
            Some(lazy) => Embedded::Shared(lazy),
            None => Embedded::Value(match to_json(value, 0)? {
                Some(json) => json,
                None => serde_json::to_value(value).map_err(|e| {
                    Error::new(ErrorKind::InvalidOperation, "cannot embed the value").with_source(e)
                })?,
            }),
        };
        let json = match &embedded {
            Embedded::Value(v) => v,
            Embedded::Shared(lazy) => &lazy.inner,
        };
        let size = json_size(json, 0).ok_or_else(too_deep)?;
        let embeds = state.get_or_insert_extension_with(|| Embeds {
            prefix: format!("\0embed:{:032x}:", rand::random::<u128>()),
            ..Embeds::default()
        });
        embeds.bytes = embeds.bytes.saturating_add(size);
        if embeds.bytes > max_bytes {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("embedded values exceed the output limit of {max_bytes} bytes"),
            ));
        }
        let marker = format!("{}{}", embeds.prefix, embeds.values.len());
        embeds.values.push(embedded);
        let text = serde_json::to_string(&marker)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, "marker").with_source(e))?;
        Ok(TemplateValue::from_safe_string(text))
    }
}

/// A template value as JSON, the value `serde_json::to_value` gives, built directly (without serde's dispatch
/// per value, most of the cost of embedding a catalog's values). `Ok(None)` for what only serde knows how to
/// write: bytes, plain objects, numbers beyond 64 bits, invalid values, keys that are not strings. Nesting past
/// the limit is refused here, before any conversion could recurse that deep.
fn to_json(value: &TemplateValue, depth: usize) -> Result<Option<Value>, Error> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let json = match value.kind() {
        ValueKind::Undefined | ValueKind::None => Some(Value::Null),
        ValueKind::Bool => Some(Value::Bool(value.is_true())),
        ValueKind::String => value.as_str().map(|s| Value::String(s.to_string())),
        ValueKind::Number if value.is_integer() => match value.as_i64() {
            Some(i) => Some(Value::from(i)),
            None => u64::try_from(value.clone()).ok().map(Value::from),
        },
        ValueKind::Number => f64::try_from(value.clone()).ok().map(Value::from),
        ValueKind::Seq | ValueKind::Iterable => {
            let Ok(iter) = value.try_iter() else {
                return Ok(None);
            };
            let mut items = Vec::new();
            for item in iter {
                let Some(item) = to_json(&item, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
            }
            Some(Value::Array(items))
        }
        ValueKind::Map => {
            let Some(pairs) = value.as_object().and_then(|o| o.try_iter_pairs()) else {
                return Ok(None);
            };
            let mut map = serde_json::Map::new();
            for (key, item) in pairs {
                let (Some(key), Some(item)) = (key.as_str(), to_json(&item, depth + 1)?) else {
                    return Ok(None);
                };
                map.insert(key.to_string(), item);
            }
            Some(Value::Object(map))
        }
        _ => None,
    };
    Ok(json)
}

fn too_deep() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot embed a value nested deeper than {MAX_DEPTH} levels"),
    )
}

/// The serialized JSON size of `value` counting strings by their bytes (escapes aside), or `None` past the
/// nesting limit.
fn json_size(value: &Value, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => digits(u),
            (None, Some(i)) => 1 + digits(i.unsigned_abs()),
            _ => 24,
        },
        Value::String(s) => s.len() + 2,
        Value::Array(items) => {
            let mut size = 2 + items.len();
            for item in items {
                size += json_size(item, depth + 1)?;
            }
            size
        }
        Value::Object(map) => {
            let mut size = 2 + map.len();
            for (key, item) in map {
                size += key.len() + 3 + json_size(item, depth + 1)?;
            }
            size
        }
    })
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Put every embedded value where its marker stands in `docs`. Errors say what is wrong, never the nonce.
pub(super) fn place(docs: &mut [Value], embeds: Embeds) -> Result<(), String> {
    let mut uses = vec![0usize; embeds.values.len()];
    for doc in docs.iter() {
        count(doc, &embeds.prefix, &mut uses)?;
    }
    if uses.contains(&0) {
        return Err(
            "the output of `embed` must stand as a whole value in the output (a mapping's value or a list's \
             item), as written, not through another filter"
                .into(),
        );
    }
    let mut values: Vec<Option<Embedded>> = embeds.values.into_iter().map(Some).collect();
    for doc in docs.iter_mut() {
        put(doc, &embeds.prefix, &mut uses, &mut values);
    }
    Ok(())
}

/// The index a whole-string marker names.
fn marker_index(s: &str, prefix: &str, len: usize) -> Option<usize> {
    s.strip_prefix(prefix)?
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
}

/// Count the markers standing as values; refuse one inside a string or a key.
fn count(value: &Value, prefix: &str, uses: &mut [usize]) -> Result<(), String> {
    let misplaced = || {
        "the output of `embed` must stand as a whole value in the output, not inside a string or as a key"
            .to_string()
    };
    match value {
        Value::String(s) if s.contains('\0') => match marker_index(s, prefix, uses.len()) {
            Some(i) => uses[i] += 1,
            None if s.contains(prefix) => return Err(misplaced()),
            None => {}
        },
        Value::Array(items) => {
            for item in items {
                count(item, prefix, uses)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                if key.contains('\0') && key.contains(prefix) {
                    return Err(misplaced());
                }
                count(item, prefix, uses)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replace each marker by its value: a copy for all but its last use, which takes the value.
fn put(value: &mut Value, prefix: &str, uses: &mut [usize], values: &mut [Option<Embedded>]) {
    match value {
        Value::String(s) if s.contains('\0') => {
            if let Some(i) = marker_index(s, prefix, uses.len()) {
                uses[i] -= 1;
                let embedded = if uses[i] == 0 {
                    values[i].take().map(Embedded::into_value)
                } else {
                    values[i].as_ref().map(Embedded::to_value)
                };
                *value = embedded.unwrap_or_default();
            }
        }
        Value::Array(items) => {
            for item in items {
                put(item, prefix, uses, values);
            }
        }
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                put(item, prefix, uses, values);
            }
        }
        _ => {}
    }
}

//! Reading a child's status conditions (Flux's kinds, and the engines of Operations): the condition of a type, a
//! field of it, and whether it speaks for the object's current generation. Shared by `status`, `chart_trust`
//! and `engine_state`.

use serde_json::Value;

/// The condition of a type in a child's `status.conditions`.
pub fn child_condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// A string field of a condition (empty when absent).
pub(super) fn field<'a>(cond: &'a Value, key: &str) -> &'a str {
    cond.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Whether a condition speaks for the object's current generation: its `observedGeneration` (Flux sets it on
/// every condition it writes) is the object's `metadata.generation`. A condition without one, or an object
/// without a generation, is taken as current.
pub(super) fn of_current_generation(obj: &Value, cond: &Value) -> bool {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = cond.get("observedGeneration").and_then(Value::as_i64);
    match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        _ => true,
    }
}

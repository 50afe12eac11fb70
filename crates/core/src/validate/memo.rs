//! Verdicts of CEL rules, kept by what the rules read. A rule's verdict (and its message) is a function of the
//! values it is given, and those are cut to what its expressions read ([`super::cel_access`]): the chart of
//! 1,000 intents of one catalog entry, or the labels and namespace the admission policy reads, are the same
//! few inputs again and again. Converting them to CEL values and running the programs was most of what the
//! API server's rules cost an intent; a verdict seen before is now a lookup.
//!
//! Bounded, since the inputs are a tenant's: an input whose JSON is over [`MAX_KEY`] bytes is evaluated every
//! time and never kept (its serialisation stops at the bound), and a memo that reaches its capacity starts over
//! empty. Nothing but the inputs goes into a key, so a kept verdict is exactly the one evaluating would give.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

/// Longest key kept (bytes of JSON).
pub(crate) const MAX_KEY: usize = 2048;

/// Verdicts by key, at most `capacity` of them.
pub(crate) struct Memo<V> {
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, V>>,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict kept for `key`, or `compute`'s (kept). Without a key (the inputs were too large) it is
    /// `compute`'s, not kept.
    pub(crate) fn get_or(&self, key: Option<String>, compute: impl FnOnce() -> V) -> V {
        let Some(key) = key else {
            return compute();
        };
        if let Some(kept) = self.lock().get(key.as_str()) {
            return kept.clone();
        }
        let verdict = compute();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key.into_boxed_str(), verdict.clone());
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The key of a rule's inputs: each as compact JSON, an absent one as `~` (no JSON text starts with it), with
/// a NUL between them (JSON escapes every NUL inside a string). `None` when it would be over [`MAX_KEY`].
pub(crate) fn key(inputs: &[Option<&Value>]) -> Option<String> {
    let mut out = Bounded(Vec::with_capacity(256));
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            out.0.push(0);
        }
        match input {
            None => out.0.push(b'~'),
            Some(v) => serde_json::to_writer(&mut out, v).ok()?,
        }
        if out.0.len() > MAX_KEY {
            return None;
        }
    }
    String::from_utf8(out.0).ok()
}

/// A buffer that refuses to grow past [`MAX_KEY`], so a large input stops being written at the bound.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_KEY {
            return Err(std::io::Error::other("over the memo key bound"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_tell_inputs_apart_and_large_inputs_have_none() {
        let a = json!({"x": "a"});
        let b = json!({"x": "a\u{0}~"});
        let keys = [
            key(&[Some(&a), None]),
            key(&[Some(&a), Some(&Value::Null)]),
            key(&[None, Some(&a)]),
            key(&[Some(&b), None]),
            key(&[Some(&a)]),
        ];
        for (i, k) in keys.iter().enumerate() {
            assert!(k.is_some());
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        assert_eq!(key(&[Some(&a), None]), key(&[Some(&a.clone()), None]));
        let large = json!({"x": "y".repeat(MAX_KEY)});
        assert_eq!(key(&[Some(&large)]), None);
        assert_eq!(key(&[Some(&a), Some(&large)]), None);
    }

    #[test]
    fn a_memo_keeps_at_most_its_capacity_and_evaluates_what_it_cannot_key() {
        let memo = Memo::new(4);
        let mut evaluated = 0;
        for round in 0..2 {
            for i in 0..3 {
                let v = memo.get_or(Some(format!("k{i}")), || {
                    evaluated += 1;
                    i * 10
                });
                assert_eq!(v, i * 10);
            }
            assert_eq!(evaluated, 3, "round {round}: the second round is all kept");
        }
        for i in 0..100 {
            memo.get_or(Some(format!("n{i}")), || i);
            assert!(memo.len() <= 4);
        }
        let mut unkeyed = 0;
        for _ in 0..3 {
            memo.get_or(None, || {
                unkeyed += 1;
                0
            });
        }
        assert_eq!(unkeyed, 3);
    }
}

//! Values handed to templates without converting them first. Converting an intent's spec and chart values into
//! template values is work a template rarely needs: the shipped templates only print `values` with `tojson`
//! and read `app.name` / `app.namespace`. A [`Lazy`] value is converted the first time a template reads into
//! it (an attribute, an item, a loop, a comparison), once; `tojson` writes a [`Lazy`] JSON value with serde_json
//! directly, never converting it at all. What a template sees is the same value either way.

use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value};
use serde::Serialize;

/// `T` as a template value, converted on first read.
pub(super) struct Lazy<T> {
    pub(super) inner: T,
    repr: ObjectRepr,
    /// Truth and length known without converting (a JSON mapping or list), so `{% if values %}` and `length`
    /// do not convert the whole value.
    shape: Option<(bool, usize)>,
    converted: OnceLock<Value>,
}

impl<T: Serialize + Send + Sync + 'static> Lazy<T> {
    fn converted(&self) -> &Value {
        self.converted
            .get_or_init(|| Value::from(Serde(&self.inner)))
    }
}

impl<T> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lazy")
    }
}

/// A struct that serializes as a map (the intent's spec) as a template value.
pub(super) fn map<T: Serialize + Send + Sync + 'static>(inner: T) -> Value {
    Value::from_object(Lazy {
        inner,
        repr: ObjectRepr::Map,
        shape: None,
        converted: OnceLock::new(),
    })
}

/// A JSON value as a template value: a mapping or a list is converted on first read, anything else at once.
pub(super) fn json(inner: serde_json::Value) -> Value {
    let (repr, len) = match &inner {
        serde_json::Value::Object(map) => (ObjectRepr::Map, map.len()),
        serde_json::Value::Array(items) => (ObjectRepr::Seq, items.len()),
        _ => return Value::from(Serde(&inner)),
    };
    Value::from_object(Lazy {
        inner,
        repr,
        shape: Some((len > 0, len)),
        converted: OnceLock::new(),
    })
}

/// The JSON value behind a template value made by [`json`], if it is one.
pub(super) fn as_json(value: &Value) -> Option<&serde_json::Value> {
    value
        .downcast_object_ref::<Lazy<serde_json::Value>>()
        .map(|lazy| &lazy.inner)
}

impl<T: Serialize + Send + Sync + 'static> Object for Lazy<T> {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        self.repr
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.converted()
            .get_item(key)
            .ok()
            .filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let converted = self.converted();
        match self.repr {
            ObjectRepr::Seq => Enumerator::Seq(converted.len().unwrap_or(0)),
            _ => match converted.try_iter() {
                Ok(keys) => Enumerator::Values(keys.collect()),
                Err(_) => Enumerator::Empty,
            },
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.shape {
            Some((_, len)) => Some(len),
            None => self.converted().len(),
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        match self.shape {
            Some((truth, _)) => truth,
            None => self.converted().is_true(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    /// Every way a template reads a value gives the same answer for the lazy value as for the converted one.
    #[test]
    fn a_lazy_value_reads_as_the_converted_one() {
        let value = j!({"b": {"c": [1, 2, {"d": "x"}]}, "a": true, "e": {}, "f": []});
        let env = minijinja::Environment::new();
        let cases = [
            "{{ v.b.c[2].d }}|{{ v['a'] }}|{{ v.missing is defined }}",
            "{% for k in v %}{{ k }},{% endfor %}|{% for k, x in v|items %}{{ k }}={{ x }};{% endfor %}",
            "{{ v|length }}|{{ v.b.c|length }}|{{ v.e|length }}|{{ v.f|length }}",
            "{% if v %}t{% endif %}{% if v.e %}e{% endif %}{% if v.f %}f{% endif %}",
            "{{ v is mapping }}|{{ v.b.c is sequence }}|{{ v == v }}|{{ v.b.c[0] + 1 }}",
            "{{ v }}|{{ v|tojson }}|{{ v|dictsort }}|{{ v.b.c|list }}",
        ];
        for source in cases {
            let render = |v: Value| {
                env.render_str(source, minijinja::context! { v => v })
                    .unwrap()
            };
            let lazy = render(json(value.clone()));
            let converted = render(Value::from(Serde(&value)));
            assert_eq!(lazy, converted, "{source}");
        }
        for (empty, truth) in [(j!({}), "f"), (j!([]), "f"), (j!({"a": 1}), "t")] {
            let out = env
                .render_str(
                    "{% if v %}t{% else %}f{% endif %}",
                    minijinja::context! { v => json(empty) },
                )
                .unwrap();
            assert_eq!(out, truth);
        }
        // Truth and length of a JSON mapping or list are read without converting it.
        let lazy = json(value.clone());
        let out = env
            .render_str(
                "{% if v %}{{ v|length }}{% endif %}",
                minijinja::context! { v => lazy.clone() },
            )
            .unwrap();
        assert_eq!(out, "4");
        let inner = lazy
            .downcast_object_ref::<Lazy<serde_json::Value>>()
            .unwrap();
        assert!(inner.converted.get().is_none(), "converted to test truth");
        assert_eq!(as_json(&json(value.clone())), Some(&value));
        assert_eq!(as_json(&Value::from(Serde(&value))), None);
    }
}

//! `embed` through the renderer: the objects it gives, its misuse, forged markers and its bounds (embed.rs).

use serde_json::json;

use super::{Limits, RenderError, RenderOptions, Renderer, Templates};

fn renderer(source: &str, limits: Limits) -> Renderer {
    let mut templates = Templates::embedded();
    templates.insert("t.yaml.j2", source);
    Renderer::new(
        templates,
        RenderOptions {
            limits,
            ..RenderOptions::default()
        },
    )
}

fn render(source: &str, limits: Limits) -> Result<Vec<serde_json::Value>, RenderError> {
    let values = json!({"a": {"b": [1, "two", null, 2.5, {"c": true}]}, "e": {}, "f": "\u{0}x"});
    let ctx = minijinja::context! {
        values => super::lazy::json(values),
        name => "\u{0}embed:00000000000000000000000000000000:0",
        list => vec![1, 2, 3],
        deep => super::lazy::json((0..130).fold(json!(1), |v, _| json!([v]))),
    };
    renderer(source, limits).render_objects("t.yaml.j2", ctx, "test")
}

/// Whatever the value (an intent's JSON, a template's map or list) and wherever it stands as a whole
/// value, in JSON or YAML output, once or more, `embed` gives the object `tojson` gives.
#[test]
fn an_embedded_value_is_the_object_tojson_would_give() {
    let sources = [
        r#"{"values": {{ values | embed }}, "name": {{ name | tojson }}}"#,
        r#"{{ values | embed }}"#,
        r#"[{{ values.a | embed }}, {{ list | embed }}, {{ {"k": list, "v": values} | embed }}]"#,
        "{% set v = values | embed %}{\"x\": {{ v }}, \"y\": [{{ v }}, {{ v }}]}",
        "kind: X\nspec:\n  values: {{ values | embed }}\n  n: {{ name | tojson }}\n---\n- {{ list | embed }}\n",
        r#"{"a": {{ values | embed }}} {"b": {{ values | embed }}}"#,
        r#"{{ {"f": 2.5, "g": 2.0, "h": -1, "i": 18446744073709551615, "b": false, "n": none, "s": "é\n\"", "l": [1.5, [], {}]} | embed }}"#,
        r#"[{{ range(3) | embed }}, {{ "x" | embed }}, {{ 7 | embed }}, {{ none | embed }}, {{ values.e | embed }}]"#,
    ];
    for source in sources {
        let embedded = render(source, Limits::default()).unwrap();
        let printed = render(&source.replace("embed", "tojson"), Limits::default()).unwrap();
        assert_eq!(embedded, printed, "{source}");
    }
}

/// A marker that does not stand as a whole value is an error naming the template, never a different
/// object: the output does not parse (a marker's quotes inside a string), or the renderer refuses it.
#[test]
fn a_marker_that_is_not_a_whole_value_is_an_error() {
    let sources = [
        r#"{"x": "a{{ values | embed }}"}"#,
        r#"{"x": {{ ("a" ~ (values | embed)) | tojson }}}"#,
        r#"{ {{ values | embed }}: 1}"#,
        r#"{"x": {{ values | embed | length }}}"#,
        r#"{"x": {{ values | embed | upper }}}"#,
        "{% set _ = values | embed %}{\"x\": 1}",
    ];
    for source in sources {
        match render(source, Limits::default()) {
            Err(RenderError::Template { name, reason }) => {
                assert_eq!(name, "t.yaml.j2", "{source}");
                assert!(reason.contains("`embed`"), "{source}: {reason}");
                assert!(!reason.contains('\0'), "{source}: {reason}");
            }
            Err(RenderError::Output { name, .. }) => {
                assert_eq!(name, "t.yaml.j2", "{source}");
            }
            other => panic!("{source}: {other:?}"),
        }
    }
}

/// A string from an intent shaped like a marker (a nonce guessed) stays that string, beside a real embed.
#[test]
fn a_string_from_an_intent_cannot_pose_as_a_marker() {
    let out = render(
        r#"{"name": {{ name | tojson }}, "values": {{ values | embed }}}"#,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        out[0]["name"],
        json!("\u{0}embed:00000000000000000000000000000000:0")
    );
    assert_eq!(out[0]["values"]["f"], json!("\u{0}x"));
    assert_eq!(out[0]["values"]["a"]["b"][1], json!("two"));
}

/// Embedded values count towards the output limit, and nest no deeper than the output parser allows.
#[test]
fn embedded_values_are_bounded_in_size_and_depth() {
    let small = Limits {
        max_output_bytes: 200,
        ..Limits::default()
    };
    assert!(render(r#"{"v": {{ values | embed }}}"#, small).is_ok());
    for source in [
        "[{% for _ in range(5) %}{{ values | embed }},{% endfor %}1]",
        r#"{"pad": {{ ("x" * 120) | tojson }}, "v": {{ values | embed }}}"#,
    ] {
        let err = render(source, small).unwrap_err().to_string();
        assert!(err.contains("limit of 200 bytes"), "{source}: {err}");
    }
    // Deep as an intent's value, and deep as a value a template builds (refused before it is converted).
    for source in [
        "{{ deep | embed }}",
        "{% set v = deep | list %}{{ {\"k\": v} | embed }}",
    ] {
        let err = render(source, Limits::default()).unwrap_err().to_string();
        assert!(err.contains("deeper than 128"), "{source}: {err}");
    }
}

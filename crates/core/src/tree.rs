//! Render a whole tree of manifests (a directory or a git revision): find the intents ([`crate::intent`]),
//! validate them ([`crate::validate`]), render them ([`crate::render`]), and collect every problem. Pure; the
//! `render` and `hydrate` commands, the demo and the tests call it. It sits above both `validate` and `render`
//! because validation reads the renderer's templates (which exist, their parameter schemas, tenancy).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{ApplicationInstance, Operation};
use crate::intent::{IntentDoc, IntentKind, ObjectKey, Problem, SourceFile, parse_files};
use crate::render::Renderer;
use crate::validate::{self, Context};

/// One intent and what it rendered to.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedIntent {
    pub key: ObjectKey,
    /// Where the manifest is (`path` or `path#N`).
    pub location: String,
    pub objects: Vec<Value>,
}

/// The result of rendering a tree: the intents that rendered, and every problem found (an intent with a
/// problem renders nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeRender {
    pub intents: Vec<RenderedIntent>,
    pub problems: Vec<Problem>,
}

impl TreeRender {
    /// All rendered objects, in a stable order (by intent, then the renderer's order).
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.intents.iter().flat_map(|i| i.objects.iter())
    }
}

/// The `v1` Namespace objects found in the files (the admission policy reads their gate label and their
/// `ops.vworkspace.io/allowed-types` annotation).
fn namespace_objects(files: &[SourceFile]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for file in files {
        let Ok(text) = std::str::from_utf8(&file.data) else {
            continue;
        };
        if !text.contains("Namespace") {
            continue;
        }
        let Ok(docs) = serde_saphyr::from_multiple::<Value>(text) else {
            continue;
        };
        for doc in docs {
            if doc.get("apiVersion").and_then(Value::as_str) == Some("v1")
                && doc.get("kind").and_then(Value::as_str) == Some("Namespace")
                && let Some(name) = doc.pointer("/metadata/name").and_then(Value::as_str)
            {
                out.insert(name.to_string(), doc.clone());
            }
        }
    }
    out
}

/// Validate and render every intent found in `files`.
pub fn render_tree(
    files: &[SourceFile],
    renderer: &Renderer,
    cluster_id: Option<&str>,
) -> TreeRender {
    let (docs, mut problems) = parse_files(files);
    let ctx = Context {
        cluster_id,
        renderer,
    };
    let namespaces = namespace_objects(files);
    // A namespace whose manifest is not among the files is taken as gated, with no annotations.
    let namespace_of = |doc: &IntentDoc| {
        namespaces
            .get(&doc.key.namespace)
            .cloned()
            .unwrap_or_else(|| validate::namespace_stand_in(&doc.key.namespace, None))
    };
    let mut intents = Vec::new();

    // What the API server would refuse (schema, CRD rules, admission policy), then the webhook's rules, and the
    // rendering of each valid ApplicationInstance: independent per document, on every core.
    let judged = crate::par::map(&docs, |doc| judge(doc, &namespace_of(doc), renderer, &ctx));
    // Applications first: Operations need their targets.
    let mut apps: BTreeMap<(String, String), (ApplicationInstance, bool)> = BTreeMap::new();
    let mut ops: Vec<(&IntentDoc, Operation, bool)> = Vec::new();
    for (doc, judged) in docs.iter().zip(judged) {
        let typed_ok = judged.schema.is_empty();
        problems.extend(judged.schema);
        match judged.typed {
            Typed::App {
                app,
                found,
                rendered,
            } => {
                problems.extend(found);
                let valid = matches!(rendered, Some(Ok(_)));
                match rendered {
                    Some(Ok(objects)) => intents.push(RenderedIntent {
                        key: doc.key.clone(),
                        location: doc.location.clone(),
                        objects,
                    }),
                    Some(Err(e)) => problems.push(Problem::new(
                        &doc.location,
                        &doc.key,
                        e.field(),
                        render_reason(&e),
                    )),
                    None => {}
                }
                apps.insert(
                    (doc.key.namespace.clone(), doc.key.name.clone()),
                    (*app, valid),
                );
            }
            Typed::Op(op) => ops.push((doc, *op, typed_ok)),
            Typed::Unreadable(p) => {
                if typed_ok {
                    problems.push(p);
                }
            }
        }
    }
    for (doc, op, typed_ok) in ops {
        let target = apps.get(&(doc.key.namespace.clone(), op.spec.target_ref.name.clone()));
        let mut found = validate::check_operation(&doc.location, &op, &ctx);
        found.extend(validate::check_operation_target(
            &doc.location,
            &op,
            target.map(|(app, _)| app),
        ));
        let ok = typed_ok && found.is_empty();
        problems.extend(found);
        if !ok {
            continue;
        }
        let Some((target, target_valid)) = target else {
            continue;
        };
        if !target_valid {
            problems.push(Problem::new(
                &doc.location,
                &doc.key,
                "spec.targetRef.name",
                format!(
                    "target ApplicationInstance {}/{} is invalid (see its problems)",
                    doc.key.namespace, op.spec.target_ref.name
                ),
            ));
            continue;
        }
        match renderer.render_operation(&op, target) {
            Ok(objects) => intents.push(RenderedIntent {
                key: doc.key.clone(),
                location: doc.location.clone(),
                objects,
            }),
            Err(crate::render::RenderError::Tenancy { violations }) => {
                for v in violations {
                    problems.push(Problem::new(
                        &doc.location,
                        &doc.key,
                        &v.field,
                        v.explained(),
                    ));
                }
            }
            Err(e) => problems.push(Problem::new(
                &doc.location,
                &doc.key,
                e.field(),
                render_reason(&e),
            )),
        }
    }
    intents.sort_by(|a, b| a.key.cmp(&b.key));
    problems.sort();
    problems.dedup();
    TreeRender { intents, problems }
}

/// One document judged on its own: what the API server would refuse, and for an ApplicationInstance the
/// webhook's rules and its rendering (rendered only when nothing was refused).
struct Judged {
    schema: Vec<Problem>,
    typed: Typed,
}

enum Typed {
    App {
        app: Box<ApplicationInstance>,
        found: Vec<Problem>,
        rendered: Option<Result<Vec<Value>, crate::render::RenderError>>,
    },
    Op(Box<Operation>),
    /// The document does not read as its kind (reported only when the schema check found nothing).
    Unreadable(Problem),
}

fn judge(doc: &IntentDoc, namespace: &Value, renderer: &Renderer, ctx: &Context) -> Judged {
    let schema = validate::check_api_server(
        &doc.location,
        doc.key.kind,
        &doc.value,
        None,
        namespace,
        ctx,
    );
    let typed = match doc.key.kind {
        IntentKind::ApplicationInstance => match doc.application_instance() {
            Ok(app) => {
                let found = validate::check_application(&doc.location, &app, ctx);
                let rendered = (schema.is_empty() && found.is_empty())
                    .then(|| renderer.render_application(&app));
                Typed::App {
                    app: Box::new(app),
                    found,
                    rendered,
                }
            }
            Err(p) => Typed::Unreadable(p),
        },
        IntentKind::Operation => match doc.operation() {
            Ok(op) => Typed::Op(Box::new(op)),
            Err(p) => Typed::Unreadable(p),
        },
    };
    Judged { schema, typed }
}

fn render_reason(e: &crate::render::RenderError) -> String {
    match e {
        crate::render::RenderError::Intent { reason, .. } => reason.clone(),
        other => format!(
            "{}: {other}",
            crate::api::conditions::reasons::RENDER_FAILED
        ),
    }
}

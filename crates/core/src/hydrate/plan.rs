//! The pure core of hydrate: which files the rendered objects become, what changes against the tree that is
//! there, and which intent revision may be rendered. No I/O: inputs are values, outputs are values.
//!
//! - [`object_path`] / [`desired_files`]: one YAML file per rendered object at a stable name,
//!   `<namespace>/<kind>-<name>.yaml` (kind in lower case; `_cluster/…` for cluster-scoped objects), below
//!   the output prefix.
//! - [`plan`]: the desired files against the current entries of the output location → files added, changed
//!   and removed (anything in the output location that is not rendered is stale and removed).

use std::collections::BTreeMap;

use gix::ObjectId;
use serde_json::Value;

use crate::intent::{IntentKind, Problem};
use crate::render;
use crate::tree::TreeRender;

/// The directory of cluster-scoped objects (a namespace name cannot start with `_`).
pub const CLUSTER_SCOPED_DIR: &str = "_cluster";

/// One path component of a file name: a Kubernetes name (DNS subdomain or label) is always fine; anything
/// that could escape the directory or hide the file is refused.
fn check_component(what: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} cannot be used in a file name (letters, digits, '-', '.', '_'; not starting with '.')"
        ))
    }
}

/// The file of a rendered object, relative to the output prefix: `<namespace>/<kind>-<name>.yaml`, or
/// `_cluster/<kind>-<name>.yaml` when it has no namespace. The kind is lower-cased.
pub fn object_path(obj: &Value) -> Result<String, String> {
    let kind = render::kind(obj);
    let name = render::name(obj);
    let namespace = render::namespace(obj);
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("kind {kind:?} is empty or not alphanumeric"));
    }
    check_component("metadata.name", name)?;
    let dir = if namespace.is_empty() {
        CLUSTER_SCOPED_DIR
    } else {
        check_component("metadata.namespace", namespace)?;
        namespace
    };
    Ok(format!("{dir}/{}-{name}.yaml", kind.to_ascii_lowercase()))
}

/// Join an output prefix (`""` for the root) and a relative path.
pub fn join(prefix: &str, rel: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// A file to write: its content and the intent that rendered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFile {
    pub data: Vec<u8>,
    /// `Kind/namespace/name` of the rendered object.
    pub object: String,
    /// `Kind/namespace/name` of the intent.
    pub intent: String,
    pub intent_kind: IntentKind,
}

/// The files for every object of a tree rendering, by full path (below `prefix`), in a stable order.
/// Two objects that land on the same file are a problem unless they are byte-for-byte the same object, or
/// one comes from an Operation and the other from an ApplicationInstance: an upgrade Operation (helm
/// engine) renders its target's HelmRelease and chart source with the upgrade applied, and that rendering
/// replaces the target's own (as the controller applies it while the upgrade runs and after it succeeded).
/// An object that cannot be named or serialized is a problem too. Any problem means: write nothing.
pub fn desired_files(
    result: &TreeRender,
    prefix: &str,
) -> (BTreeMap<String, DesiredFile>, Vec<Problem>) {
    let mut files: BTreeMap<String, DesiredFile> = BTreeMap::new();
    let mut problems = Vec::new();
    // ApplicationInstances first, so that an Operation's rendering of the same object replaces theirs.
    let by_rank = |i: &&crate::tree::RenderedIntent| match i.key.kind {
        IntentKind::ApplicationInstance => 0,
        IntentKind::Operation => 1,
    };
    let mut intents: Vec<&crate::tree::RenderedIntent> = result.intents.iter().collect();
    intents.sort_by_key(by_rank);
    // Each object's path and YAML on its own (on every core), then placed in order.
    let written = crate::par::map(&intents, |intent| {
        intent
            .objects
            .iter()
            .map(|obj| {
                let object = render::object_id(obj);
                let problem =
                    |reason: String| Problem::new(&intent.location, &intent.key, "", reason);
                object_path(obj)
                    .map_err(|reason| problem(format!("rendered object {object}: {reason}")))
                    .and_then(|rel| {
                        serde_saphyr::to_string(obj)
                            .map(|text| (rel, text.into_bytes()))
                            .map_err(|e| {
                                problem(format!(
                                    "rendered object {object} cannot be written as YAML: {e}"
                                ))
                            })
                    })
            })
            .collect::<Vec<_>>()
    });
    for (intent, named) in intents.into_iter().zip(written) {
        for (obj, named) in intent.objects.iter().zip(named) {
            let object = render::object_id(obj);
            let problem = |reason: String| Problem::new(&intent.location, &intent.key, "", reason);
            let (rel, data) = match named {
                Ok(named) => named,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            let path = join(prefix, &rel);
            let is_operation = intent.key.kind == IntentKind::Operation;
            match files.get(&path) {
                Some(existing) if existing.data == data => continue,
                // An upgrade Operation's rendering replaces its target's.
                Some(existing)
                    if is_operation && existing.intent_kind == IntentKind::ApplicationInstance => {}
                Some(existing) => {
                    problems.push(problem(format!(
                        "rendered object {object} goes to {path}, which {} (rendered by {}) already \
                         uses with different content",
                        existing.object, existing.intent
                    )));
                    continue;
                }
                None => {}
            }
            files.insert(
                path,
                DesiredFile {
                    data,
                    object,
                    intent: intent.key.to_string(),
                    intent_kind: intent.key.kind,
                },
            );
        }
    }
    problems.sort();
    (files, problems)
}

/// An entry of the current output location: its object id, and whether it is a regular (non-executable)
/// file. Anything else (executable, symbolic link, submodule) is never what hydrate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentEntry {
    pub id: ObjectId,
    pub regular_file: bool,
}

/// What to change in the output location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New files (full paths), sorted.
    pub added: Vec<String>,
    /// Files whose content (or type) changes, sorted.
    pub changed: Vec<String>,
    /// Stale entries: in the output location but not rendered, sorted.
    pub removed: Vec<String>,
}

impl Plan {
    /// Nothing to change: the output location already holds exactly the rendering.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The blob id git gives `data`.
pub fn blob_id(hash: gix::hash::Kind, data: &[u8]) -> ObjectId {
    gix::objs::compute_hash(hash, gix::object::Kind::Blob, data)
        .unwrap_or_else(|_| ObjectId::null(hash))
}

/// Compare the desired files with the current entries (both keyed by full path).
pub fn plan(
    desired: &BTreeMap<String, DesiredFile>,
    current: &BTreeMap<String, CurrentEntry>,
    hash: gix::hash::Kind,
) -> Plan {
    let mut out = Plan::default();
    for (path, file) in desired {
        match current.get(path) {
            None => out.added.push(path.clone()),
            Some(entry) => {
                if !entry.regular_file || entry.id != blob_id(hash, &file.data) {
                    out.changed.push(path.clone());
                }
            }
        }
    }
    out.removed = current
        .keys()
        .filter(|p| !desired.contains_key(*p))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::ObjectKey;
    use crate::tree::RenderedIntent;
    use serde_json::json;

    fn rendered(name: &str, objects: Vec<Value>) -> RenderedIntent {
        RenderedIntent {
            key: ObjectKey {
                kind: IntentKind::ApplicationInstance,
                namespace: "team-a".into(),
                name: name.into(),
            },
            location: format!("clusters/c1/namespaces/team-a/applicationinstance-{name}.yaml"),
            objects,
        }
    }

    fn obj(kind: &str, ns: &str, name: &str, extra: i64) -> Value {
        json!({"apiVersion": "x/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": {"n": extra}})
    }

    #[test]
    fn stable_file_names() {
        assert_eq!(
            object_path(&obj("HelmRelease", "team-a", "cloud", 0)).unwrap(),
            "team-a/helmrelease-cloud.yaml"
        );
        let cluster = json!({"kind": "ClusterRole", "metadata": {"name": "r"}});
        assert_eq!(
            object_path(&cluster).unwrap(),
            "_cluster/clusterrole-r.yaml"
        );
        for bad in ["", "..", ".hidden", "a/b", "a b"] {
            assert!(
                object_path(&obj("HelmRelease", "ns", bad, 0)).is_err(),
                "{bad:?}"
            );
            assert!(object_path(&obj("HelmRelease", bad, "n", 0)).is_err() || bad.is_empty());
        }
        assert!(object_path(&obj("Helm/Release", "ns", "n", 0)).is_err());
        assert_eq!(join("", "a/b.yaml"), "a/b.yaml");
        assert_eq!(join("/hydrated/c1/", "a/b.yaml"), "hydrated/c1/a/b.yaml");
    }

    #[test]
    fn the_example_cluster_repo_hydrates_with_its_upgrade_operation_applied() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster-repo");
        let files = crate::intent::source::load_dir(&root).unwrap();
        let renderer = render::Renderer::new(
            render::Templates::embedded(),
            render::RenderOptions::default(),
        );
        let result = crate::tree::render_tree(&files, &renderer, Some("eu-prod-1"));
        assert!(result.problems.is_empty(), "{:?}", result.problems);
        let (files, problems) = desired_files(&result, "");
        assert!(problems.is_empty(), "{problems:?}");
        let release = &files["team-alpha/helmrelease-nextcloud.yaml"];
        assert!(
            release.intent.starts_with("Operation/team-alpha/"),
            "{}",
            release.intent
        );
    }

    #[test]
    fn desired_files_and_collisions() {
        let result = TreeRender {
            intents: vec![
                rendered(
                    "a",
                    vec![
                        obj("OCIRepository", "team-a", "a", 1),
                        obj("HelmRelease", "team-a", "a", 1),
                    ],
                ),
                // The same object twice (byte for byte) is one file.
                rendered("b", vec![obj("OCIRepository", "team-a", "a", 1)]),
            ],
            problems: vec![],
        };
        let (files, problems) = desired_files(&result, "out");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "out/team-a/helmrelease-a.yaml",
                "out/team-a/ocirepository-a.yaml"
            ]
        );
        let text = String::from_utf8(files["out/team-a/helmrelease-a.yaml"].data.clone()).unwrap();
        assert!(text.contains("kind: HelmRelease"), "{text}");
        let clash = TreeRender {
            intents: vec![
                rendered("a", vec![obj("HelmRelease", "team-a", "x", 1)]),
                rendered("b", vec![obj("HelmRelease", "team-a", "x", 2)]),
            ],
            problems: vec![],
        };
        // An upgrade Operation's rendering of its target's objects replaces the target's, whatever the order.
        let mut upgrade = rendered("upgrade", vec![obj("HelmRelease", "team-a", "a", 7)]);
        upgrade.key.kind = IntentKind::Operation;
        for intents in [
            vec![
                upgrade.clone(),
                rendered("a", vec![obj("HelmRelease", "team-a", "a", 1)]),
            ],
            vec![
                rendered("a", vec![obj("HelmRelease", "team-a", "a", 1)]),
                upgrade.clone(),
            ],
        ] {
            let (files, problems) = desired_files(
                &TreeRender {
                    intents,
                    problems: vec![],
                },
                "",
            );
            assert!(problems.is_empty(), "{problems:?}");
            let f = &files["team-a/helmrelease-a.yaml"];
            assert_eq!(f.intent, "Operation/team-a/upgrade");
            let text = String::from_utf8_lossy(&f.data);
            assert!(text.contains(": 7"), "{text}");
        }
        // Two Operations that render the same object differently are a problem.
        let mut other = rendered("other", vec![obj("HelmRelease", "team-a", "a", 8)]);
        other.key.kind = IntentKind::Operation;
        let (_, problems) = desired_files(
            &TreeRender {
                intents: vec![upgrade, other],
                problems: vec![],
            },
            "",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (_, problems) = desired_files(&clash, "");
        assert_eq!(problems.len(), 1);
        let p = problems[0].to_string();
        assert!(
            p.contains("team-a/helmrelease-x.yaml")
                && p.contains("ApplicationInstance/team-a/a")
                && p.contains("ApplicationInstance/team-a/b"),
            "{p}"
        );
    }

    #[test]
    fn plan_adds_changes_and_removes() {
        let kind = gix::hash::Kind::Sha1;
        let file = |s: &str| DesiredFile {
            data: s.as_bytes().to_vec(),
            object: String::new(),
            intent: String::new(),
            intent_kind: IntentKind::ApplicationInstance,
        };
        let desired = BTreeMap::from([
            ("o/a.yaml".to_string(), file("a")),
            ("o/b.yaml".to_string(), file("b2")),
            ("o/c.yaml".to_string(), file("c")),
            ("o/x.yaml".to_string(), file("x")),
        ]);
        let current = BTreeMap::from([
            (
                "o/b.yaml".to_string(),
                CurrentEntry {
                    id: blob_id(kind, b"b1"),
                    regular_file: true,
                },
            ),
            (
                "o/c.yaml".to_string(),
                CurrentEntry {
                    id: blob_id(kind, b"c"),
                    regular_file: true,
                },
            ),
            (
                "o/x.yaml".to_string(),
                CurrentEntry {
                    id: blob_id(kind, b"x"),
                    regular_file: false,
                },
            ),
            (
                "o/stale.yaml".to_string(),
                CurrentEntry {
                    id: blob_id(kind, b"s"),
                    regular_file: true,
                },
            ),
        ]);
        let p = plan(&desired, &current, kind);
        assert_eq!(p.added, ["o/a.yaml"]);
        assert_eq!(p.changed, ["o/b.yaml", "o/x.yaml"]);
        assert_eq!(p.removed, ["o/stale.yaml"]);
        assert!(!p.is_empty());
        let same: BTreeMap<String, CurrentEntry> = desired
            .iter()
            .map(|(k, f)| {
                (
                    k.clone(),
                    CurrentEntry {
                        id: blob_id(kind, &f.data),
                        regular_file: true,
                    },
                )
            })
            .collect();
        assert!(plan(&desired, &same, kind).is_empty());
    }
}

//! Provenance: does a live object come from the cluster's path in a verified revision, unchanged, and which
//! commit introduced it (the **intent commit**)?
//!
//! [`ProvenanceIndex::build`] reads and parses every manifest under the cluster path of one revision once;
//! [`ProvenanceIndex::lookup`] then answers per object:
//! - [`Provenance::Match`]: the live spec equals the manifest's (compared as the typed spec, so API-server
//!   defaults such as `mode: managed` are not differences) and so do the `*.vworkspace.io/*` labels and
//!   annotations (the capability and pause annotations are security-relevant). It names the intent commit:
//!   the newest commit at or before the revision where that object's document last changed (not merely its
//!   file: editing another document of a multi-document file does not move it).
//! - [`Provenance::Mismatch`]: the object is in Git but differs; the differing field paths are named (never
//!   their values, which may be secret).
//! - [`Provenance::NotInGit`]: no manifest for this object under the cluster path.
//!
//! A document is identified by its file and its Kind/namespace/name; moving a document to another file
//! counts as a change made by the commit that moved it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use serde_json::Value;

use super::repo::{Repo, RepoError};
use crate::api::{ApplicationInstanceSpec, OperationSpec};
use crate::intent::{self, IntentKind, ObjectKey, Problem, SourceFile};

/// Errors building or querying the index (reading the repository). Verdicts are not errors.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("provenance of {object} at {revision}: {source}")]
    Walk {
        object: String,
        revision: String,
        source: RepoError,
    },
    #[error("provenance index of {path} at {revision}: {source}")]
    Read {
        path: String,
        revision: String,
        source: RepoError,
    },
}

/// The live object to check, as the API server returns it.
#[derive(Debug, Clone, Copy)]
pub struct LiveObject<'a> {
    pub kind: IntentKind,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object's `spec` as JSON.
    pub spec: &'a Value,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

/// The verdict for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// The object equals its manifest at `path` (`file` or `file#N` in a multi-document file).
    Match {
        intent_commit: ObjectId,
        path: String,
    },
    /// The object differs from its manifest at `path`; `fields` names each difference, e.g. `spec.chart.version`,
    /// `metadata.annotations["ops.vworkspace.io/backup"]`.
    Mismatch { path: String, fields: Vec<String> },
    /// No manifest for the object under the cluster path.
    NotInGit,
}

/// The typed spec of an intent, compared after deserializing (defaults applied, unknown fields dropped).
#[derive(Debug, Clone, PartialEq)]
enum TypedSpec {
    App(Box<ApplicationInstanceSpec>),
    Op(Box<OperationSpec>),
}

impl TypedSpec {
    fn parse(kind: IntentKind, spec: &Value) -> Result<Self, String> {
        let field = |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            let path = if path == "." {
                "spec".to_string()
            } else {
                format!("spec.{path}")
            };
            format!("{path}: {}", e.into_inner())
        };
        Ok(match kind {
            IntentKind::ApplicationInstance => Self::App(Box::new(
                serde_path_to_error::deserialize(spec).map_err(field)?,
            )),
            IntentKind::Operation => Self::Op(Box::new(
                serde_path_to_error::deserialize(spec).map_err(field)?,
            )),
        })
    }

    fn to_value(&self) -> Value {
        match self {
            Self::App(s) => serde_json::to_value(s),
            Self::Op(s) => serde_json::to_value(s),
        }
        .unwrap_or(Value::Null)
    }
}

/// Whether a label or annotation key belongs to the vworkspace API (`*.vworkspace.io/*`).
pub fn is_vworkspace_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((domain, _)) => domain == "vworkspace.io" || domain.ends_with(".vworkspace.io"),
        None => false,
    }
}

fn vworkspace_map(meta: Option<&Value>, field: &str) -> BTreeMap<String, String> {
    meta.and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| is_vworkspace_key(k))
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

struct IndexedDoc {
    file: String,
    location: String,
    spec: Result<TypedSpec, String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// Set when the object is defined more than once under the path.
    duplicate: Option<String>,
}

/// Each document of a file blob by object, as a digest of its content ([`doc_digest`]): equal documents have
/// equal digests, and a digest is 32 bytes where the parsed document is kilobytes.
type DocsByKey = HashMap<ObjectKey, [u8; 32]>;

/// The manifests under a cluster path at one revision, indexed by object, with memoized intent commits.
pub struct ProvenanceIndex {
    revision: ObjectId,
    path: String,
    docs: HashMap<ObjectKey, IndexedDoc>,
    problems: Vec<Problem>,
    intent_commits: Mutex<HashMap<ObjectKey, ObjectId>>,
    /// Intent commits known at an earlier revision (from [`ProvenanceIndex::build_after`]).
    previous: Option<(ObjectId, HashMap<ObjectKey, ObjectId>)>,
    cache: Arc<WalkCache>,
}

/// Caches keyed by immutable object ids, so they stay valid across revisions. The cache of a revision built
/// with [`ProvenanceIndex::build_after`] starts empty and looks up what it misses in the previous revision's,
/// keeping what it finds; the revision before that is let go. So it holds what the walks of two revisions use,
/// however many revisions the operator sees (it once kept every file version's documents, and grew with each
/// commit).
#[derive(Default)]
struct WalkCache {
    /// commit → (tree, parents)
    commits: Mutex<HashMap<ObjectId, (ObjectId, Vec<ObjectId>)>>,
    /// (tree, entry name) → entry id
    children: Mutex<HashMap<(ObjectId, String), Option<ObjectId>>>,
    /// file blob → its intent documents' digests
    blobs: Mutex<HashMap<ObjectId, Arc<DocsByKey>>>,
    /// The previous revision's cache, until the next revision's is made.
    older: Mutex<Option<Arc<WalkCache>>>,
}

impl WalkCache {
    /// The cache of the revision after `previous`'s: `previous` is its older generation, and the generation
    /// before `previous` is dropped.
    fn after(previous: &Arc<WalkCache>) -> Self {
        lock(&previous.older).take();
        Self {
            older: Mutex::new(Some(previous.clone())),
            ..Self::default()
        }
    }

    /// The entry of `key` in the map `pick` chooses: this generation's, or the older one's (copied here).
    fn get<K, V>(&self, pick: fn(&WalkCache) -> &Mutex<HashMap<K, V>>, key: &K) -> Option<V>
    where
        K: Eq + std::hash::Hash + Clone,
        V: Clone,
    {
        if let Some(v) = lock(pick(self)).get(key) {
            return Some(v.clone());
        }
        let older = lock(&self.older).clone()?;
        let v = lock(pick(&older)).get(key).cloned()?;
        lock(pick(self)).insert(key.clone(), v.clone());
        Some(v)
    }

    /// Entries held, in both generations.
    fn len(&self) -> usize {
        let own =
            |c: &WalkCache| lock(&c.commits).len() + lock(&c.children).len() + lock(&c.blobs).len();
        own(self) + lock(&self.older).as_deref().map_or(0, own)
    }
}

/// A digest of a document's content: SHA-256 over a canonical encoding (object members in key order, each
/// value tagged with its type and length), so two documents have the same digest exactly when they are equal
/// as JSON values (member order does not count, as for `Value`'s equality).
fn doc_digest(value: &Value) -> [u8; 32] {
    use sha2::Digest;
    fn feed(h: &mut sha2::Sha256, v: &Value) {
        let bytes = |h: &mut sha2::Sha256, tag: u8, b: &[u8]| {
            h.update([tag]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        match v {
            Value::Null => h.update([0]),
            Value::Bool(b) => h.update([1, u8::from(*b)]),
            Value::Number(n) => bytes(h, 2, n.to_string().as_bytes()),
            Value::String(s) => bytes(h, 3, s.as_bytes()),
            Value::Array(items) => {
                h.update([4]);
                h.update((items.len() as u64).to_be_bytes());
                for item in items {
                    feed(h, item);
                }
            }
            Value::Object(map) => {
                h.update([5]);
                h.update((map.len() as u64).to_be_bytes());
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    bytes(h, 3, k.as_bytes());
                    feed(h, &map[k.as_str()]);
                }
            }
        }
    }
    let mut h = sha2::Sha256::new();
    feed(&mut h, value);
    h.finalize().into()
}

impl std::fmt::Debug for ProvenanceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceIndex")
            .field("revision", &self.revision)
            .field("path", &self.path)
            .field("objects", &self.docs.len())
            .finish_non_exhaustive()
    }
}

impl ProvenanceIndex {
    /// Read every manifest at or below `path` (e.g. `clusters/<cluster-id>`) in the tree of `revision`.
    pub fn build(repo: &Repo, revision: ObjectId, path: &str) -> Result<Self, ProvenanceError> {
        Self::build_inner(repo, revision, path, None, Arc::default())
    }

    /// Entries the index's walk caches hold (commits, tree entries, file blobs; this revision's and the
    /// previous one's).
    pub fn cache_entries(&self) -> usize {
        self.cache.len()
    }

    /// Like [`Self::build`], reusing what `previous` (an index of an earlier revision of the same repository
    /// and path) already knows: a history walk that reaches `previous`'s revision stops there and takes
    /// its answer, so after a fetch only the new commits are walked.
    pub fn build_after(
        repo: &Repo,
        revision: ObjectId,
        path: &str,
        previous: &ProvenanceIndex,
    ) -> Result<Self, ProvenanceError> {
        let known = lock(&previous.intent_commits).clone();
        let cache = Arc::new(WalkCache::after(&previous.cache));
        Self::build_inner(
            repo,
            revision,
            path,
            Some((previous.revision, known)),
            cache,
        )
    }

    fn build_inner(
        repo: &Repo,
        revision: ObjectId,
        path: &str,
        previous: Option<(ObjectId, HashMap<ObjectKey, ObjectId>)>,
        cache: Arc<WalkCache>,
    ) -> Result<Self, ProvenanceError> {
        let path = path.trim_matches('/').to_string();
        let files = repo
            .read_files(revision, &path, &intent::is_manifest_path)
            .map_err(|source| ProvenanceError::Read {
                path: path.clone(),
                revision: revision.to_string(),
                source,
            })?;
        let files: Vec<SourceFile> = files
            .into_iter()
            .map(|f| SourceFile {
                path: f.path,
                data: f.data,
            })
            .collect();
        let (parsed, problems) = intent::parse_files(&files);
        let mut docs = HashMap::new();
        for doc in parsed {
            let file = doc
                .location
                .rsplit_once('#')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(doc.location.as_str(), |(f, _)| f)
                .to_string();
            let meta = doc.value.get("metadata");
            let spec =
                TypedSpec::parse(doc.key.kind, doc.value.get("spec").unwrap_or(&Value::Null));
            docs.insert(
                doc.key.clone(),
                IndexedDoc {
                    file,
                    location: doc.location.clone(),
                    spec,
                    labels: vworkspace_map(meta, "labels"),
                    annotations: vworkspace_map(meta, "annotations"),
                    duplicate: None,
                },
            );
        }
        for p in problems
            .iter()
            .filter(|p| p.reason.starts_with("duplicate:"))
        {
            if let Some((_, d)) = docs.iter_mut().find(|(k, _)| k.to_string() == p.object) {
                d.duplicate = Some(p.path.clone());
            }
        }
        Ok(Self {
            revision,
            path,
            docs,
            problems,
            intent_commits: Mutex::new(HashMap::new()),
            previous,
            cache,
        })
    }

    /// The revision indexed.
    pub fn revision(&self) -> ObjectId {
        self.revision
    }

    /// Files under the path that could not be read as intents (invalid YAML, duplicates, …).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// How many intent objects the revision defines under the path.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether the revision defines this object (whatever its content).
    pub fn defines(&self, kind: IntentKind, namespace: &str, name: &str) -> bool {
        self.docs.contains_key(&ObjectKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Check one live object against the index. `repo` must be the repository the index was built from.
    pub fn lookup(
        &self,
        repo: &Repo,
        live: &LiveObject<'_>,
    ) -> Result<Provenance, ProvenanceError> {
        let key = ObjectKey {
            kind: live.kind,
            namespace: live.namespace.to_string(),
            name: live.name.to_string(),
        };
        let Some(doc) = self.docs.get(&key) else {
            return Ok(Provenance::NotInGit);
        };
        let mut fields = Vec::new();
        if let Some(other) = &doc.duplicate {
            fields.push(format!(
                "metadata.name (the object is defined more than once in Git, also at {other})"
            ));
        }
        match (&doc.spec, TypedSpec::parse(live.kind, live.spec)) {
            (Err(e), _) => fields.push(format!("{e} (invalid in Git)")),
            (_, Err(e)) => fields.push(format!("{e} (invalid in the live object)")),
            (Ok(git), Ok(live)) => {
                if *git != live {
                    diff_values("spec", &git.to_value(), &live.to_value(), &mut fields);
                    if fields.is_empty() {
                        fields.push("spec".into());
                    }
                }
            }
        }
        diff_maps("metadata.labels", &doc.labels, live.labels, &mut fields);
        diff_maps(
            "metadata.annotations",
            &doc.annotations,
            live.annotations,
            &mut fields,
        );
        if !fields.is_empty() {
            return Ok(Provenance::Mismatch {
                path: doc.location.clone(),
                fields,
            });
        }
        let intent_commit = self.intent_commit(repo, &key, &doc.file)?;
        Ok(Provenance::Match {
            intent_commit,
            path: doc.location.clone(),
        })
    }

    /// The newest commit at or before the revision where the object's document (in `file`) last changed.
    /// Walks history as `git log` simplifies it: from a commit whose document equals a parent's, follow
    /// that parent; the first commit whose document differs from every parent's is the intent commit.
    fn intent_commit(
        &self,
        repo: &Repo,
        key: &ObjectKey,
        file: &str,
    ) -> Result<ObjectId, ProvenanceError> {
        if let Some(c) = lock(&self.intent_commits).get(key) {
            return Ok(*c);
        }
        let walk_err = |source| ProvenanceError::Walk {
            object: key.to_string(),
            revision: self.revision.to_string(),
            source,
        };
        let known = self
            .previous
            .as_ref()
            .and_then(|(rev, known)| Some((*rev, *known.get(key)?)));
        let mut commit = self.revision;
        loop {
            if let Some((rev, intent)) = known
                && rev == commit
            {
                // The document is unchanged from here to the revision: the earlier answer holds.
                commit = intent;
                break;
            }
            let blob = self.entry(repo, commit, file).map_err(walk_err)?;
            let parents = self.commit(repo, commit).map_err(walk_err)?.1;
            let mut next = None;
            for p in &parents {
                if self.entry(repo, *p, file).map_err(walk_err)? == blob {
                    next = Some(*p); // the file is identical, so is the document
                    break;
                }
            }
            if next.is_none() && !parents.is_empty() {
                let here = self.doc(repo, blob, file, key).map_err(walk_err)?;
                for p in &parents {
                    let pblob = self.entry(repo, *p, file).map_err(walk_err)?;
                    if self.doc(repo, pblob, file, key).map_err(walk_err)? == here {
                        next = Some(*p);
                        break;
                    }
                }
            }
            match next {
                Some(p) => commit = p,
                None => break,
            }
        }
        lock(&self.intent_commits).insert(key.clone(), commit);
        Ok(commit)
    }

    fn commit(
        &self,
        repo: &Repo,
        commit: ObjectId,
    ) -> Result<(ObjectId, Vec<ObjectId>), RepoError> {
        if let Some(v) = self.cache.get(|c| &c.commits, &commit) {
            return Ok(v);
        }
        let v = repo.commit_tree_and_parents(commit)?;
        lock(&self.cache.commits).insert(commit, v.clone());
        Ok(v)
    }

    /// The blob at `file` in `commit`, resolved one path component at a time through a cache keyed by tree
    /// id: unchanged subtrees are shared between commits, so most steps of a walk are hash lookups.
    fn entry(
        &self,
        repo: &Repo,
        commit: ObjectId,
        file: &str,
    ) -> Result<Option<ObjectId>, RepoError> {
        let mut id = self.commit(repo, commit)?.0;
        for name in file.split('/') {
            let k = (id, name.to_string());
            let cached = self.cache.get(|c| &c.children, &k);
            let child = match cached {
                Some(c) => c,
                None => {
                    let c = repo.tree_entry(id, name)?;
                    lock(&self.cache.children).insert(k, c);
                    c
                }
            };
            match child {
                Some(c) => id = c,
                None => return Ok(None),
            }
        }
        Ok(Some(id))
    }

    /// The digest of the document of `key` in the file blob `blob` (parsed once per blob).
    fn doc(
        &self,
        repo: &Repo,
        blob: Option<ObjectId>,
        file: &str,
        key: &ObjectKey,
    ) -> Result<Option<[u8; 32]>, RepoError> {
        let Some(blob) = blob else { return Ok(None) };
        let cached = self.cache.get(|c| &c.blobs, &blob);
        let docs = match cached {
            Some(d) => d,
            None => {
                // A path that is a directory (or anything but a blob) in that commit holds no document.
                let data = match repo.blob(blob) {
                    Ok(d) => d,
                    Err(RepoError::Object { .. }) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let (parsed, _) = intent::parse_file(file, &data);
                let map: DocsByKey = parsed
                    .into_iter()
                    .map(|d| (d.key, doc_digest(&d.value)))
                    .collect();
                let map = Arc::new(map);
                lock(&self.cache.blobs).insert(blob, map.clone());
                map
            }
        };
        Ok(docs.get(key).copied())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Field paths where `a` and `b` differ (objects recursively; arrays and scalars as a whole).
fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k.as_str()).unwrap_or(&Value::Null),
                    y.get(k.as_str()).unwrap_or(&Value::Null),
                );
                if va != vb {
                    diff_values(&format!("{path}.{k}"), va, vb, out);
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

fn diff_maps(
    path: &str,
    git: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    let keys: BTreeSet<&String> = git
        .keys()
        .chain(live.keys().filter(|k| is_vworkspace_key(k)))
        .collect();
    for k in keys {
        if git.get(k) != live.get(k) {
            out.push(format!("{path}[{k:?}]"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vworkspace_keys() {
        assert!(is_vworkspace_key("app.vworkspace.io/cluster-id"));
        assert!(is_vworkspace_key("ops.vworkspace.io/backup"));
        assert!(is_vworkspace_key("vworkspace.io/x"));
        assert!(!is_vworkspace_key("evilvworkspace.io/x"));
        assert!(!is_vworkspace_key(
            "kubectl.kubernetes.io/last-applied-configuration"
        ));
        assert!(!is_vworkspace_key("managed-by"));
    }

    #[test]
    fn diffs_name_fields_not_values() {
        let mut out = Vec::new();
        diff_values(
            "spec",
            &json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"}),
            &json!({"a": {"b": 1, "c": 3}, "d": [2], "f": "secret"}),
            &mut out,
        );
        assert_eq!(out, vec!["spec.a.c", "spec.d", "spec.e", "spec.f"]);
        let mut out = Vec::new();
        let git = BTreeMap::from([("ops.vworkspace.io/backup".to_string(), "velero".to_string())]);
        let live = BTreeMap::from([
            ("ops.vworkspace.io/backup".to_string(), "velero".to_string()),
            (
                "apps.vworkspace.io/reconcile".to_string(),
                "disabled".to_string(),
            ),
            ("other.io/x".to_string(), "y".to_string()),
        ]);
        diff_maps("metadata.annotations", &git, &live, &mut out);
        assert_eq!(
            out,
            vec!["metadata.annotations[\"apps.vworkspace.io/reconcile\"]"]
        );
    }

    #[test]
    fn document_digests_are_equal_exactly_when_the_documents_are() {
        let a = json!({"spec": {"a": [1, "x", null, true], "b": {"c": 1.5}}, "kind": "K"});
        let reordered = json!({"kind": "K", "spec": {"b": {"c": 1.5}, "a": [1, "x", null, true]}});
        assert_eq!(a, reordered);
        assert_eq!(doc_digest(&a), doc_digest(&reordered));
        for other in [
            json!({"spec": {"a": [1, "x", null, false], "b": {"c": 1.5}}, "kind": "K"}),
            json!({"spec": {"a": ["x", 1, null, true], "b": {"c": 1.5}}, "kind": "K"}),
            json!({"spec": {"a": [1, "x", null, true], "b": {"c": 1.5}}, "kind": "K2"}),
            json!({"spec": {"a": [1, "x", null, true], "b": {"c": "1.5"}}, "kind": "K"}),
            json!({"spec": {"a": [1, "x", null, true], "b": {"c": 1.5, "d": null}}, "kind": "K"}),
            json!({"spec": {"a": [1, "x", null, true], "bc": {}}, "kind": "K"}),
        ] {
            assert_ne!(a, other);
            assert_ne!(doc_digest(&a), doc_digest(&other), "{other}");
        }
        // Framed: a string's bytes cannot pass for the next member.
        assert_ne!(
            doc_digest(&json!({"a": "b", "c": "d"})),
            doc_digest(&json!({"a": "bc", "": "d"}))
        );
        assert_ne!(doc_digest(&json!(1)), doc_digest(&json!(1.0)));
        assert_ne!(json!(1), json!(1.0));
    }

    #[test]
    fn typed_comparison_ignores_defaults() {
        let git = json!({"appRef": {"catalogId": "nextcloud"}, "chart": {"sourceType": "oci", "url": "oci://r/c", "name": "c", "version": "1.0.0"}});
        let mut live = git.clone();
        live["mode"] = json!("managed");
        let a = TypedSpec::parse(IntentKind::ApplicationInstance, &git).unwrap();
        let b = TypedSpec::parse(IntentKind::ApplicationInstance, &live).unwrap();
        assert_eq!(a, b);
        let e =
            TypedSpec::parse(IntentKind::ApplicationInstance, &json!({"chart": 1})).unwrap_err();
        assert!(e.starts_with("spec"), "{e}");
    }
}

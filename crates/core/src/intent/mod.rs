//! Intent manifests: finding ApplicationInstance and Operation documents in YAML files, and the problem
//! type every validation step reports (`path: Kind/namespace/name: field: reason`).
//!
//! Pure: parsing works on bytes. Loading from a directory or a git revision is in [`source`].

pub mod source;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{ApplicationInstance, Operation};

pub const APPS_API_VERSION: &str = "apps.vworkspace.io/v1alpha1";
pub const OPS_API_VERSION: &str = "ops.vworkspace.io/v1alpha1";

/// The intent kinds the operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntentKind {
    ApplicationInstance,
    Operation,
}

impl IntentKind {
    /// A spec as the typed API reads it and writes it back (defaults filled in): the form provenance compares
    /// and digests, so that API-server defaults are not differences. The error names the field.
    pub fn typed_spec(self, spec: &serde_json::Value) -> Result<serde_json::Value, String> {
        let typed = match self {
            Self::ApplicationInstance => serde_path_to_error::deserialize::<
                _,
                crate::api::ApplicationInstanceSpec,
            >(spec.clone())
            .map(|s| serde_json::to_value(s).unwrap_or_default()),
            Self::Operation => {
                serde_path_to_error::deserialize::<_, crate::api::OperationSpec>(spec.clone())
                    .map(|s| serde_json::to_value(s).unwrap_or_default())
            }
        };
        typed.map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApplicationInstance => "ApplicationInstance",
            Self::Operation => "Operation",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Self::ApplicationInstance => APPS_API_VERSION,
            Self::Operation => OPS_API_VERSION,
        }
    }

    /// The kind named by an apiVersion/kind pair, if it is an intent kind.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Self> {
        match (api_version, kind) {
            (APPS_API_VERSION, "ApplicationInstance") => Some(Self::ApplicationInstance),
            (OPS_API_VERSION, "Operation") => Some(Self::Operation),
            _ => None,
        }
    }
}

impl fmt::Display for IntentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Kind/namespace/name`: how objects are named in every message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: IntentKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// One problem with one intent: where it is, which object, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file (and document index when the file holds several), or `-` when there is no file.
    pub path: String,
    /// `Kind/namespace/name`, or empty when the document could not be identified.
    pub object: String,
    /// The field path, e.g. `spec.chart.sourceType`; empty for the document as a whole.
    pub field: String,
    pub reason: String,
}

impl Problem {
    pub fn new(
        path: impl Into<String>,
        object: impl fmt::Display,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            object: object.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        if !self.object.is_empty() {
            write!(f, "{}: ", self.object)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// An intent document as found in a file, not yet validated.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDoc {
    /// Where it came from: `path` or `path#N` for the N-th document (from 0) of a multi-document file.
    pub location: String,
    pub key: ObjectKey,
    /// The document as written.
    pub value: Value,
}

impl IntentDoc {
    /// Deserialize into a typed object, naming the failing field.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| {
            let field = e.path().to_string();
            Problem::new(
                &self.location,
                &self.key,
                if field == "." { String::new() } else { field },
                e.into_inner().to_string(),
            )
        })
    }

    pub fn application_instance(&self) -> Result<ApplicationInstance, Problem> {
        self.typed()
    }

    pub fn operation(&self) -> Result<Operation, Problem> {
        self.typed()
    }
}

/// Largest manifest file read (bytes); larger files are reported, not parsed.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Find the intent documents in one YAML file. Documents of other kinds (Namespaces, Kustomizations, …) are
/// not intents and are passed over; a file that is not valid YAML, or an intent document without a
/// name or namespace, is a problem.
pub fn parse_file(path: &str, data: &[u8]) -> (Vec<IntentDoc>, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    if data.len() > MAX_MANIFEST_BYTES {
        problems.push(Problem::new(
            path,
            "",
            "",
            format!(
                "file is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                data.len()
            ),
        ));
        return (docs, problems);
    }
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(path, "", "", format!("not UTF-8: {e}")));
            return (docs, problems);
        }
    };
    let values: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(path, "", "", format!("invalid YAML: {e}")));
            return (docs, problems);
        }
    };
    let many = values.iter().filter(|v| !v.is_null()).count() > 1;
    for (index, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let location = if many {
            format!("{path}#{index}")
        } else {
            path.to_string()
        };
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(kind) = IntentKind::from_type(api_version, kind) else {
            if kind == "ApplicationInstance" || kind == "Operation" {
                problems.push(Problem::new(
                    &location,
                    kind,
                    "apiVersion",
                    format!("unsupported apiVersion {api_version:?} for {kind}"),
                ));
            }
            continue;
        };
        let meta = |field: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (name, namespace) = (meta("name"), meta("namespace"));
        let mut missing = false;
        for (field, v) in [("metadata.name", &name), ("metadata.namespace", &namespace)] {
            if v.is_empty() {
                problems.push(Problem::new(&location, kind, field, "required"));
                missing = true;
            }
        }
        if missing {
            continue;
        }
        docs.push(IntentDoc {
            location,
            key: ObjectKey {
                kind,
                namespace,
                name,
            },
            value,
        });
    }
    (docs, problems)
}

/// A manifest file's bytes with its path.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// Whether a path names a YAML manifest.
pub fn is_manifest_path(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// A manifest path must not carry a control or bidirectional-formatting character
/// ([`crate::escape::is_hostile`]): such a name could forge lines in `render`'s output, in a review diff or
/// on a terminal. The error names the path (escaped) and the character.
pub fn check_path(path: &str) -> Result<(), Problem> {
    match crate::escape::first_hostile(path) {
        None => Ok(()),
        Some(c) => Err(Problem::new(
            crate::escape::one_line(path),
            "",
            "",
            format!(
                "refused: the path contains the control or bidirectional character U+{:04X}; rename the file",
                c as u32
            ),
        )),
    }
}

/// Parse all manifest files; report duplicate objects (the same Kind/namespace/name twice) as problems.
/// A file whose path has a control or bidirectional character is refused ([`check_path`]), not read.
pub fn parse_files(files: &[SourceFile]) -> (Vec<IntentDoc>, Vec<Problem>) {
    let mut docs: Vec<IntentDoc> = Vec::new();
    let mut problems = Vec::new();
    let manifests: Vec<&SourceFile> = files.iter().filter(|f| is_manifest_path(&f.path)).collect();
    let parsed = crate::par::map(&manifests, |file| match check_path(&file.path) {
        Err(p) => (Vec::new(), vec![p]),
        Ok(()) => parse_file(&file.path, &file.data),
    });
    for (d, p) in parsed {
        docs.extend(d);
        problems.extend(p);
    }
    docs.sort_by(|a, b| a.key.cmp(&b.key).then(a.location.cmp(&b.location)));
    let mut unique: Vec<IntentDoc> = Vec::with_capacity(docs.len());
    for doc in docs {
        match unique.last() {
            Some(prev) if prev.key == doc.key => problems.push(Problem::new(
                &doc.location,
                &doc.key,
                "metadata.name",
                format!(
                    "duplicate: the same object is also defined in {}",
                    prev.location
                ),
            )),
            _ => unique.push(doc),
        }
    }
    (unique, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_intents_in_multi_document_files_and_passes_over_other_kinds() {
        let yaml = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata: {name: x, namespace: a}\nspec: {}\n";
        let (docs, problems) = parse_file("f.yaml", yaml);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].location, "f.yaml#1");
        assert_eq!(docs[0].key.to_string(), "ApplicationInstance/a/x");
    }

    #[test]
    fn invalid_yaml_and_missing_names_are_problems() {
        let (_, p) = parse_file("bad.yaml", b"a: [unclosed");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].to_string().starts_with("bad.yaml: invalid YAML"),
            "{}",
            p[0]
        );
        let (_, p) = parse_file(
            "n.yaml",
            b"apiVersion: ops.vworkspace.io/v1alpha1\nkind: Operation\nmetadata: {name: x}\n",
        );
        assert_eq!(
            p[0].to_string(),
            "n.yaml: Operation: metadata.namespace: required"
        );
    }

    #[test]
    fn duplicates_are_reported() {
        let doc = b"apiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata: {name: x, namespace: a}\n".to_vec();
        let files = vec![
            SourceFile {
                path: "a.yaml".into(),
                data: doc.clone(),
            },
            SourceFile {
                path: "b.yaml".into(),
                data: doc,
            },
        ];
        let (docs, problems) = parse_files(&files);
        assert_eq!(docs.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "b.yaml: ApplicationInstance/a/x: metadata.name: duplicate: the same object is also defined in a.yaml"
        );
    }
}

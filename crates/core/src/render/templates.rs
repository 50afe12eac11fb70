//! The template set: embedded defaults plus an optional override directory.

use std::collections::BTreeMap;
use std::path::Path;

use super::RenderError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// Largest template file accepted from an override directory.
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;

/// Template name of the HelmRelease rendered for an ApplicationInstance.
pub const HELM_RELEASE: &str = "application/helmrelease.yaml.j2";
/// Template name of the OCIRepository chart source.
pub const SOURCE_OCI: &str = "application/source-oci.yaml.j2";
/// Template name of the HelmRepository chart source.
pub const SOURCE_HELM: &str = "application/source-helm.yaml.j2";
/// Template name of the Argo CD Application rendered for an ApplicationInstance (`--engine argocd`).
pub const ARGOCD_APPLICATION: &str = "application/argocd-application.yaml.j2";
/// Template name of the AppProject an ApplicationInstance's Application runs under (`--engine argocd`).
pub const ARGOCD_PROJECT: &str = "application/argocd-appproject.yaml.j2";

/// The integration-values template of a catalog entry.
pub fn catalog_values(catalog_id: &str) -> String {
    format!("catalog/{catalog_id}/values.yaml.j2")
}

/// The template of an Operation, by template key (`backup.velero`).
pub fn operation_template(key: &str) -> String {
    format!("operation/{key}.yaml.j2")
}

/// The spec (parameter schema, approval rule, allowed child kinds) of an Operation template.
pub fn operation_spec(key: &str) -> String {
    format!("operation/{key}.spec.yaml")
}

/// Template sources by name (a path relative to the templates directory, `/`-separated).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    files: BTreeMap<String, String>,
}

impl Templates {
    /// The templates built into the binary (the project's `templates/` directory).
    pub fn embedded() -> Self {
        Self {
            files: embedded::EMBEDDED
                .iter()
                .filter(|(name, _)| !name.ends_with(".md"))
                .map(|(name, src)| (name.to_string(), src.to_string()))
                .collect(),
        }
    }

    /// The embedded templates with every file found under `dir` replacing (or adding to) them.
    pub fn with_overrides(dir: &Path) -> Result<Self, RenderError> {
        let mut templates = Self::embedded();
        templates.overlay(dir, dir)?;
        Ok(templates)
    }

    fn overlay(&mut self, root: &Path, dir: &Path) -> Result<(), RenderError> {
        let io = |path: &Path, e: std::io::Error| RenderError::TemplateDir {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io(dir, e))?;
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| io(&path, e))?;
            if ft.is_dir() {
                self.overlay(root, &path)?;
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with('.') || rel.contains("/.") || rel.ends_with(".md") {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if meta.len() > MAX_TEMPLATE_BYTES as u64 {
                return Err(RenderError::TemplateDir {
                    path: path.display().to_string(),
                    reason: format!(
                        "{} bytes, over the {MAX_TEMPLATE_BYTES}-byte limit",
                        meta.len()
                    ),
                });
            }
            let src = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            self.files.insert(rel, src);
        }
        Ok(())
    }

    /// Add or replace one template (tests, ConfigMap overrides).
    pub fn insert(&mut self, name: impl Into<String>, source: impl Into<String>) {
        self.files.insert(name.into(), source.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// All template names with their sources.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The Operation template keys (`backup.velero`, …) that have both a template and a spec.
    pub fn operation_keys(&self) -> Vec<String> {
        self.files
            .keys()
            .filter_map(|k| k.strip_prefix("operation/")?.strip_suffix(".spec.yaml"))
            .filter(|key| self.contains(&operation_template(key)))
            .map(str::to_string)
            .collect()
    }
}

//! The operator's Helm chart (`charts/vworkspace-operator`) as `helm template` renders it, and the values
//! `flux/operator.yaml` gives it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::manifests::yaml_docs;
use super::testbed::{bin, project_root};

pub const RELEASE: &str = "vworkspace-operator";
pub const NAMESPACE: &str = "vworkspace-system";

pub fn chart_dir() -> PathBuf {
    project_root().join("charts/vworkspace-operator")
}

/// The HelmRelease of `flux/operator.yaml`.
pub fn flux_helm_release() -> Value {
    yaml_docs(&project_root().join("flux/operator.yaml"))
        .into_iter()
        .find(|o| o["kind"] == "HelmRelease")
        .expect("flux/operator.yaml has a HelmRelease")
}

/// The values `flux/operator.yaml` installs the chart with.
pub fn flux_values() -> Value {
    flux_helm_release()["spec"]["values"].clone()
}

/// Run the test bed's helm with a scratch home; returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bin("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `helm template` of the chart with these values (CRDs included), or helm's error.
pub fn try_template(values: &Value) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, values.to_string()).unwrap();
    let chart = chart_dir().display().to_string();
    let (ok, stdout, stderr) = helm(&[
        "template",
        RELEASE,
        &chart,
        "--namespace",
        NAMESPACE,
        "--include-crds",
        "--values",
        &file.display().to_string(),
    ]);
    if !ok {
        return Err(stderr);
    }
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, stdout).unwrap();
    Ok(yaml_docs(&rendered))
}

/// `helm template` of the chart with these values; panics with helm's error.
pub fn template(values: &Value) -> Vec<Value> {
    try_template(values).unwrap_or_else(|e| panic!("helm template: {e}"))
}

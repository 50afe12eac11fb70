//! The deploy manifests as kustomize would build them, for the tests that install them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The kustomization file of a directory (kustomize accepts these names).
fn kustomization_file(dir: &Path) -> PathBuf {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} has no kustomization file", dir.display()))
}

/// A minimal `kustomize build` for what our kustomizations use: `resources` (files, and directories with
/// their own kustomization) and `images`. Any other field fails the test, so this reader cannot silently
/// diverge from real kustomize. Returns the objects and every file read.
pub fn build(dir: &Path) -> (Vec<Value>, Vec<PathBuf>) {
    let kfile = kustomization_file(dir);
    let k = yaml_docs(&kfile).remove(0);
    let known: BTreeSet<&str> = ["apiVersion", "kind", "resources", "images"].into();
    for key in k.as_object().unwrap().keys() {
        assert!(
            known.contains(key.as_str()),
            "{}: field {key} is not understood by this test's reader",
            kfile.display()
        );
    }
    assert_eq!(k["kind"], "Kustomization");
    let mut objects = Vec::new();
    let mut files = vec![kfile.clone()];
    for res in k["resources"].as_array().expect("resources") {
        let path = dir.join(res.as_str().unwrap());
        if path.is_dir() {
            let (o, f) = build(&path);
            objects.extend(o);
            files.extend(f);
        } else {
            objects.extend(yaml_docs(&path));
            files.push(path);
        }
    }
    for image in k["images"].as_array().into_iter().flatten() {
        let name = image["name"].as_str().unwrap();
        let new = format!(
            "{}:{}",
            image["newName"].as_str().unwrap_or(name),
            image["newTag"].as_str().expect("newTag")
        );
        for obj in &mut objects {
            if let Some(containers) = obj
                .pointer_mut("/spec/template/spec/containers")
                .and_then(Value::as_array_mut)
            {
                for c in containers {
                    if c["image"] == name {
                        c["image"] = Value::String(new.clone());
                    }
                }
            }
        }
    }
    (objects, files)
}

/// ApplicationInstance `app-{i}` of the nextcloud chart at `version` in `ns`, for `cluster`, with `inline` (flow
/// YAML, e.g. `{replicaCount: 1}`) as its inline values: the intent the benches and fault tests make by the
/// hundred.
pub fn nextcloud_app(cluster: &str, ns: &str, i: usize, version: &str, inline: &str) -> String {
    format!(
        r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: app-{i}
  namespace: {ns}
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: {cluster}
spec:
  appRef: {{catalogId: nextcloud}}
  chart: {{sourceType: oci, url: "oci://ghcr.io/nextcloud/helm", name: nextcloud, version: {version}}}
  release: {{name: app-{i}, namespace: {ns}}}
  values: {{source: inline, inline: {inline}}}
"#
    )
}

//! A real kube-apiserver + etcd on loopback (../shared/envtest/kube-envtest), started once per test binary
//! and stopped when the test process exits. Set `VWO_TEST_KUBECONFIG` to run against another cluster (kind,
//! k3d) instead; the tests then create and delete their own namespaces there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::Value;

pub struct ApiServer {
    pub kubeconfig: PathBuf,
}

static SERVER: OnceLock<ApiServer> = OnceLock::new();

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The envtest script from the shared folder beside the project.
pub fn envtest_script() -> PathBuf {
    project_root().join("../shared/envtest/kube-envtest")
}

/// The upstream CRDs folder beside the project.
pub fn upstream_crds_dir() -> PathBuf {
    project_root().join("../shared/upstream-crds")
}

/// The API server for this test binary, started on first use. Fails loudly when it cannot start: the
/// suite never silently skips the real-server tests.
#[allow(clippy::zombie_processes)]
pub fn server() -> &'static ApiServer {
    SERVER.get_or_init(|| {
        if let Some(path) = std::env::var_os("VWO_TEST_KUBECONFIG") {
            return ApiServer { kubeconfig: path.into() };
        }
        let script = envtest_script();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(out.status.success(), "kube-envtest start failed (see stderr above)");
        let text = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("kube-envtest start printed no {name}: {text}"))
                .to_string()
        };
        let kubeconfig = PathBuf::from(var("KUBECONFIG"));
        let dir = var("KUBE_ENVTEST_DIR");
        // Stop the server when this test process exits. The watchdog outlives this process by design, so it is
        // never waited for.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {script} stop {dir}; rm -rf {dir}",
            pid = std::process::id(),
            script = script.display(),
        );
        Command::new("bash")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the envtest watchdog");
        ApiServer { kubeconfig }
    })
}

/// A client for the test API server (a new one per test: each test has its own tokio runtime).
pub async fn client() -> Client {
    let path = &server().kubeconfig;
    let kubeconfig =
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Create a namespace (with the vworkspace gate label unless `gated` is false); ignore "already exists".
pub async fn namespace(client: &Client, name: &str, gated: bool) {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut labels = std::collections::BTreeMap::new();
    if gated {
        labels.insert("managed-by".to_string(), "vworkspace".to_string());
    }
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// Install CRDs (created once; an existing CRD is left as it is) and wait until they are Established.
/// Created rather than applied: Kubernetes 1.20 rejects an update of a v1 CRD whose per-version schemas
/// were folded into a top-level one ("per-version schemas may not all be set to identical values").
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.metadata.name.clone().expect("crd name");
        match api.create(&PostParams::default(), crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("install CRD {name}: {e}"),
        }
    }
    for crd in crds {
        let name = crd.metadata.name.clone().expect("crd name");
        let mut established = false;
        for _ in 0..100 {
            let got = api.get(&name).await.expect("get crd");
            established = got
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(established, "CRD {name} did not become Established");
    }
}

/// Read CRD documents from YAML files.
pub fn read_crds(paths: &[PathBuf]) -> Vec<CustomResourceDefinition> {
    paths
        .iter()
        .flat_map(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            serde_saphyr::from_multiple::<CustomResourceDefinition>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The project's own CRDs (crds/*.yaml).
pub fn project_crds() -> Vec<CustomResourceDefinition> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(project_root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    read_crds(&paths)
}

/// The upstream CRDs the operator writes (Flux, Velero, VolSync, CSI snapshot, and the minimal Argo CRDs that
/// install on this API server).
pub fn upstream_crds() -> Vec<CustomResourceDefinition> {
    let dir = upstream_crds_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !is_full_argo(p))
        .collect();
    paths.push(dir.join("minimal/argoproj.io_workflows.yaml"));
    paths.push(dir.join("minimal/argoproj.io_workflowtemplates.yaml"));
    paths.sort();
    read_crds(&paths)
}

fn is_full_argo(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("argoproj.io_"))
}

/// The ApiResource of an object's apiVersion/kind, by discovery.
pub async fn api_resource(client: &Client, obj: &Value) -> ApiResource {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let kind = obj["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, _caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discover {api_version}/{kind}: {e}"));
    ar
}

/// Server-side apply one object (JSON) with the operator's field manager.
pub async fn apply(client: &Client, obj: &Value) -> Result<DynamicObject, kube::Error> {
    let ar = api_resource(client, obj).await;
    let name = obj["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("vworkspace-operator").force(),
        &Patch::Apply(obj),
    )
    .await
}

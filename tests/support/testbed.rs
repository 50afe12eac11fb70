//! The project's test bed (`testbed/`): a current kube-apiserver + etcd on loopback, started once per test binary
//! and stopped when the test process exits, built from the Go modules pinned in `testbed/go` by
//! `testbed/testbed.sh` (once; cached under `~/.cache/vworkspace-operator/testbed`).
//!
//! - `KUBEBUILDER_ASSETS` (a setup-envtest folder with `kube-apiserver`, `etcd` and `kubectl`): those binaries are
//!   used instead of building them.
//! - `VWO_TEST_KUBECONFIG`: run against that cluster (kind, k3d, …) instead; the tests then create and delete their
//!   own namespaces there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::Value;

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testbed/testbed.sh`.
pub fn script() -> PathBuf {
    project_root().join("testbed/testbed.sh")
}

fn run_script(args: &[&str]) -> PathBuf {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    assert!(
        out.status.success(),
        "testbed.sh {args:?} failed (see its output above)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The path of one test-bed binary, built on first use. `kube-apiserver`, `etcd` and `kubectl` come from
/// `KUBEBUILDER_ASSETS` when that folder has them.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        let p = Path::new(&dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let p = run_script(&["bin", name]);
    built.push((name.to_string(), p.clone()));
    p
}

/// The folder of upstream CRDs the tests install (Flux, Velero, VolSync, CSI snapshot, Argo Workflows, Argo CD), copied out of
/// the pinned modules by `testbed.sh crds`.
pub fn upstream_crds_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| run_script(&["crds"])).clone()
}

/// A free loopback port (bound and released; the tiny race is acceptable for a test bed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// Processes of the test bed: started with their output in a log file, registered with the watchdog that stops
/// them when the test process exits.
pub struct Procs {
    dir: PathBuf,
    children: Mutex<Vec<(String, Child)>>,
}

impl Procs {
    /// A state folder and a watchdog for it: when this test process exits, every registered process gets SIGTERM
    /// (then SIGKILL) and the folder is removed. The watchdog outlives this process by design.
    #[allow(clippy::zombie_processes)] // never waited for: it must outlive this process
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir")
            .keep();
        std::fs::write(dir.join("pids"), "").unwrap();
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             pids=$(cat '{d}/pids'); kill $pids 2>/dev/null; \
             for _ in $(seq 1 50); do alive=; for p in $pids; do kill -0 $p 2>/dev/null && alive=1; done; \
             [ -z \"$alive\" ] && break; sleep 0.1; done; kill -9 $pids 2>/dev/null; rm -rf '{d}'",
            pid = std::process::id(),
            d = dir.display(),
        );
        Command::new("bash")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the test-bed watchdog");
        Self {
            dir,
            children: Mutex::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start a process with its stdout and stderr in `<dir>/<name>.log`; returns its pid. The process is kept (see
    /// [`Procs::exited`]) and stopped by the watchdog.
    pub fn spawn(&self, name: &str, cmd: &mut Command) -> u32 {
        // Appended: a process started again under the same name (after [`Procs::kill`]) keeps the earlier log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let pid = child.id();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("pids"))
            .unwrap();
        use std::io::Write;
        writeln!(f, "{pid}").unwrap();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), child));
        pid
    }

    /// Whether the process started (last) as `name` has exited, and how.
    pub fn exited(&self, name: &str) -> Option<std::process::ExitStatus> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let (_, child) = children.iter_mut().rev().find(|(n, _)| n == name)?;
        child.try_wait().ok().flatten()
    }

    /// SIGKILL the process started (last) as `name`, and reap it: a crash, with no chance to clean up.
    pub fn kill(&self, name: &str) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let (_, child) = children
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        child
            .kill()
            .unwrap_or_else(|e| panic!("SIGKILL {name}: {e}"));
        let _ = child.wait();
    }

    /// The last lines of a process's log (for failure messages).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

pub struct ApiServer {
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The admin bearer token (system:masters).
    pub token: String,
    /// The state folder of the test bed's processes, when the test bed started them.
    pub procs: Option<Procs>,
    /// How etcd and kube-apiserver were started (program, arguments), to start them again after a kill.
    commands: Vec<(String, PathBuf, Vec<String>)>,
}

static SERVER: OnceLock<Result<ApiServer, String>> = OnceLock::new();

/// The API server for this test binary, started on first use. Fails loudly when it cannot start (every test that
/// asks fails with the first reason): the suite never silently skips the real-server tests.
pub fn server() -> &'static ApiServer {
    let started = SERVER.get_or_init(|| {
        once(|| match std::env::var_os("VWO_TEST_KUBECONFIG") {
            Some(path) => ApiServer::external(path.into()),
            None => ApiServer::start(),
        })
    });
    match started {
        Ok(server) => server,
        Err(why) => panic!("the test bed's API server did not start: {why}"),
    }
}

/// Run a start-up once: its panic becomes the error every later caller sees (instead of each starting again).
pub fn once<T>(start: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    std::panic::catch_unwind(start).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

impl ApiServer {
    fn external(kubeconfig: PathBuf) -> Self {
        let text = std::fs::read_to_string(&kubeconfig)
            .unwrap_or_else(|e| panic!("VWO_TEST_KUBECONFIG {}: {e}", kubeconfig.display()));
        let url = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .map(|s| s.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        Self {
            kubeconfig,
            url,
            token: String::new(),
            procs: None,
            commands: Vec::new(),
        }
    }

    /// An API server of its own (its own etcd), not the one of [`server`]: for tests that kill and restart it.
    pub fn start_own() -> Self {
        Self::start()
    }

    /// SIGKILL `etcd` or `kube-apiserver` (a crash: no graceful shutdown).
    pub fn kill(&self, name: &str) {
        self.procs.as_ref().expect("own processes").kill(name);
    }

    /// Start `etcd` or `kube-apiserver` again as it was first started (same ports, data and certificates); for
    /// kube-apiserver, wait until it is ready.
    pub fn restart(&self, name: &str) {
        let (_, program, args) = self
            .commands
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no command {name}"));
        let procs = self.procs.as_ref().expect("own processes");
        procs.spawn(name, Command::new(program).args(args));
        if name == "kube-apiserver" {
            self.wait_ready();
        }
    }

    fn start() -> Self {
        let (apiserver, etcd) = (bin("kube-apiserver"), bin("etcd"));
        let procs = Procs::new("vwo-testbed-");
        let d = procs.dir().to_path_buf();
        let (eport, pport, aport) = (free_port(), free_port(), free_port());
        for args in [
            vec!["genrsa", "-out", "sa.key", "2048"],
            vec!["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
        ] {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(&d)
                .output()
                .expect("openssl (needed for the service-account key)");
            assert!(out.status.success(), "openssl {args:?} failed");
        }
        let token = format!("{:032x}", rand_u128());
        std::fs::write(
            d.join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .unwrap();
        let peer = format!("http://127.0.0.1:{pport}");
        let client_url = format!("http://127.0.0.1:{eport}");
        let etcd_args: Vec<String> = vec![
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        procs.spawn("etcd", Command::new(&etcd).args(&etcd_args));
        let apiserver_args: Vec<String> = vec![
            format!("--etcd-servers={client_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={aport}"),
            format!("--cert-dir={}", d.join("certs").display()),
            format!("--token-auth-file={}", d.join("tokens.csv").display()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", d.join("sa.pub").display()),
            format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            // No kube-apiserver endpoints in the default namespace: a loopback address is refused there.
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
        ];
        procs.spawn(
            "kube-apiserver",
            Command::new(&apiserver).args(&apiserver_args),
        );
        let url = format!("https://127.0.0.1:{aport}");
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster: {{server: \"{url}\", \
                 insecure-skip-tls-verify: true}}\nusers:\n- name: admin\n  user: {{token: {token}}}\n\
                 contexts:\n- name: testbed\n  context: {{cluster: testbed, user: admin, namespace: default}}\n\
                 current-context: testbed\n"
            ),
        )
        .unwrap();
        let me = Self {
            kubeconfig,
            url,
            token,
            procs: Some(procs),
            commands: vec![
                ("etcd".into(), etcd, etcd_args),
                ("kube-apiserver".into(), apiserver, apiserver_args),
            ],
        };
        me.wait_ready();
        me
    }

    /// GET a path of the API server with the admin token (curl: the harness has no async runtime of its own).
    pub fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("{}{path}", self.url))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_ready(&self) {
        let procs = self.procs.as_ref().unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if let Some(status) = procs.exited("kube-apiserver") {
                panic!(
                    "kube-apiserver exited ({status}).\n-- kube-apiserver.log:\n{}\n-- etcd.log:\n{}",
                    procs.log_tail("kube-apiserver", 15),
                    procs.log_tail("etcd", 10)
                );
            }
            if self.get("/readyz").is_some_and(|b| b.trim() == "ok") {
                let version: Value = self
                    .get("/version")
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or_default();
                // Straight to stderr, past the test harness's output capture: printed once per test binary.
                let line = format!(
                    "test bed: Kubernetes {} at {} (ready in {:.1} s), {}\n",
                    version["gitVersion"].as_str().unwrap_or("?"),
                    self.url,
                    started.elapsed().as_secs_f64(),
                    etcd_version(),
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "kube-apiserver did not become ready in 120 s.\n-- kube-apiserver.log:\n{}\n-- etcd.log:\n{}",
            procs.log_tail("kube-apiserver", 30),
            procs.log_tail("etcd", 20)
        );
    }
}

fn etcd_version() -> String {
    Command::new(bin("etcd"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                l.strip_prefix("etcd Version: ")
                    .map(|v| format!("etcd {v}"))
            })
        })
        .unwrap_or_else(|| "etcd (version unknown)".into())
}

fn rand_u128() -> u128 {
    rand::random()
}

/// A client for the test API server (a new one per test: each test has its own tokio runtime).
pub async fn client() -> Client {
    client_for(&server().kubeconfig).await
}

pub async fn client_for(path: &Path) -> Client {
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

/// Install CRDs by server-side apply (field manager `vworkspace-tests`) and wait until they are Established.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.metadata.name.clone().expect("crd name");
        let mut crd = crd.clone();
        crd.status = None;
        api.patch(
            &name,
            &PatchParams::apply("vworkspace-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("install CRD {name}: {e}"));
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
    yaml_files(&project_root().join("crds"))
        .map(|paths| read_crds(&paths))
        .unwrap()
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The upstream CRDs the operator writes and the test bed runs (Flux, Velero, VolSync, CSI snapshot, Argo
/// Workflows), from the pinned modules.
pub fn upstream_crds() -> Vec<CustomResourceDefinition> {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(|| read_crds(&yaml_files(&upstream_crds_dir()).unwrap()))
        .clone()
}

/// Flux Operator's CRDs (ResourceSet and its siblings), for the peer bench only (`testbed.sh peer-crds`).
pub fn peer_crds() -> Vec<CustomResourceDefinition> {
    read_crds(&yaml_files(&run_script(&["peer-crds"])).unwrap())
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

/// The Ready condition of an object (Flux's kinds): (status, reason, message).
pub fn ready_condition(obj: &Value) -> Option<(String, String, String)> {
    condition(obj, "Ready")
}

/// A condition of an object by type: (status, reason, message).
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    let cond = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        cond["status"].as_str()?.to_string(),
        cond["reason"].as_str()?.to_string(),
        cond["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// One object by apiVersion, kind, namespace and name, as JSON (`None` when it does not exist).
pub async fn get(
    client: &Client,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let probe = serde_json::json!({"apiVersion": api_version, "kind": kind});
    let ar = api_resource(client, &probe).await;
    let api = if ns.is_empty() {
        Api::<DynamicObject>::all_with(client.clone(), &ar)
    } else {
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
    };
    api.get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {kind} {ns}/{name}: {e}"))
        .map(|o| serde_json::to_value(o).unwrap())
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

/// A dynamic Api for our intent kinds (`ApplicationInstance`, `Operation`) in `ns`, without discovery.
pub fn intent_api(client: &Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    let (group, plural) = match kind {
        "ApplicationInstance" => ("apps.vworkspace.io", "applicationinstances"),
        "Operation" => ("ops.vworkspace.io", "operations"),
        other => panic!("not an intent kind: {other}"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// The `Cluster` object named `id` (what the operator creates at start; the admission policy's parameter).
pub async fn cluster_object(client: &Client, id: &str) {
    let cluster = serde_json::json!({
        "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": id}, "spec": {"clusterId": id},
    });
    apply(client, &cluster)
        .await
        .unwrap_or_else(|e| panic!("Cluster {id}: {e}"));
}

/// An `admission.k8s.io/v1` AdmissionReview asking to CREATE `object` (an intent), as the API server sends it
/// to a webhook.
pub fn admission_review(uid: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, resource) = if kind == "Operation" {
        ("ops.vworkspace.io", "operations")
    } else {
        ("apps.vworkspace.io", "applicationinstances")
    };
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1alpha1", "kind": kind},
            "resource": {"group": group, "version": "v1alpha1", "resource": resource},
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "operation": "CREATE", "userInfo": {"username": "tests"}, "object": object, "dryRun": false,
        }
    })
}

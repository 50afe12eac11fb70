//! The whole test bed for the end-to-end suite: the API server of [`super::testbed`] plus the real Flux
//! source-controller, kustomize-controller and helm-controller as local processes, and what Flux fetches from, all
//! on loopback: a git server over HTTP (`testbed-http`: `git http-backend`), a Helm chart repository over HTTPS and
//! an OCI registry over HTTPS (distribution), both serving the test chart `testbed/charts/vwo-test` (packaged and
//! pushed with the helm CLI). One stack per test binary, started on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::testbed::{self, ApiServer, Procs, bin, free_port};

/// The chart versions the stack publishes (both repositories): 1.x install, 2.x fail to install on purpose.
pub const CHART_VERSIONS: &[&str] = &["1.0.0", "1.1.0", "2.0.0"];
pub const CHART: &str = "vwo-test";
/// The namespace Flux's controllers consider their own (RUNTIME_NAMESPACE).
pub const FLUX_NAMESPACE: &str = "flux-system";

pub struct Stack {
    pub api: &'static ApiServer,
    pub procs: Procs,
    /// `http://127.0.0.1:PORT`: a bare repo `NAME.git` under [`Stack::git_root`] is `{git_base}/NAME.git`.
    pub git_base: String,
    pub git_root: PathBuf,
    /// `https://127.0.0.1:PORT/charts`: the Helm chart repository (index.yaml).
    pub charts_url: String,
    /// `oci://127.0.0.1:PORT/charts`: the OCI registry path holding the chart.
    pub oci_url: String,
    /// The self-signed certificate of both HTTPS servers, which source-controller trusts (SSL_CERT_FILE).
    pub ca: PathBuf,
    /// How each Flux controller was started (environment, arguments, health address), to start it again.
    flux: Vec<FluxProcess>,
}

struct FluxProcess {
    name: &'static str,
    env: Vec<(String, PathBuf)>,
    args: Vec<String>,
    health_addr: String,
}

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

/// Where the git server, the chart repository and the registry listen: loopback, or inside the test bed's node
/// (`testbed/node.sh`) the node's bridge address (`VWO_STACK_HOST`), which its Pods reach too.
pub fn stack_host() -> String {
    std::env::var("VWO_STACK_HOST").unwrap_or_else(|_| "127.0.0.1".to_string())
}

/// The stack of this test binary. When it fails to start, every test that asks for it fails with that reason
/// (rather than each starting a stack of its own).
pub fn stack() -> &'static Stack {
    let started = STACK.get_or_init(|| testbed::once(Stack::start));
    match started {
        Ok(stack) => stack,
        Err(why) => panic!("the test bed's stack did not start: {why}"),
    }
}

/// Run the test bed's kubectl against the test API server.
pub fn kubectl(args: &[&str]) -> Output {
    Command::new(bin("kubectl"))
        .arg(format!(
            "--kubeconfig={}",
            testbed::server().kubeconfig.display()
        ))
        .args(args)
        .output()
        .expect("run kubectl")
}

/// kubectl that must succeed; returns its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl wait --for=condition=Established crd --all`, repeated while a just-created CRD has no conditions yet
/// (kubectl's wait fails at once on a missing `.status.conditions`).
pub fn wait_crds_established() {
    let args = [
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ];
    let started = Instant::now();
    loop {
        let out = kubectl(&args);
        if out.status.success() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `kubectl apply --server-side` of these objects, as a cluster admin would (field manager `cluster-admin`); they are
/// written to `dir/name` first.
pub fn kubectl_apply(dir: &Path, name: &str, objects: &[serde_json::Value]) {
    let docs: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    let file = dir.join(name);
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=cluster-admin",
        "-f",
        &file.display().to_string(),
    ]);
}

/// Poll every 500 ms until `check` gives a value; after `secs`, fail with `what` and what `diagnostics` says (the
/// objects and logs that explain the wait).
pub async fn eventually<T, F, Fut>(
    what: &str,
    secs: u64,
    diagnostics: impl Fn() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out after {secs} s waiting for: {what}\n{}",
                diagnostics()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test bed's helm CLI with its cache, configuration and data under `home` (nothing of the user's).
pub fn helm_command(home: &Path) -> Command {
    let mut cmd = Command::new(bin("helm"));
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Wait for a file that a process writes once it listens (its bound address).
fn read_addr_file(procs: &Procs, name: &str, path: &Path) -> String {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(addr) = std::fs::read_to_string(path) {
            return addr.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} did not start:\n{}", procs.log_tail(name, 20));
}

/// Poll a URL with curl until it answers 2xx.
fn wait_http(procs: &Procs, name: &str, url: &str, ca: Option<&Path>) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sf", "-o", "/dev/null", "--max-time", "2"]);
        if let Some(ca) = ca {
            cmd.arg("--cacert").arg(ca);
        }
        if cmd.arg(url).status().is_ok_and(|s| s.success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{name} is not answering at {url}:\n{}",
        procs.log_tail(name, 30)
    );
}

impl FluxProcess {
    fn spawn(&self, procs: &Procs) {
        let mut cmd = Command::new(bin(self.name));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args);
        procs.spawn(self.name, &mut cmd);
    }

    fn wait_ready(&self, procs: &Procs) {
        wait_http(
            procs,
            self.name,
            &format!("http://{}/readyz", self.health_addr),
            None,
        );
    }
}

impl Stack {
    fn start() -> Self {
        let api = testbed::server();
        let host = stack_host();
        let procs = Procs::new("vwo-stack-");
        let d = procs.dir().to_path_buf();
        let started = Instant::now();

        // The upstream CRDs (Flux's among them) before the controllers that watch them.
        let crds = testbed::upstream_crds_dir();
        kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=vworkspace-tests",
            "-f",
            &crds.display().to_string(),
        ]);
        wait_crds_established();
        let _ = kubectl(&["create", "namespace", FLUX_NAMESPACE]);

        // One self-signed certificate for the HTTPS servers (chart repository and registry) on their address.
        let (crt, key) = (d.join("tls.crt"), d.join("tls.key"));
        run(
            "openssl req",
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                ])
                .args(["-nodes", "-days", "2", "-subj", "/CN=vworkspace-testbed"])
                .args([
                    "-addext",
                    &format!("subjectAltName=IP:127.0.0.1,IP:{host},DNS:localhost"),
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt),
        );

        // The git server (HTTP, pushes allowed).
        let git_root = d.join("git");
        std::fs::create_dir_all(&git_root).unwrap();
        procs.spawn(
            "git-server",
            Command::new(bin("testbed-http"))
                .arg("-git-root")
                .arg(&git_root)
                .arg(format!("-listen={host}:0"))
                .arg("-addr-file")
                .arg(d.join("git.addr")),
        );
        let git_base = format!(
            "http://{}",
            read_addr_file(&procs, "git-server", &d.join("git.addr"))
        );

        // The chart repository (HTTPS) and the registry (HTTPS).
        let charts = d.join("charts");
        std::fs::create_dir_all(&charts).unwrap();
        procs.spawn(
            "chart-repo",
            Command::new(bin("testbed-http"))
                .arg("-static")
                .arg(&charts)
                .arg(format!("-listen={host}:0"))
                .arg("-tls-cert")
                .arg(&crt)
                .arg("-tls-key")
                .arg(&key)
                .arg("-addr-file")
                .arg(d.join("charts.addr")),
        );
        let charts_url = format!(
            "https://{}/charts",
            read_addr_file(&procs, "chart-repo", &d.join("charts.addr"))
        );
        let registry_addr = format!("{host}:{}", free_port());
        let registry_config = d.join("registry.yaml");
        std::fs::write(
            &registry_config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {registry_addr}\n  tls:\n    certificate: {}\n    key: {}\n",
                d.join("registry").display(),
                crt.display(),
                key.display()
            ),
        )
        .unwrap();
        procs.spawn(
            "registry",
            Command::new(bin("registry"))
                .arg("serve")
                .arg(&registry_config),
        );
        wait_http(
            &procs,
            "registry",
            &format!("https://{registry_addr}/v2/"),
            Some(&crt),
        );

        // The test chart at every version: packaged, indexed, pushed.
        let helm_home = d.join("helm");
        let helm = |args: &[&str]| {
            run(
                &format!("helm {args:?}"),
                helm_command(&helm_home).args(args),
            )
        };
        let chart_src = testbed::project_root().join("testbed/charts").join(CHART);
        let (charts_s, chart_src_s) = (
            charts.display().to_string(),
            chart_src.display().to_string(),
        );
        for v in CHART_VERSIONS {
            helm(&[
                "package",
                &chart_src_s,
                "--version",
                v,
                "--destination",
                &charts_s,
            ]);
        }
        helm(&["repo", "index", &charts_s, "--url", &charts_url]);
        let oci_url = format!("oci://{registry_addr}/charts");
        for v in CHART_VERSIONS {
            let tgz = charts
                .join(format!("{CHART}-{v}.tgz"))
                .display()
                .to_string();
            helm(&[
                "push",
                &tgz,
                &oci_url,
                "--ca-file",
                &crt.display().to_string(),
            ]);
        }
        wait_http(
            &procs,
            "chart-repo",
            &format!("{charts_url}/index.yaml"),
            Some(&crt),
        );

        // Flux: out of cluster, KUBECONFIG in the environment, no leader election, loopback ports, no events.
        let env = vec![
            ("KUBECONFIG".to_string(), api.kubeconfig.clone()),
            (
                "RUNTIME_NAMESPACE".to_string(),
                PathBuf::from(FLUX_NAMESPACE),
            ),
            ("SSL_CERT_FILE".to_string(), crt.clone()),
            ("HOME".to_string(), d.join("home")),
        ];
        std::fs::create_dir_all(d.join("storage")).unwrap();
        std::fs::create_dir_all(d.join("home")).unwrap();
        let storage_addr = format!("127.0.0.1:{}", free_port());
        let mut flux = Vec::new();
        for name in [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
        ] {
            let health_addr = format!("127.0.0.1:{}", free_port());
            let mut args = vec![
                format!("--metrics-addr=127.0.0.1:{}", free_port()),
                format!("--health-addr={health_addr}"),
                "--enable-leader-election=false".to_string(),
                "--log-encoding=console".to_string(),
                "--watch-all-namespaces=true".to_string(),
            ];
            if name == "source-controller" {
                args.push(format!("--storage-path={}", d.join("storage").display()));
                args.push(format!("--storage-addr={storage_addr}"));
                args.push(format!("--storage-adv-addr={storage_addr}"));
            } else {
                args.push("--requeue-dependency=2s".to_string());
            }
            let process = FluxProcess {
                name,
                env: env.clone(),
                args,
                health_addr,
            };
            process.spawn(&procs);
            flux.push(process);
        }
        for process in &flux {
            process.wait_ready(&procs);
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "test bed: Flux source-, kustomize- and helm-controller, git server, chart repository and \
                 registry up in {:.1} s (logs in {})\n",
                started.elapsed().as_secs_f64(),
                d.display()
            )
            .as_bytes(),
        );
        Self {
            api,
            procs,
            git_base,
            git_root,
            charts_url,
            oci_url,
            ca: crt,
            flux,
        }
    }

    /// SIGKILL a Flux controller (`source-controller`, …): it stops at once, as in a node failure.
    pub fn kill_flux(&self, name: &str) {
        self.procs.kill(name);
    }

    /// Start a Flux controller killed with [`Stack::kill_flux`] again, as before, and wait until it is ready.
    pub fn restart_flux(&self, name: &str) {
        let process = self
            .flux
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no Flux controller {name}"));
        process.spawn(&self.procs);
        process.wait_ready(&self.procs);
    }

    /// A new bare repository `NAME.git` on the git server; returns its URL.
    pub fn bare_repo(&self, name: &str) -> String {
        let path = self.git_root.join(format!("{name}.git"));
        run(
            "git init --bare",
            Command::new("git")
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&path)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1"),
        );
        format!("{}/{name}.git", self.git_base)
    }

    /// The bare repository's path on disk (to read what was pushed to it).
    pub fn bare_path(&self, name: &str) -> PathBuf {
        self.git_root.join(format!("{name}.git"))
    }

    /// The last lines of a stack process's log (`helm-controller`, `kustomize-controller`, …).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        self.procs.log_tail(name, lines)
    }
}

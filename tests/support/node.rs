//! The test bed's node (`testbed/node.sh`): a one-node cluster where Pods run, in network, mount and PID namespaces
//! of its own (see CONTRIBUTING). A test runs itself inside it: [`inside`] starts a node, runs the named test of this
//! test binary in it and checks that it passed; inside, it returns the node's facts. kubectl talks to the node's
//! API server (`KUBECONFIG` and `PATH` are set by node.sh).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Node {
    /// `10.244.0.1:5000`: the registry containerd pulls from (HTTPS, [`Node::ca`]); images `pause`, `busybox` and
    /// `kubectl` at tag `testbed`.
    pub registry: String,
    /// The CA of the API server's and the registry's certificates.
    pub ca: PathBuf,
    /// The node's state folder (`logs/<component>.log`).
    pub state: PathBuf,
}

/// Inside the node: `Some`. Outside: start a node, run `test` (this binary's, by exact name, ignored or not) in it,
/// assert that it passed, and return `None` (the caller returns at once).
pub fn inside(test: &str) -> Option<Node> {
    inside_with(test, Vec::new)
}

/// [`inside`], with images built outside the node (where the Debian mirror is reachable) and pushed to the node's
/// registry as `NAME:TAG`: `images` runs outside only and gives (`NAME:TAG`, image tarball).
pub fn inside_with(test: &str, images: impl FnOnce() -> Vec<(String, PathBuf)>) -> Option<Node> {
    if let Ok(registry) = std::env::var("VWO_NODE_REGISTRY") {
        return Some(Node {
            registry,
            ca: std::env::var("VWO_NODE_CA").unwrap_or_default().into(),
            state: std::env::var("VWO_NODE_STATE").unwrap_or_default().into(),
        });
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/node.sh");
    let exe = std::env::current_exe().expect("this test binary");
    let images: Vec<String> = images()
        .into_iter()
        .map(|(tag, tarball)| format!("{tag}={}", tarball.display()))
        .collect();
    let status = Command::new("bash")
        .arg(script)
        .env("VWO_NODE_IMAGES", images.join(" "))
        .args(["run", "--"])
        .arg(exe)
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .expect("run testbed/node.sh");
    assert!(
        status.success(),
        "{test} inside the node failed ({status}): see above"
    );
    None
}

impl Node {
    /// The last lines of a component's log (`kubelet`, `containerd`, `kube-apiserver`, …).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.state.join(format!("logs/{component}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Wait (bounded: a broken node fails the test instead of hanging it) until `jsonpath` of `what` (`pod/web`)
    /// in namespace `ns` prints `want`; on failure, panic with `kubectl describe` of it (and of a Job's Pods) and
    /// the kubelet's last lines.
    pub fn wait_for(&self, ns: &str, what: &str, jsonpath: &str, want: &str) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(300) {
            let (ok, text) =
                kubectl(&["-n", ns, "get", what, "-o", &format!("jsonpath={jsonpath}")]);
            if ok && text.trim() == want {
                return;
            }
            last = text;
            std::thread::sleep(Duration::from_millis(500));
        }
        let (_, mut diag) = kubectl(&["-n", ns, "describe", what]);
        if let Some(job) = what.strip_prefix("job/") {
            diag += &kubectl(&[
                "-n",
                ns,
                "describe",
                "pod",
                "-l",
                &format!("job-name={job}"),
            ])
            .1;
        }
        panic!(
            "{what}: {jsonpath} is not {want} (last: {last})\n{diag}\n-- kubelet.log:\n{}",
            self.log_tail("kubelet", 30)
        );
    }
}

/// kubectl against the node's API server: (success, stdout + stderr).
pub fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl (node.sh puts the test bed's on PATH)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// kubectl that must succeed; its output.
pub fn kubectl_ok(args: &[&str]) -> String {
    let (ok, text) = kubectl(args);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

/// `kubectl apply` of YAML.
pub fn apply(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("objects.yaml");
    std::fs::write(&f, yaml).unwrap();
    kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
}

/// The operator's image, built from this test binary's build of the operator by `image/build-local.sh` (the
/// Dockerfile's runtime stage; its base image is cached, its packages come from the Debian mirror) and saved as a
/// docker-archive tarball under `dir`.
pub fn operator_image(dir: &std::path::Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tag = "localhost/vworkspace-operator:node-test";
    let status = Command::new("bash")
        .arg(root.join("image/build-local.sh"))
        .arg(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .env("VWO_IMAGE", tag)
        .status()
        .expect("run image/build-local.sh");
    assert!(status.success(), "image/build-local.sh failed: see above");
    let tarball = dir.join("vworkspace-operator.tar");
    let _ = std::fs::remove_file(&tarball);
    let out = Command::new("podman")
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&tarball)
        .arg(tag)
        .output()
        .expect("podman save");
    assert!(
        out.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tarball
}

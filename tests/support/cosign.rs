//! Signed charts for the chart-trust tests: the test chart pushed to the stack's OCI registry with the helm CLI,
//! and signed there with the test bed's real cosign (built from github.com/sigstore/cosign/v3), offline: a key
//! pair, no transparency log, no signing config from Sigstore's TUF repository, the legacy `sha256-<hex>.sig`
//! tag (what source-controller verifies with a public key when the registry has no referrers API).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::stack::{CHART, Stack, helm_command};
use super::testbed::{bin, project_root};

/// A cosign key pair, generated with `cosign generate-key-pair` in its own directory.
pub struct CosignKey {
    pub name: String,
    /// The encrypted private key (`<name>.key`, password [`PASSWORD`]).
    pub key: PathBuf,
    /// The public key (`<name>.pub`), PEM.
    pub public: String,
}

const PASSWORD: &str = "testbed";

fn output(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}: {text}");
    text
}

/// cosign with an empty home of its own (it keeps nothing there when run as below) and the key's password.
fn cosign(home: &Path) -> Command {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = Command::new(bin("cosign"));
    cmd.env("HOME", home)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env_remove("SSL_CERT_FILE")
        .current_dir(home);
    cmd
}

impl CosignKey {
    pub fn generate(dir: &Path, name: &str) -> Self {
        let home = dir.join(format!("cosign-{name}"));
        output(
            "cosign generate-key-pair",
            cosign(&home).args(["generate-key-pair", "--output-key-prefix", name]),
        );
        Self {
            name: name.to_string(),
            key: home.join(format!("{name}.key")),
            public: std::fs::read_to_string(home.join(format!("{name}.pub"))).unwrap(),
        }
    }

    /// Sign `reference` (`host/path@sha256:…`) in the registry whose certificate is `ca`.
    pub fn sign(&self, reference: &str, ca: &Path) {
        let home = self.key.parent().unwrap();
        output(
            &format!("cosign sign {reference} with {}", self.name),
            cosign(home)
                .arg("sign")
                .arg("--key")
                .arg(&self.key)
                .args([
                    "--tlog-upload=false",
                    "--use-signing-config=false",
                    "--new-bundle-format=false",
                    "--yes",
                ])
                .arg("--registry-cacert")
                .arg(ca)
                .arg(reference),
        );
    }
}

/// Package the test chart at `version` (with `app_version`, so that two pushes of one version differ in their
/// bytes) and push it to `oci_repo` (`oci://host/path`, the chart lands at `<path>/vwo-test:<version>`).
/// Returns the manifest digest helm printed.
pub fn push_chart(
    stack: &Stack,
    dir: &Path,
    oci_repo: &str,
    version: &str,
    app_version: &str,
) -> String {
    let helm_home = dir.join("helm");
    let out = dir.join(format!("chart-{app_version}"));
    std::fs::create_dir_all(&out).unwrap();
    let helm = |args: &[&str]| {
        output(
            &format!("helm {args:?}"),
            helm_command(&helm_home).args(args),
        )
    };
    let src = project_root().join("testbed/charts").join(CHART);
    helm(&[
        "package",
        &src.display().to_string(),
        "--version",
        version,
        "--app-version",
        app_version,
        "--destination",
        &out.display().to_string(),
    ]);
    let tgz = out.join(format!("{CHART}-{version}.tgz"));
    let pushed = helm(&[
        "push",
        &tgz.display().to_string(),
        oci_repo,
        "--ca-file",
        &stack.ca.display().to_string(),
    ]);
    pushed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("helm push printed no digest: {pushed}"))
        .trim()
        .to_string()
}

/// The reference cosign signs: `host/path/vwo-test@<digest>` of a chart pushed to `oci_repo`.
pub fn chart_reference(oci_repo: &str, digest: &str) -> String {
    format!("{}/{CHART}@{digest}", oci_repo.trim_start_matches("oci://"))
}

/// Push to `oci_repo` (`oci://host/path`, landing at `<path>/vwo-test:<version>`) an artifact that is shaped like
/// a Helm chart (Helm's config and layer media types) but whose layer is not a chart archive: source-controller
/// copies it as the artifact, helm-controller cannot load it. Pushed with the registry's HTTP API (curl), since
/// `helm push` refuses what it cannot load. Returns the manifest digest.
#[allow(dead_code)] // used by one test binary
pub fn push_unloadable_chart(stack: &Stack, oci_repo: &str, version: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = |bytes: &[u8]| format!("sha256:{:x}", Sha256::digest(bytes));
    let rest = oci_repo
        .strip_prefix("oci://")
        .expect("an oci:// repository");
    let (host, path) = rest.split_once('/').expect("host/path");
    let base = format!("https://{host}/v2/{path}/{CHART}");
    let curl = |args: &[&str], body: &[u8]| {
        let mut child = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&stack.ca)
            .args(args)
            .args(["--data-binary", "@-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let config =
        format!(r#"{{"name":"{CHART}","version":"{version}","apiVersion":"v2"}}"#).into_bytes();
    let layer = b"this is not a gzipped tar of a Helm chart\n".to_vec();
    for blob in [&config, &layer] {
        // Distribution's two-step upload: POST opens a session (202, its Location), PUT with the digest closes it.
        let opened = curl(
            &[
                "-X",
                "POST",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("{base}/blobs/uploads/"),
            ],
            b"",
        );
        let location = opened
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no upload Location: {opened}"));
        let location = if location.starts_with('/') {
            format!("https://{host}{location}")
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        curl(
            &[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                &format!("{location}{sep}digest={}", digest(blob)),
            ],
            blob,
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    curl(
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            &format!("{base}/manifests/{version}"),
        ],
        &manifest,
    );
    digest(&manifest)
}

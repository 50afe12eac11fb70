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

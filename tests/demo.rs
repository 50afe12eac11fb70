//! `vworkspace-operator demo`, the README's first command: the built binary is run as a newcomer runs it,
//! and its report is checked for the verdicts the demo is designed to produce. The controller part runs
//! against the real API server (the test bed, testbed/).

mod support;

use std::path::Path;
use std::process::Command;

use kube::api::{Api, ListParams};
use support::testbed;
use vworkspace_operator::api::ApplicationInstance;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the demo binary with `args`, git isolated from the developer's configuration, and TMPDIR set when
/// given.
fn demo(args: &[&str], tmpdir: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"));
    cmd.arg("demo")
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("RUST_LOG");
    if let Some(dir) = tmpdir {
        cmd.env("TMPDIR", dir);
    }
    let out = cmd.output().expect("run the demo");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one line of `text` that contains every needle.
fn line_with<'a>(text: &'a str, needles: &[&str]) -> &'a str {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one line with {needles:?}, found {found:?} in:\n{text}"
    );
    found[0]
}

#[test]
fn the_demo_verifies_renders_hydrates_and_notes_as_designed() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("kept");
    let keep_arg = keep.display().to_string();
    let run = demo(&["--keep", &keep_arg], None);
    let (out, err) = (&run.stdout, &run.stderr);
    assert_eq!(run.code, 0, "stdout:\n{out}\nstderr:\n{err}");

    // Progress on stderr, one line per step.
    for step in 1..=6 {
        assert!(err.contains(&format!("[{step}/6] ")), "{err}");
    }
    assert!(
        !err.contains("[7/"),
        "no controller step without --kubeconfig: {err}"
    );
    // Pull mode: the signed job admitted and rendered, the forged one refused and reported to the control plane.
    line_with(
        out,
        &["job-signed", "ADMITTED", "signed by demo-control-plane"],
    );
    line_with(out, &["would apply HelmRelease"]);
    line_with(
        out,
        &["job-forged", "REFUSED", "JobPayloadSignatureInvalid"],
    );
    line_with(
        out,
        &[
            "the control plane received for job-forged",
            "\"outcome\":\"failed\"",
        ],
    );

    // verify: the two signed commits by Alice, the unsigned and the hand-edited ones refused.
    let verified: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("✓") && l.contains("signed by alice@example.com, key SHA256:"))
        .collect();
    assert_eq!(verified.len(), 2, "{out}");
    assert!(
        verified[0].contains("eu-prod-1: import the example intents"),
        "{out}"
    );
    assert!(
        verified[1].contains("nextcloud: upgrade the chart to 6.7.0"),
        "{out}"
    );
    line_with(
        out,
        &[
            "✗",
            "gitea: scale to 3 replicas",
            "refused: Unsigned: the commit is not signed",
        ],
    );
    line_with(
        out,
        &[
            "✗",
            "vaultwarden: upgrade the chart to 0.34.4",
            "refused: BadSignature: ",
        ],
    );
    line_with(
        out,
        &[
            "newest verified revision:",
            "(nextcloud: upgrade the chart to 6.7.0)",
        ],
    );

    // render: objects of the verified revision.
    line_with(out, &["3. render", "intents →", "objects"]);
    line_with(
        out,
        &[
            "ApplicationInstance team-alpha/nextcloud",
            "→ OCIRepository team-alpha/nextcloud, HelmRelease team-alpha/nextcloud",
        ],
    );

    // hydrate: an output commit signed by the operator's key; notes for every intent commit.
    line_with(
        out,
        &[
            "4. hydrate: output commit",
            "on hydrated/eu-prod-1",
            "signed by the operator's key SHA256:",
            "✓",
        ],
    );
    line_with(
        out,
        &[
            "eu-prod-1: import the example intents",
            "rendered",
            "note Rendered/CommitVerified",
        ],
    );
    line_with(
        out,
        &[
            "gitea: scale to 3 replicas",
            "refused",
            "note Rejected/UnsignedCommit",
        ],
    );
    line_with(
        out,
        &[
            "vaultwarden: upgrade the chart to 0.34.4",
            "refused",
            "note Rejected/UntrustedSignature",
        ],
    );

    // notes: the audit trail as git log --notes prints it.
    line_with(
        out,
        &["5. The audit trail", "git log --notes=vworkspace/eu-prod-1"],
    );
    assert_eq!(out.matches("\"outcome\":\"Rendered\"").count(), 2, "{out}");
    assert_eq!(out.matches("\"outcome\":\"Rejected\"").count(), 2, "{out}");
    assert!(out.contains("\"reason\":\"UnsignedCommit\""), "{out}");
    assert!(out.contains("\"reason\":\"UntrustedSignature\""), "{out}");
    line_with(out, &["Result: as designed"]);
    line_with(out, &["Everything is kept in", &keep_arg]);

    // What was kept is a real repo the commands of the tour work on.
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(keep.join("cluster-repo.git"))
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(git(&["rev-list", "--count", "main"]).trim(), "4");
    let files = git(&["ls-tree", "-r", "--name-only", "hydrated/eu-prod-1"]);
    assert!(
        files
            .lines()
            .any(|f| f == "team-alpha/helmrelease-nextcloud.yaml"),
        "{files}"
    );
    assert!(keep.join("policy.yaml").is_file() && keep.join("keys/operator").is_file());
    let verify = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .args(["verify", "--repo"])
        .arg(keep.join("cluster-repo.git"))
        .arg("--policy")
        .arg(keep.join("policy.yaml"))
        .args(["--path", "clusters/eu-prod-1", "main"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1), "two commits are refused");
    assert_eq!(String::from_utf8_lossy(&verify.stdout).lines().count(), 4);

    // --keep never overwrites: the directory is not empty now.
    let again = demo(&["--keep", &keep_arg], None);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

#[test]
fn without_keep_nothing_is_left_behind_and_json_has_the_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = demo(&["--output", "json"], Some(tmp.path()));
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["kept"], false);
    let verdicts: Vec<(bool, Option<&str>)> = report["verify"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["ok"].as_bool().unwrap(), v["reason"].as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (true, None),
            (true, None),
            (false, Some("Unsigned")),
            (false, Some("BadSignature"))
        ]
    );
    assert!(report["hydrate"]["outputCommit"].is_string());
    assert_eq!(report["controller"], serde_json::Value::Null);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_part_runs_against_the_api_server() {
    let client = testbed::client().await;
    // Flux and the engines' CRDs, as a cluster with Flux has them; the demo installs its own when missing.
    testbed::install_crds(&client, &testbed::upstream_crds()).await;
    let kubeconfig = testbed::server().kubeconfig.display().to_string();
    let run = tokio::task::spawn_blocking(move || demo(&["--kubeconfig", &kubeconfig], None))
        .await
        .unwrap();
    let (out, err) = (&run.stdout, &run.stderr);
    assert_eq!(run.code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("[7/7] "), "{err}");
    line_with(out, &["7. The controller against"]);
    line_with(
        out,
        &[
            "the operator follows a copy of the cluster repo",
            "its verified view:",
        ],
    );
    line_with(out, &["team-beta/gitea edited by hand", "12.4.0 → 12.9.9"]);
    // Verified intents got their children; the hand-edited one is Blocked and has none.
    for (intent, child) in [
        ("team-alpha/nextcloud", "HelmRelease nextcloud"),
        ("team-alpha/mattermost", "HelmRelease mattermost"),
        ("team-beta/vaultwarden", "HelmRelease vaultwarden"),
    ] {
        let row = line_with(out, &[intent, " Git "]);
        assert!(row.contains(child), "{row}");
    }
    let gitea = line_with(out, &["team-beta/gitea", "hand-edited"]);
    assert!(
        gitea.contains("True SpecMismatch") && !gitea.contains("HelmRelease"),
        "{gitea}"
    );
    line_with(
        out,
        &["team-beta/gitea Blocked SpecMismatch: the live object differs from"],
    );
    line_with(
        out,
        &["then main moved to the refused head", "refused: commit"],
    );
    line_with(out, &["cleaned up: deleted 5 ApplicationInstances"]);
    line_with(out, &["Result: as designed"]);

    // Nothing the demo applied is left (its CRDs were missing, so they were removed too).
    for ns in ["team-alpha", "team-beta"] {
        let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
        match api.list(&ListParams::default()).await {
            Ok(list) => assert!(list.items.is_empty(), "{ns}: {:?}", list.items),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("listing ApplicationInstances in {ns}: {e}"),
        }
    }
}

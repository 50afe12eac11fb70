//! `hydrate` against real git: a bare remote and a work clone in temp dirs, intent commits signed with real
//! `ssh-keygen` keys, output commits signed by the operator's own SSH or OpenPGP key and checked with
//! `git verify-commit`, notes read back with plain git.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::gitfix::{GitRemote, Signer, policy_yaml};
use vworkspace_operator::git::notes::RetryPolicy;
use vworkspace_operator::git::policy::TrustPolicy;
use vworkspace_operator::hydrate::{
    CommitOutcome, HydrateOptions, HydrateReport, OutTarget, hydrate_once,
};

const CLUSTER: &str = "c1";
const OPERATOR_EMAIL: &str = "vworkspace-operator@vworkspace.invalid";

fn app(name: &str, ns: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: {CLUSTER}}}
spec:
  appRef: {{catalogId: nextcloud}}
  chart: {{sourceType: oci, url: "oci://ghcr.io/nextcloud/helm", name: nextcloud, version: "{version}"}}
  release: {{name: {name}, namespace: {ns}}}
  values:
    source: inline
    inline: {{replicaCount: 2}}
"#
    )
}

fn app_path(name: &str, ns: &str) -> String {
    format!("clusters/{CLUSTER}/namespaces/{ns}/applicationinstance-{name}.yaml")
}

struct Fx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: GitRemote,
    alice: Signer,
    mallory: Signer,
    /// The operator's own SSH key.
    operator: Signer,
    policy: TrustPolicy,
}

impl Fx {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let remote = GitRemote::new(&root);
        let keys = root.join("keys");
        let alice = Signer::new(&keys, "alice@example.com");
        let mallory = Signer::new(&keys, "mallory@example.com");
        let operator = Signer::new(&keys, OPERATOR_EMAIL);
        let policy = TrustPolicy::from_yaml(&policy_yaml(&[&alice], "range")).unwrap();
        Self {
            _tmp: tmp,
            root,
            remote,
            alice,
            mallory,
            operator,
            policy,
        }
    }

    fn write_app(&self, name: &str, ns: &str, version: &str) {
        self.remote
            .write(&app_path(name, ns), &app(name, ns, version));
    }

    fn signed(&self, message: &str) -> String {
        self.remote
            .commit(message, Some(&self.alice), &self.alice.email)
    }

    fn options(&self, work: &str) -> HydrateOptions {
        let mut o = HydrateOptions::new(
            self.remote.url(),
            CLUSTER,
            self.policy.clone(),
            self.root.join(work),
        );
        o.signing_key = Some(self.operator.key.clone());
        o.retry = RetryPolicy {
            max_attempts: 20,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        };
        o
    }

    fn hydrate(&self, work: &str) -> HydrateReport {
        hydrate_once(&self.options(work)).unwrap()
    }

    /// git in the bare remote.
    fn bare(&self, args: &[&str]) -> String {
        self.remote.git(&self.remote.bare, args)
    }

    /// git in the bare remote; `None` when it fails.
    fn try_bare(&self, args: &[&str]) -> Option<String> {
        self.remote.try_git(&self.remote.bare, args)
    }

    /// Files of a revision below `prefix`, sorted.
    fn files(&self, rev: &str, prefix: &str) -> Vec<String> {
        let mut args = vec!["ls-tree", "-r", "--name-only", rev];
        if !prefix.is_empty() {
            args.extend(["--", prefix]);
        }
        let out = self.bare(&args);
        out.lines().map(str::to_string).collect()
    }

    /// The outcome records on `commit` in the cluster's notes ref (parsed JSON lines).
    fn notes(&self, commit: &str) -> Vec<serde_json::Value> {
        self.try_bare(&["notes", "--ref", "vworkspace/c1", "show", commit])
            .map(|text| {
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The refs of the remote with their targets.
    fn refs(&self) -> String {
        self.bare(&["for-each-ref", "--format=%(refname) %(objectname)"])
    }

    /// `git verify-commit` of an output commit signed by the operator's SSH key.
    fn verify_ssh(&self, commit: &str) -> std::process::Output {
        let signers = self.root.join("allowed_signers");
        std::fs::write(
            &signers,
            format!("{}\n", self.operator.allowed_signers_line()),
        )
        .unwrap();
        Command::new("git")
            .args(["-c"])
            .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
            .args(["verify-commit", commit])
            .current_dir(&self.remote.bare)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
    }
}

fn outcomes(report: &HydrateReport) -> Vec<(String, CommitOutcome)> {
    report
        .commits
        .iter()
        .map(|c| (c.commit.clone(), c.outcome))
        .collect()
}

#[test]
fn verified_intents_are_rendered_and_committed_signed() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.write_app("wiki", "team-b", "1.0.0");
    let a = fx.signed("two apps");

    let report = fx.hydrate("w1");
    assert!(report.ok(), "{report}");
    assert_eq!(report.revision.as_deref(), Some(a.as_str()));
    assert_eq!(outcomes(&report), [(a.clone(), CommitOutcome::Rendered)]);
    let out = report.output_commit.clone().expect("an output commit");
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]), out);
    assert!(report.removed.is_empty() && report.changed.is_empty());

    // One file per object, stable names, at the root of the output branch.
    let files = fx.files(&out, "");
    assert_eq!(
        files,
        [
            "team-a/helmrelease-cloud.yaml",
            "team-a/ocirepository-cloud.yaml",
            "team-b/helmrelease-wiki.yaml",
            "team-b/ocirepository-wiki.yaml",
        ],
        "{report}"
    );
    assert_eq!(report.added, files);
    let hr = fx.bare(&["show", &format!("{out}:team-a/helmrelease-cloud.yaml")]);
    assert!(
        hr.contains("kind: HelmRelease") && hr.contains("name: cloud"),
        "{hr}"
    );

    // The message names the intent commit in trailers git itself reads.
    let trailers = fx.bare(&["log", "-1", "--format=%(trailers:only,unfold)", &out]);
    assert!(
        trailers.contains(&format!("Intent-Commit: {a}")),
        "{trailers}"
    );
    assert!(trailers.contains("Hydrated-Cluster: c1"), "{trailers}");
    assert!(
        trailers.contains(&format!("Verified-Intent: {a} ssh ")),
        "{trailers}"
    );

    // git verifies the operator's signature.
    let v = fx.verify_ssh(&out);
    assert!(
        v.status.success(),
        "git verify-commit: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(String::from_utf8_lossy(&v.stderr).contains("Good \"git\" signature"));

    // A Rendered record on the intent commit, naming the output commit.
    let notes = fx.notes(&a);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let r = &notes[0];
    assert_eq!(r["kind"], "Hydration");
    assert_eq!(r["outcome"], "Rendered");
    assert_eq!(r["reason"], "CommitVerified");
    assert_eq!(r["uid"], a.as_str());
    assert_eq!(r["childRefs"]["outputCommit"], out.as_str());
    assert_eq!(r["childRefs"]["signer"], "alice@example.com");
    assert_eq!(report.notes.len(), 1);
    assert_eq!(report.notes_pending, 0);
}

#[test]
fn a_second_run_is_a_no_op() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("one app");
    let first = fx.hydrate("w1");
    assert!(first.output_commit.is_some(), "{first}");
    let refs = fx.refs();
    for work in ["w1", "w-fresh"] {
        let again = fx.hydrate(work);
        assert!(again.ok(), "{again}");
        assert_eq!(again.output_commit, None, "{again}");
        assert!(again.commits.is_empty(), "{again}");
        assert!(again.notes.is_empty(), "{again}");
        assert_eq!(again.push_attempts, 0);
        assert_eq!(fx.refs(), refs, "nothing on the remote moved");
    }

    // A commit elsewhere in the repo (not the intent path) changes nothing either.
    fx.remote.write("README.md", "hello");
    fx.remote.commit("docs", None, "bob@example.com");
    let again = fx.hydrate("w1");
    assert!(again.ok(), "{again}");
    assert_eq!(again.output_commit, None, "{again}");
    assert_eq!(
        fx.bare(&["rev-list", "--count", "refs/heads/hydrated/c1"]),
        "1"
    );
}

#[test]
fn unverified_commits_are_skipped_and_noted() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    let a = fx.signed("cloud");
    fx.write_app("evil", "team-a", "1.0.0");
    let b = fx.remote.commit("unsigned", None, "bob@example.com");
    fx.write_app("wiki", "team-b", "1.0.0");
    let c = fx.signed("wiki, after an unsigned commit");
    fx.write_app("other", "team-b", "1.0.0");
    let d = fx
        .remote
        .commit("untrusted key", Some(&fx.mallory), &fx.mallory.email);

    let report = fx.hydrate("w1");
    assert!(!report.ok(), "{report}");
    // Fail closed: rendered at the last commit before the unsigned one.
    assert_eq!(report.revision.as_deref(), Some(a.as_str()), "{report}");
    assert_eq!(
        outcomes(&report),
        [
            (d.clone(), CommitOutcome::Refused),
            (c.clone(), CommitOutcome::Waiting),
            (b.clone(), CommitOutcome::Refused),
            (a.clone(), CommitOutcome::Rendered),
        ],
        "{report}"
    );
    let out = report.output_commit.clone().unwrap();
    assert_eq!(
        fx.files(&out, ""),
        [
            "team-a/helmrelease-cloud.yaml",
            "team-a/ocirepository-cloud.yaml"
        ]
    );
    let text = report.to_string();
    assert!(text.contains(&format!("{b} REFUSED: Unsigned")), "{text}");

    let nb = fx.notes(&b);
    assert_eq!(nb.len(), 1, "{nb:?}");
    assert_eq!(nb[0]["outcome"], "Rejected");
    assert_eq!(nb[0]["reason"], "UnsignedCommit");
    assert!(
        nb[0]["message"]
            .as_str()
            .unwrap()
            .contains("not rendered while it is in the history"),
        "{nb:?}"
    );
    let nd = fx.notes(&d);
    assert_eq!(nd[0]["reason"], "UntrustedSignature", "{nd:?}");
    assert_eq!(nd[0]["childRefs"]["verdict"], "UnknownKey", "{nd:?}");
    assert!(
        fx.notes(&c).is_empty(),
        "a waiting commit gets no record yet"
    );
    assert_eq!(fx.notes(&a)[0]["outcome"], "Rendered");

    // Again: nothing new is written, the refusals stay.
    let refs = fx.refs();
    let again = fx.hydrate("w1");
    assert!(!again.ok());
    assert_eq!(again.output_commit, None);
    assert!(again.notes.is_empty(), "{again}");
    assert_eq!(fx.refs(), refs);
    assert_eq!(fx.notes(&b).len(), 1);
}

#[test]
fn forged_output_commits_are_not_trusted() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    let a = fx.signed("cloud");
    let first = fx.hydrate("w1");
    assert!(first.ok(), "{first}");
    fx.write_app("evil", "team-a", "1.0.0");
    let b = fx.remote.commit("unsigned", None, "bob@example.com");

    // Someone who can push, but holds no trusted key, writes an output commit claiming b was hydrated.
    let forger = fx.root.join("forger");
    fx.remote.git(
        &fx.root,
        &[
            "clone",
            "-q",
            "-b",
            "hydrated/c1",
            fx.remote.bare.to_str().unwrap(),
            forger.to_str().unwrap(),
        ],
    );
    std::fs::write(forger.join("team-a/helmrelease-evil.yaml"), "kind: Evil\n").unwrap();
    fx.remote.git(&forger, &["add", "-A"]);
    fx.remote.git(
        &forger,
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@example.com",
            "commit",
            "-q",
            "-m",
            &format!("forged\n\nIntent-Commit: {b}\nHydrated-Cluster: c1\nVerified-Intent: {b} ssh SHA256:x alice@example.com"),
        ],
    );
    fx.remote
        .git(&forger, &["push", "-q", "origin", "hydrated/c1"]);

    let report = fx.hydrate("w1");
    // The forged commit does not move the base: b is verified (and refused), the forged file is removed.
    assert_eq!(
        report.last_hydrated.as_deref(),
        Some(a.as_str()),
        "{report}"
    );
    assert_eq!(outcomes(&report), [(b.clone(), CommitOutcome::Refused)]);
    assert_eq!(report.removed, ["team-a/helmrelease-evil.yaml"], "{report}");
    assert!(fx.notes(&b).iter().all(|r| r["outcome"] == "Rejected"));
}

#[test]
fn stale_objects_are_removed_when_an_intent_is_deleted() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.write_app("wiki", "team-b", "1.0.0");
    fx.signed("two apps");
    assert!(fx.hydrate("w1").ok());

    fx.remote.remove(&app_path("wiki", "team-b"));
    fx.write_app("cloud", "team-a", "6.6.5");
    let b = fx.signed("remove wiki, upgrade cloud");
    let report = fx.hydrate("w1");
    assert!(report.ok(), "{report}");
    assert_eq!(report.revision.as_deref(), Some(b.as_str()));
    assert_eq!(
        report.removed,
        [
            "team-b/helmrelease-wiki.yaml",
            "team-b/ocirepository-wiki.yaml"
        ]
    );
    assert!(report.added.is_empty(), "{report}");
    assert!(!report.changed.is_empty(), "{report}");
    let out = report.output_commit.unwrap();
    assert_eq!(
        fx.files(&out, ""),
        [
            "team-a/helmrelease-cloud.yaml",
            "team-a/ocirepository-cloud.yaml"
        ]
    );
    // The emptied namespace directory is gone too.
    assert_eq!(fx.bare(&["ls-tree", "--name-only", &out]), "team-a");
    assert_eq!(
        fx.bare(&["rev-list", "--count", "refs/heads/hydrated/c1"]),
        "2"
    );
    let trailers = fx.bare(&[
        "log",
        "-1",
        "--format=%(trailers:key=Intent-Commit,valueonly)",
        &out,
    ]);
    assert_eq!(trailers.trim(), b);
}

#[test]
fn invalid_intents_fail_closed() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("cloud");
    assert!(fx.hydrate("w1").ok());
    let before = fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]);
    fx.write_app("wiki", "team-b", "1.0.0");
    fx.write_app("broken", "team-b", "^6");
    let b = fx.signed("a valid and an invalid app");
    let report = fx.hydrate("w1");
    assert!(!report.ok(), "{report}");
    assert_eq!(report.output_commit, None, "no partial output");
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]), before);
    assert_eq!(outcomes(&report), [(b.clone(), CommitOutcome::Invalid)]);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("ApplicationInstance/team-b/broken")
                && p.contains("spec.chart.version")),
        "{report}"
    );
    let n = fx.notes(&b);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["outcome"], "Rejected");
    assert_eq!(n[0]["reason"], "InvalidSpec");
    assert!(
        n[0]["message"]
            .as_str()
            .unwrap()
            .contains("spec.chart.version")
    );
}

#[test]
fn path_mode_commits_into_the_intent_branch_outside_the_intent_path() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    let a = fx.signed("cloud");
    let mut opts = fx.options("w1");
    opts.out = Some(OutTarget::Path("hydrated/c1".into()));
    let report = hydrate_once(&opts).unwrap();
    assert!(report.ok(), "{report}");
    let out = report.output_commit.clone().unwrap();
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/main"]), out);
    assert_eq!(fx.bare(&["rev-parse", &format!("{out}^")]), a);
    // The output commit touches only the output path.
    let changed = fx.bare(&["diff-tree", "--no-commit-id", "--name-only", "-r", &out]);
    assert!(
        changed.lines().all(|l| l.starts_with("hydrated/c1/")),
        "{changed}"
    );
    assert_eq!(fx.files(&out, "hydrated").len(), 2);
    assert!(fx.verify_ssh(&out).status.success());

    // Intent verification ignores it: a new signed intent commit on top verifies and renders.
    fx.remote.git(
        &fx.remote.work,
        &["pull", "-q", "--rebase", "origin", "main"],
    );
    let again = hydrate_once(&opts).unwrap();
    assert_eq!(again.output_commit, None, "{again}");
    assert!(again.commits.is_empty(), "{again}");
    fx.write_app("wiki", "team-b", "1.0.0");
    let c = fx.signed("wiki");
    let third = hydrate_once(&opts).unwrap();
    assert!(third.ok(), "{third}");
    assert_eq!(outcomes(&third), [(c.clone(), CommitOutcome::Rendered)]);
    assert_eq!(third.last_hydrated.as_deref(), Some(a.as_str()));
    assert_eq!(fx.files("main", "hydrated").len(), 4);

    // An unverified intent commit at the head: nothing is signed on top of it.
    fx.remote.git(
        &fx.remote.work,
        &["pull", "-q", "--rebase", "origin", "main"],
    );
    fx.write_app("evil", "team-a", "1.0.0");
    let d = fx.remote.commit("unsigned", None, "bob@example.com");
    let fourth = hydrate_once(&opts).unwrap();
    assert!(!fourth.ok());
    assert_eq!(outcomes(&fourth), [(d.clone(), CommitOutcome::Refused)]);
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/main"]), d);
}

#[test]
fn signed_output_verifies_with_git_and_gpg() {
    let fx = Fx::new();
    // A short GNUPGHOME: gpg-agent's socket path must fit in 108 bytes.
    let gnupg = tempfile::Builder::new().prefix("vwo-h").tempdir().unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .args([
                "--batch",
                "--yes",
                "--no-tty",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .env("GNUPGHOME", gnupg.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let uid = "Hydrator <hydrate@example.com>";
    // A certify-only primary key and a signing subkey: the subkey must be the one that signs.
    gpg(&["--quick-gen-key", uid, "ed25519", "cert", "never"]);
    let fprs = |spec: &str| -> Vec<String> {
        gpg(&["--with-colons", "--list-keys", spec])
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_string())
            .collect()
    };
    let primary = fprs(uid).remove(0);
    gpg(&["--quick-add-key", &primary, "ed25519", "sign", "never"]);
    let subkey = fprs(uid)[1].clone();
    let secret = fx.root.join("operator.asc");
    std::fs::write(&secret, gpg(&["--armor", "--export-secret-keys", &primary])).unwrap();

    fx.write_app("cloud", "team-a", "6.6.4");
    let a = fx.signed("cloud");
    let mut opts = fx.options("w1");
    opts.signing_key = Some(secret);
    opts.author_email = "hydrate@example.com".into();
    let report = hydrate_once(&opts).unwrap();
    assert!(report.ok(), "{report}");
    let out = report.output_commit.clone().unwrap();
    let v = Command::new("git")
        .args(["verify-commit", "--raw", &out])
        .current_dir(&fx.remote.bare)
        .env("GNUPGHOME", gnupg.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&v.stderr);
    assert!(v.status.success(), "git verify-commit: {status}");
    assert!(status.contains(&format!("VALIDSIG {subkey}")), "{status}");

    // The run after recognises its own OpenPGP-signed commit: nothing to do.
    let again = hydrate_once(&opts).unwrap();
    assert_eq!(again.last_hydrated.as_deref(), Some(a.as_str()), "{again}");
    assert_eq!(again.output_commit, None);
    let _ = Command::new("gpgconf")
        .args(["--kill", "gpg-agent"])
        .env("GNUPGHOME", gnupg.path())
        .output();
}

#[test]
fn without_a_signing_key_output_is_unsigned_and_history_is_verified_again() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    let a = fx.signed("cloud");
    let mut opts = fx.options("w1");
    opts.signing_key = None;
    let first = hydrate_once(&opts).unwrap();
    assert!(first.ok(), "{first}");
    let out = first.output_commit.unwrap();
    assert!(!fx.verify_ssh(&out).status.success(), "unsigned output");
    let again = hydrate_once(&opts).unwrap();
    assert!(again.ok(), "{again}");
    assert_eq!(again.output_commit, None);
    assert!(again.notes.is_empty(), "{again}");
    assert_eq!(again.last_hydrated.as_deref(), Some(a.as_str()));
}

#[test]
fn two_concurrent_runs_make_one_output_commit_per_state_and_no_duplicate_notes() {
    let fx = Arc::new(Fx::new());
    let mut intents = Vec::new();
    let mut rejected = 0;
    for round in 0..4 {
        fx.write_app(&format!("app-{round}"), "team-a", "1.0.0");
        intents.push(fx.signed(&format!("round {round}")));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["wa", "wb"]
            .into_iter()
            .map(|work| {
                let (fx, barrier) = (Arc::clone(&fx), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let mut opts = fx.options(work);
                    // Distinct authors: the two runs build different commits for the same state.
                    opts.author_name = format!("hydrate {work}");
                    barrier.wait();
                    hydrate_once(&opts).unwrap()
                })
            })
            .collect();
        let reports: Vec<HydrateReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Exactly one run commits this state; the other loses the compare-and-swap (or fetches after
        // it) and finds nothing to change.
        let committed = reports.iter().filter(|r| r.output_commit.is_some()).count();
        assert_eq!(
            committed, 1,
            "exactly one output commit for each state: {}\n---\n{}",
            reports[0], reports[1]
        );
        assert!(reports.iter().all(HydrateReport::ok));
        rejected += reports
            .iter()
            .map(|r| r.push_attempts - u32::from(r.output_commit.is_some()))
            .sum::<u32>();
    }
    eprintln!("pushes rejected and retried: {rejected}");
    // One output commit per distinct rendered state, each for its own intent commit.
    let log = fx.bare(&[
        "log",
        "--format=%(trailers:key=Intent-Commit,valueonly)",
        "refs/heads/hydrated/c1",
    ]);
    let mut named: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    named.reverse();
    assert_eq!(
        named,
        intents.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Exactly one Rendered record per intent commit.
    for c in &intents {
        let n = fx.notes(c);
        assert_eq!(n.len(), 1, "{c}: {n:?}");
        assert_eq!(n[0]["outcome"], "Rendered");
    }
}

#[test]
fn the_cli_exit_codes() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("cloud");
    let policy = fx.root.join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&[&fx.alice], "range")).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
            .arg("hydrate")
            .args(["--repo", &fx.remote.url(), "--cluster-id", CLUSTER])
            .arg("--policy")
            .arg(&policy)
            .arg("--state-dir")
            .arg(fx.root.join("state"))
            .arg("--signing-key")
            .arg(&fx.operator.key)
            .args(extra)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["--once"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("output: committed"), "{stdout}");
    let (code, stdout, _) = run(&["--once", "--output", "json"]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["outputCommit"], serde_json::Value::Null);

    fx.write_app("evil", "team-a", "1.0.0");
    fx.remote.commit("unsigned", None, "bob@example.com");
    let (code, stdout, _) = run(&[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("REFUSED"), "{stdout}");

    let (code, _, stderr) = run(&["--out-path", "clusters/c1/x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("overlaps the intent path"), "{stderr}");
    let (code, _, stderr) = run(&["--out-path", "x", "--out-branch", "y"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn an_output_is_not_emptied_without_allow_empty_and_reserved_or_unlisted_namespaces_are_refused() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("add cloud");
    assert!(fx.hydrate("w").ok());
    let out = fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]);

    // A --repo-path that does not exist (a typo): refused naming the path, even with --allow-empty; nothing
    // pushed.
    let mut wrong = fx.options("w");
    wrong.repo_path = Some("clusters/typo".into());
    wrong.guards.allow_empty = true;
    let report = hydrate_once(&wrong).unwrap();
    assert!(!report.ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("clusters/typo does not exist")),
        "{:?}",
        report.problems
    );
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]), out);
    // Every intent deleted (the path kept by a file that is not a manifest): refused, naming the path and the
    // output, until --allow-empty says so.
    fx.remote
        .write(&format!("clusters/{CLUSTER}/README.md"), "intents\n");
    fx.remote.remove(&app_path("cloud", "team-a"));
    fx.signed("remove cloud");
    let err = hydrate_once(&fx.options("w")).unwrap_err().to_string();
    assert!(
        err.contains(&format!("intent path clusters/{CLUSTER} renders nothing"))
            && err.contains("output hydrated/c1 holds 2 file(s)")
            && err.contains("--allow-empty"),
        "{err}"
    );
    assert_eq!(fx.bare(&["rev-parse", "refs/heads/hydrated/c1"]), out);
    let mut allow = fx.options("w");
    allow.guards.allow_empty = true;
    assert!(hydrate_once(&allow).unwrap().ok());
    assert_eq!(fx.files("refs/heads/hydrated/c1", ""), Vec::<String>::new());

    // A signed intent in kube-system is refused (the rule render, the webhook and the reconcilers share);
    // with --namespaces, any namespace not listed is refused too.
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.write_app("sneaky", "kube-system", "6.6.4");
    fx.signed("kube-system");
    let report = hydrate_once(&allow).unwrap();
    assert!(!report.ok());
    assert!(
        report.problems.iter().any(|p| p.contains(
            "ApplicationInstance/kube-system/sneaky: metadata.namespace: NamespaceReserved"
        )),
        "{:?}",
        report.problems
    );
    fx.remote.remove(&app_path("sneaky", "kube-system"));
    fx.write_app("other", "team-b", "6.6.4");
    fx.signed("team-b");
    let mut listed = fx.options("w");
    listed.guards.namespaces = vec!["team-a".into()];
    let report = hydrate_once(&listed).unwrap();
    assert_eq!(
        report.problems,
        [format!(
            "{}: ApplicationInstance/team-b/other: metadata.namespace: NamespaceNotGated: team-b is not \
             among hydrate's --namespaces (team-a)",
            app_path("other", "team-b")
        )]
    );
    listed.guards.namespaces.push("team-b".into());
    assert!(hydrate_once(&listed).unwrap().ok());
    assert_eq!(fx.files("refs/heads/hydrated/c1", "").len(), 4);
}

/// `hydrate --engine argocd` commits what Argo CD gets: each instance's Application in its namespace and its
/// AppProject in Argo CD's.
#[test]
fn the_argocd_engine_hydrates_applications_and_their_projects() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("one app");
    let mut options = fx.options("w-argo");
    options.helm_engine =
        vworkspace_operator::render::HelmEngine::parse("argocd", "gitops").unwrap();
    let report = hydrate_once(&options).unwrap();
    assert!(report.ok(), "{report}");
    let out = report.output_commit.clone().expect("an output commit");
    assert_eq!(
        fx.files(&out, ""),
        [
            "gitops/appproject-team-a.cloud.yaml",
            "team-a/application-cloud.yaml"
        ],
        "{report}"
    );
    let app = fx.bare(&["show", &format!("{out}:team-a/application-cloud.yaml")]);
    assert!(
        app.contains("targetRevision: \"6.6.4\"") && app.contains("project: team-a.cloud"),
        "{app}"
    );
}

/// The trust policy's `charts` section in hydrate: a chart under a key rule is hydrated with the
/// OCIRepository's `verify` and the Secret of keys beside it; a chart no rule covers is refused.
#[test]
fn chart_trust_hydrates_verification_and_refuses_uncovered_charts() {
    let fx = Fx::new();
    fx.write_app("cloud", "team-a", "6.6.4");
    fx.signed("one app");
    let key = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEe/FgJb/9Qsb+1rObZAHvtYgW+O/4\n\
        tW2YR2J74p91ZJ3eGAlr12GjU1CawDQVV8ApBK2l/aJwzn7nAET3FJHK6A==\n\
        -----END PUBLIC KEY-----\n";
    let with_charts = |prefix: &str| {
        let text = format!(
            "{}charts:\n  rules:\n    - prefix: {prefix}\n      cosignKeys:\n        - name: release\n          key: {key:?}\n",
            policy_yaml(&[&fx.alice], "range")
        );
        TrustPolicy::from_yaml(&text).unwrap()
    };
    let mut options = fx.options("w-charts");
    options.policy = with_charts("oci://ghcr.io/nextcloud");
    let report = hydrate_once(&options).unwrap();
    assert!(report.ok(), "{report}");
    let out = report.output_commit.clone().expect("an output commit");
    let files = fx.files(&out, "team-a/");
    let secret = files
        .iter()
        .find(|f| f.starts_with("team-a/secret-cloud-cosign-"))
        .unwrap_or_else(|| panic!("no keys Secret in {files:?}"));
    let oci = fx.bare(&["show", &format!("{out}:team-a/ocirepository-cloud.yaml")]);
    let secret_name = secret
        .trim_start_matches("team-a/secret-")
        .trim_end_matches(".yaml");
    assert!(
        oci.contains("provider: cosign") && oci.contains(secret_name),
        "{oci}"
    );

    // A policy whose rules cover another registry: the chart is refused, nothing new is committed.
    let mut options = fx.options("w-charts-refused");
    options.policy = with_charts("oci://registry.example.com");
    let report = hydrate_once(&options).unwrap();
    assert!(!report.ok(), "{report}");
    assert!(
        report
            .to_string()
            .contains("no rule of the trust policy's charts section covers"),
        "{report}"
    );
}

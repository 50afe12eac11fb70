//! Hostile repositories (issue #22, "attacked at the edges"): a few thousand nested trees, a tree with more
//! entries than the bound, a zero blob over the blob bound that packs to almost nothing, a commit whose message
//! is over the commit bound, and a cluster path that does not exist. Each is built with real git (objects
//! written to the repository, commits made with `git commit-tree`, signed with a real SSH key where the case
//! needs a trusted commit) and given to `verify`, `render --rev`, `hydrate` and the operator's Git view
//! (`RepoSource::sync`, on a thread with a small stack like the blocking pool's). Every one is refused with a
//! reason naming the bound; no process dies of a signal.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gix::ObjectId;
use gix::objs::tree::{Entry, EntryKind};
use support::gitfix::{GitRemote, Signer, policy_yaml};
use vworkspace_operator::api::conditions::reasons;
use vworkspace_operator::git::bounds::{
    Bound, MAX_BLOB_BYTES, MAX_COMMIT_BYTES, MAX_OBJECT_ALLOC_BYTES, MAX_READ_BYTES,
    MAX_TREE_DEPTH, MAX_TREE_ENTRIES,
};
use vworkspace_operator::git::policy::TrustPolicy;
use vworkspace_operator::intent::IntentKind;
use vworkspace_operator::source::gitops::{RepoConfig, RepoSource, SyncOutcome};
use vworkspace_operator::source::{IntentSource, LiveIntent, Verdict};

const BIN: &str = env!("CARGO_BIN_EXE_vworkspace-operator");
const CLUSTER: &str = "x";
const PATH: &str = "clusters/x";
const APP: &str = "apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: web
  namespace: team-a
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: x
spec:
  appRef:
    catalogId: bookstack
  mode: placeholder
";

/// A cluster repo whose `main` holds one intent under `clusters/x`, signed by a trusted key.
struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    remote: GitRemote,
    alice: Signer,
    policy: PathBuf,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let remote = GitRemote::new(&root);
    let alice = Signer::new(&root.join("keys"), "alice@example.com");
    remote.write(&format!("{PATH}/web.yaml"), APP);
    remote.commit("web", Some(&alice), &alice.email);
    let policy = root.join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&[&alice], "range")).unwrap();
    Fx {
        _dir: dir,
        root,
        remote,
        alice,
        policy,
    }
}

impl Fx {
    fn repo(&self) -> gix::Repository {
        gix::open(&self.remote.bare).unwrap()
    }

    /// A blob of `size` zero bytes, streamed into `git hash-object -w` (it is stored compressed: a few KiB).
    fn zero_blob(&self, size: u64) -> ObjectId {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "head -c {size} /dev/zero | git hash-object -w --stdin"
            ))
            .current_dir(&self.remote.bare)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        ObjectId::from_hex(String::from_utf8(out.stdout).unwrap().trim().as_bytes()).unwrap()
    }

    fn blob(&self, data: &[u8]) -> ObjectId {
        self.repo().write_blob(data).unwrap().detach()
    }

    fn tree(&self, mut entries: Vec<Entry>) -> ObjectId {
        entries.sort();
        self.repo()
            .write_object(gix::objs::Tree { entries })
            .unwrap()
            .detach()
    }

    /// `depth` trees nested in one another (`d/d/d/…`), with a manifest at the bottom.
    fn deep(&self, depth: usize) -> ObjectId {
        let mut id = self.tree(vec![entry("a.yaml", EntryKind::Blob, self.blob(b"a: 1\n"))]);
        let repo = self.repo();
        for _ in 0..depth {
            id = repo
                .write_object(gix::objs::Tree {
                    entries: vec![entry("d", EntryKind::Tree, id)],
                })
                .unwrap()
                .detach();
        }
        id
    }

    /// One tree of `n` entries (empty files that are not manifests).
    fn wide(&self, n: usize) -> ObjectId {
        let empty = self.blob(b"");
        self.tree(
            (0..n)
                .map(|i| entry(&format!("f{i:07}.txt"), EntryKind::Blob, empty))
                .collect(),
        )
    }

    /// A commit on top of `main` whose tree is `main`'s with `edits` made (path, kind, object), with `message`,
    /// signed by alice when `signed`; `main` (in the bare remote) is moved to it. Returns its id.
    fn commit_on_main(
        &self,
        edits: &[(&str, EntryKind, ObjectId)],
        message: &[u8],
        signed: bool,
    ) -> String {
        let repo = self.repo();
        let parent = repo.rev_parse_single("refs/heads/main").unwrap().detach();
        let base_tree = repo
            .find_commit(parent)
            .unwrap()
            .tree_id()
            .unwrap()
            .detach();
        let mut editor = repo.edit_tree(base_tree).unwrap();
        for (path, kind, id) in edits {
            editor.upsert(*path, *kind, *id).unwrap();
        }
        let tree = editor.write().unwrap().detach().to_string();
        let msg = self.root.join("message");
        std::fs::write(&msg, message).unwrap();
        let parent = parent.to_string();
        let msg = msg.display().to_string();
        let key = format!("user.signingkey={}", self.alice.key.display());
        let mut args = vec!["-c", "gpg.format=ssh", "-c", &key, "commit-tree"];
        if signed {
            args.push("-S");
        }
        args.extend([tree.as_str(), "-p", parent.as_str(), "-F", msg.as_str()]);
        let out = Command::new("git")
            .args(&args)
            .current_dir(&self.remote.bare)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "alice")
            .env("GIT_AUTHOR_EMAIL", &self.alice.email)
            .env("GIT_COMMITTER_NAME", "alice")
            .env("GIT_COMMITTER_EMAIL", &self.alice.email)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "commit-tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        self.remote
            .git(&self.remote.bare, &["update-ref", "refs/heads/main", &id]);
        id
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn render(&self) -> Output {
        let repo = self.remote.bare.display().to_string();
        self.cli(&[
            "render",
            "--repo",
            &repo,
            "--rev",
            "main",
            "--cluster-id",
            CLUSTER,
        ])
    }

    fn verify(&self, path: &str) -> Output {
        let repo = self.remote.bare.display().to_string();
        let policy = self.policy.display().to_string();
        self.cli(&[
            "verify", "--repo", &repo, "--policy", &policy, "--path", path, "main",
        ])
    }

    fn hydrate(&self) -> Output {
        let operator = Signer::new(&self.root.join("operator-keys"), "operator@example.com");
        let repo = self.remote.bare.display().to_string();
        let policy = self.policy.display().to_string();
        let state = self.root.join("state").display().to_string();
        let key = operator.key.display().to_string();
        self.cli(&[
            "hydrate",
            "--repo",
            &repo,
            "--cluster-id",
            CLUSTER,
            "--policy",
            &policy,
            "--state-dir",
            &state,
            "--signing-key",
            &key,
        ])
    }

    /// One sync of the operator's Git view of this repo, on a thread with a 512 KiB stack (smaller than the
    /// blocking pool's 2 MiB: a recursive walk of a deep tree would overflow it and abort the process); then
    /// what it says of the intent in the repo.
    fn operator_view(&self) -> (SyncOutcome, Verdict) {
        self.operator_view_across(&|| {})
    }

    /// As [`Fx::operator_view`], with one sync before `change` is made (the view it had) and one after.
    fn operator_view_across(&self, change: &(dyn Fn() + Sync)) -> (SyncOutcome, Verdict) {
        let config = RepoConfig {
            url: self.remote.bare.display().to_string(),
            branch: "main".into(),
            path: PATH.into(),
            policy: TrustPolicy::load(&self.policy).unwrap(),
            credentials: Default::default(),
            cache_dir: self.root.join("operator-cache"),
            notes_signing_key: None,
        };
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn_scoped(scope, move || {
                    let source = RepoSource::open(config).unwrap();
                    let _ = source.sync();
                    change();
                    let outcome = source.sync();
                    let spec: serde_json::Value = serde_json::from_str(
                        r#"{"appRef":{"catalogId":"bookstack"},"mode":"placeholder"}"#,
                    )
                    .unwrap();
                    let labels = [
                        ("app.vworkspace.io/cluster-id".to_string(), "x".to_string()),
                        (
                            "app.vworkspace.io/managed-by".to_string(),
                            "control-plane".to_string(),
                        ),
                    ]
                    .into();
                    let verdict = source.check(&LiveIntent {
                        kind: IntentKind::ApplicationInstance,
                        namespace: "team-a",
                        name: "web",
                        spec: &spec,
                        labels: &labels,
                        annotations: &Default::default(),
                        managed_fields: &[],
                    });
                    (outcome, verdict)
                })
                .unwrap()
                .join()
                .expect("the operator's sync panicked")
        })
    }
}

fn entry(name: &str, kind: EntryKind, oid: ObjectId) -> Entry {
    Entry {
        mode: kind.into(),
        filename: name.into(),
        oid,
    }
}

/// Exited with `code` (not killed by a signal: no stack overflow, no abort, no OOM kill).
#[track_caller]
fn exited(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "status {:?}, stderr: {stderr}",
        out.status
    );
    stderr
}

#[track_caller]
fn names_bound(text: &str, bound: Bound) {
    let named = format!("(bound: {bound})");
    assert!(text.contains(&named), "{named:?} not in: {text}");
}

#[test]
fn a_few_thousand_nested_trees_are_refused_at_the_depth_bound_everywhere() {
    let fx = fixture();
    let deep = fx.deep(3000);
    fx.commit_on_main(
        &[("clusters/x/deep", EntryKind::Tree, deep)],
        b"deep\n",
        false,
    );

    // verify: the unsigned commit is refused for what it is (it never walks the tree below the path).
    let out = fx.verify(PATH);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    exited(&out, 1);
    assert!(stdout.contains("reason=Unsigned"), "{stdout}");

    // render reads the tree: refused at the depth bound, naming the commit and the path.
    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::TreeDepth);
    assert!(
        err.contains(&format!("tree depth exceeds {MAX_TREE_DEPTH} under {PATH}")),
        "{err}"
    );
    assert!(err.contains("commit "), "{err}");

    // The operator refuses the head, keeps the signed revision before it as its view, and survives indexing
    // the refused head (on a small stack).
    let (outcome, verdict) = fx.operator_view();
    assert!(
        matches!(outcome, SyncOutcome::Rejected { view: Some(_), .. }),
        "{outcome:?}"
    );
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    // Signed by a trusted key, the same tree is refused by hydrate (no output) and the operator (Blocked
    // with the bound's reason, the view stays).
    let fx = fixture();
    let deep = fx.deep(MAX_TREE_DEPTH as usize + 1);
    fx.commit_on_main(
        &[("clusters/x/deep", EntryKind::Tree, deep)],
        b"deep, signed\n",
        true,
    );
    let out = fx.hydrate();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.code().is_some_and(|c| c != 0), "{out:?}");
    names_bound(&text, Bound::TreeDepth);
    let (outcome, verdict) = fx.operator_view();
    match outcome {
        SyncOutcome::Rejected { reason, .. } => names_bound(&reason, Bound::TreeDepth),
        other => panic!("{other:?}"),
    }
    match verdict {
        Verdict::Blocked { reason, message } => {
            assert_eq!(reason, reasons::BOUND_EXCEEDED);
            names_bound(&message, Bound::TreeDepth);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wide_trees_are_refused_at_the_entry_and_tree_size_bounds() {
    let fx = fixture();
    let wide = fx.wide(MAX_TREE_ENTRIES as usize + 1);
    fx.commit_on_main(
        &[("clusters/x/wide", EntryKind::Tree, wide)],
        b"wide\n",
        false,
    );
    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::TreeEntries);

    // One tree object over the tree bound (about 9 MiB: 300,000 entries) is refused from its header.
    let fx = fixture();
    let huge = fx.wide(300_000);
    fx.commit_on_main(
        &[("clusters/x/huge", EntryKind::Tree, huge)],
        b"huge tree\n",
        false,
    );
    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::TreeBytes);
    let (outcome, verdict) = fx.operator_view();
    assert!(
        matches!(outcome, SyncOutcome::Rejected { view: Some(_), .. }),
        "{outcome:?}"
    );
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
}

#[test]
fn a_zero_blob_over_the_bound_is_refused_unread_and_only_manifests_are_read() {
    let fx = fixture();
    // Not a manifest: never read, whatever its size.
    let big = fx.zero_blob(2 * MAX_BLOB_BYTES);
    fx.commit_on_main(
        &[("clusters/x/big.bin", EntryKind::Blob, big)],
        b"big, not a manifest\n",
        true,
    );
    exited(&fx.render(), 0);

    // A manifest just over the blob bound, stored as a few KiB.
    let zero = fx.zero_blob(MAX_BLOB_BYTES + 1);
    fx.commit_on_main(
        &[("clusters/x/zero.yaml", EntryKind::Blob, zero)],
        b"zero\n",
        false,
    );
    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::BlobBytes);
    assert!(err.contains("clusters/x/zero.yaml"), "{err}");
    let (outcome, verdict) = fx.operator_view();
    assert!(
        matches!(outcome, SyncOutcome::Rejected { view: Some(_), .. }),
        "{outcome:?}"
    );
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    // Manifests each under the blob bound, together over the bytes-read bound (one blob, many names).
    let fx = fixture();
    let almost = fx.zero_blob(MAX_BLOB_BYTES);
    let n = (MAX_READ_BYTES / MAX_BLOB_BYTES) as usize + 1;
    let names: Vec<String> = (0..n).map(|i| format!("clusters/x/z{i}.yaml")).collect();
    let edits: Vec<(&str, EntryKind, ObjectId)> = names
        .iter()
        .map(|p| (p.as_str(), EntryKind::Blob, almost))
        .collect();
    fx.commit_on_main(&edits, b"many\n", false);
    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::ReadBytes);
}

#[test]
fn a_blob_over_the_allocation_limit_anywhere_fails_the_fetch_and_the_view_stays() {
    let fx = fixture();
    // Anywhere in the branch (outside the cluster path too): the operator fetches the whole branch, and
    // indexing the received pack would inflate it. It is refused at the allocation limit; the view stays.
    let (outcome, verdict) = fx.operator_view_across(&|| {
        let huge = fx.zero_blob(MAX_OBJECT_ALLOC_BYTES + 1);
        fx.commit_on_main(
            &[("assets/huge.bin", EntryKind::Blob, huge)],
            b"huge\n",
            true,
        );
    });
    match outcome {
        SyncOutcome::Unreachable { error } => assert!(error.contains("AllocationLimit"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    // render reads only the cluster path's manifests: the blob is never inflated.
    exited(&fx.render(), 0);
}

fn huge_message(size: u64) -> Vec<u8> {
    let mut message = b"huge\n\n".to_vec();
    message.resize(size as usize, b'a');
    message.push(b'\n');
    message
}

#[test]
fn a_commit_over_the_commit_bound_is_refused_unread() {
    let fx = fixture();
    // The running operator: the head is refused naming the bound, the view stays.
    let huge = std::sync::Mutex::new(String::new());
    let (outcome, verdict) = fx.operator_view_across(&|| {
        *huge.lock().unwrap() = fx.commit_on_main(&[], &huge_message(MAX_COMMIT_BYTES + 1), false);
    });
    let huge = huge.into_inner().unwrap();
    match outcome {
        SyncOutcome::Rejected { reason, view, .. } => {
            names_bound(&reason, Bound::CommitBytes);
            assert!(view.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    let out = fx.verify(PATH);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    exited(&out, 1);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&huge))
        .unwrap_or_default();
    assert!(line.contains("reason=BoundExceeded"), "{stdout}");
    assert!(line.contains("max commit size"), "{stdout}");

    let err = exited(&fx.render(), 1);
    names_bound(&err, Bound::CommitBytes);

    // A fresh operator cannot see past it (its parents are inside it): nothing is trusted, with the reason.
    let fresh = fixture();
    fresh.commit_on_main(&[], &huge_message(MAX_COMMIT_BYTES + 1), false);
    let (_, verdict) = fresh.operator_view();
    match verdict {
        Verdict::Blocked { reason, message } => {
            assert_eq!(reason, reasons::BOUND_EXCEEDED);
            names_bound(&message, Bound::CommitBytes);
        }
        other => panic!("{other:?}"),
    }

    // Over the allocation limit too: refused from its header by verify; hydrate (which fetches the branch
    // first) fails the fetch at the allocation limit.
    fx.commit_on_main(&[], &huge_message(MAX_OBJECT_ALLOC_BYTES + 1), false);
    let out = fx.verify(PATH);
    exited(&out, 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("reason=BoundExceeded"));
    let out = fx.hydrate();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.code().is_some_and(|c| c != 0), "{text}");
    assert!(text.contains("AllocationLimit"), "{text}");
}

#[test]
fn a_path_that_does_not_exist_fails_closed() {
    let fx = fixture();
    // verify: a typo is an error naming the path, not "nothing to verify".
    let out = fx.verify("clusters/typo");
    let err = exited(&out, 2);
    assert!(err.contains("clusters/typo does not exist"), "{err}");
    // A path that exists but that no commit in the range changes: nothing verified is not success.
    let head = fx.remote.git(&fx.remote.bare, &["rev-parse", "main"]);
    let next = fx.commit_on_main(&[], b"elsewhere\n", true);
    let repo = fx.remote.bare.display().to_string();
    let policy = fx.policy.display().to_string();
    let range = format!("{head}..{next}");
    let out = fx.cli(&[
        "verify", "--repo", &repo, "--policy", &policy, "--path", PATH, &range,
    ]);
    let err = exited(&out, 1);
    assert!(
        err.contains(&format!("no commit in {range} changes {PATH}")),
        "{err}"
    );

    // render: the path missing is an error, not an empty rendering.
    let out = fx.cli(&[
        "render",
        "--repo",
        &repo,
        "--rev",
        "main",
        "--cluster-id",
        "typo",
    ]);
    let err = exited(&out, 1);
    assert!(err.contains("clusters/typo does not exist"), "{err}");

    // The operator: a signed commit that removes the cluster's path blocks with its own reason; the view
    // does not become "no intents".
    let fx = fixture();
    fx.remote.remove(&format!("{PATH}/web.yaml"));
    fx.remote.write("clusters/other/readme.md", "moved\n");
    fx.remote
        .commit("remove the path", Some(&fx.alice), &fx.alice.email);
    let (outcome, verdict) = fx.operator_view();
    match outcome {
        SyncOutcome::Rejected { reason, .. } => {
            assert!(reason.contains("clusters/x does not exist"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match verdict {
        Verdict::Blocked { reason, message } => {
            assert_eq!(reason, reasons::CLUSTER_PATH_MISSING);
            assert!(message.contains("clusters/x does not exist"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // hydrate writes no (empty) output for it either.
    let out = fx.hydrate();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.code().is_some_and(|c| c != 0), "{text}");
    assert!(text.contains("clusters/x does not exist"), "{text}");
    let _: &Path = &fx.root;
}

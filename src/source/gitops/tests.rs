//! The Git view's unit tests (real git repositories and ssh-keygen signatures).

use super::*;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir);
    cmd
}

/// An ssh-keygen Ed25519 key at `dir/name`; returns `keytype base64`.
fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Commit a change to the cluster path, signed by `key` as `email`, dated `date`, and push it.
fn commit(dir: &Path, key: &str, email: &str, date: &str) -> String {
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("clusters/c")).unwrap();
    std::fs::write(work.join("clusters/c/app.yaml"), date).unwrap();
    run(git(&work).args(["add", "-A"]));
    run(git(&work)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .args(["-c", &format!("user.email={email}"), "-c", "user.name=T"])
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("user.signingkey={}", dir.join(key).display()))
        .args(["commit", "-q", "-S", "-m", date]));
    run(git(&work).args(["push", "-q", "origin", "HEAD:main"]));
    run(git(&work).args(["rev-parse", "HEAD"]))
}

/// A retired key (its `valid-before` passed) signs a commit dated inside its validity, after its parent so
/// the range's date rule does not see it: the operator judges it at the time it first saw it, and refuses
/// it, while what the key signed before its end, present at the first sync, stays trusted; also after a
/// restart and a policy reload.
#[test]
fn a_retired_key_signs_nothing_new_whatever_date_it_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let alice = keygen(dir, "alice");
    let ken = keygen(dir, "ken");
    run(git(dir).args(["init", "-q", "--bare", "-b", "main", "remote.git"]));
    run(git(dir).args(["init", "-q", "-b", "main", "work"]));
    run(git(&dir.join("work")).args(["remote", "add", "origin", "../remote.git"]));
    commit(dir, "alice", "alice@example.com", "1704067200 +0000");
    let k1 = commit(dir, "ken", "ken@example.com", "1717200000 +0000");
    let policy = TrustPolicy::from_yaml(&format!(
        "sshAllowedSigners: |\n  alice@example.com {alice}\n  ken@example.com valid-before=\"20250101\" {ken}\n"
    ))
    .unwrap();
    let config = RepoConfig {
        url: dir.join("remote.git").display().to_string(),
        branch: "main".into(),
        path: "clusters/c".into(),
        policy: policy.clone(),
        credentials: Credentials::default(),
        cache_dir: dir.join("cache"),
        notes_signing_key: None,
    };
    let source = RepoSource::open(config.clone()).unwrap();
    // The first sync of an empty record: the history there is judged at its dates.
    assert_eq!(source.sync(), SyncOutcome::Verified { head: k1.clone() });

    // Dated 2024-07-01, after its parent, pushed now: first seen after the key's end.
    let k2 = commit(dir, "ken", "ken@example.com", "1719792000 +0000");
    let refused = |outcome: SyncOutcome| match outcome {
        SyncOutcome::Rejected { head, reason, view } => {
            assert_eq!(head, k2);
            assert_eq!(view.as_deref(), Some(k1.as_str()));
            assert!(
                reason.contains(&format!("commit {k2} is not trusted: KeyExpired"))
                    && reason.contains("but first seen at"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    };
    refused(source.sync());
    drop(source);
    let source = RepoSource::open(config).unwrap();
    refused(source.sync());
    source.set_policy(Ok(policy));
    refused(source.sync());
}

/// Two syncs at once (the Git view's loop and `Operator::sync_now`) take turns: neither fails on the other's lock
/// in the clone, and the view ends at the head. Without the turn-taking a second fetch into the same clone can
/// fail while the first holds the ref's lock, and the second caller reads "unreachable" with the old view.
#[test]
fn two_syncs_at_once_take_turns_and_both_see_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let alice = keygen(dir, "alice");
    run(git(dir).args(["init", "-q", "--bare", "-b", "main", "remote.git"]));
    run(git(dir).args(["init", "-q", "-b", "main", "work"]));
    run(git(&dir.join("work")).args(["remote", "add", "origin", "../remote.git"]));
    commit(dir, "alice", "alice@example.com", "1704067200 +0000");
    let policy = TrustPolicy::from_yaml(&format!(
        "sshAllowedSigners: |\n  alice@example.com {alice}\n"
    ))
    .unwrap();
    let source = RepoSource::open(RepoConfig {
        url: dir.join("remote.git").display().to_string(),
        branch: "main".into(),
        path: "clusters/c".into(),
        policy,
        credentials: Credentials::default(),
        cache_dir: dir.join("cache"),
        notes_signing_key: None,
    })
    .unwrap();
    for round in 1..=12 {
        let head = commit(
            dir,
            "alice",
            "alice@example.com",
            &format!("{} +0000", 1704067200 + round * 60),
        );
        let outcomes = std::thread::scope(|s| {
            let both = [s.spawn(|| source.sync()), s.spawn(|| source.sync())];
            both.map(|t| t.join().unwrap())
        });
        // One of them verifies the new head; the other, after it, finds nothing new (or verifies it too).
        for outcome in &outcomes {
            assert!(
                matches!(outcome, SyncOutcome::Verified { head: h } if *h == head)
                    || *outcome == SyncOutcome::Unchanged,
                "round {round}: {outcomes:?}"
            );
        }
        assert!(
            outcomes.contains(&SyncOutcome::Verified { head: head.clone() }),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(
            source.status().last_verified_commit.as_deref(),
            Some(head.as_str())
        );
    }
}

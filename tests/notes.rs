//! The audit trail and provenance against real git: fixture repos and a bare remote built with the git CLI in
//! temp dirs (isolated from the developer's configuration), notes read back with plain git.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gix::ObjectId;
use serde_json::json;
use vworkspace_operator::git::notes::{
    NewRecord, NoteEntry, NoteLine, NotesWriter, OutcomeRecord, RetryPolicy, read_notes,
};
use vworkspace_operator::git::provenance::{LiveObject, Provenance, ProvenanceIndex};
use vworkspace_operator::git::remote::{self, Credentials};
use vworkspace_operator::git::repo::Repo;
use vworkspace_operator::intent::IntentKind;

/// Run git in `dir` isolated from any global or system configuration; panic with stderr on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir, args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org");
    c
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    remote: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let work = root.join("work");
        let remote = root.join("remote.git");
        std::fs::create_dir_all(&work).unwrap();
        git(&root, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        git(&work, &["init", "-q", "-b", "main"]);
        Self {
            _tmp: tmp,
            root,
            work,
            remote,
        }
    }

    /// Write files (path → content; `None` deletes), commit, return the commit id.
    fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> ObjectId {
        for (path, content) in files {
            let p = self.work.join(path);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, c).unwrap();
                }
                None => std::fs::remove_file(&p).unwrap(),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", message]);
        oid(git(&self.work, &["rev-parse", "HEAD"]).trim())
    }

    fn push(&self) {
        git(&self.work, &["push", "-q", self.remote.to_str().unwrap(), "main"]);
    }

    /// A bare cache of the remote fetched with gix, as the operator keeps it.
    fn cache(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        remote::open_or_init_cache(&dir).unwrap();
        remote::fetch(
            &dir,
            self.remote.to_str().unwrap(),
            &["+refs/heads/*:refs/heads/*"],
            &Credentials::None,
        )
        .unwrap();
        dir
    }

    fn remote_url(&self) -> String {
        self.remote.to_str().unwrap().to_string()
    }

    /// A fresh plain-git clone with every notes ref fetched, for reading back.
    fn reader(&self) -> PathBuf {
        let dir = self.root.join(format!("reader-{}", fastrand::u32(..)));
        git(
            &self.root,
            &[
                "clone",
                "-q",
                self.remote.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        git(&dir, &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"]);
        dir
    }
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.as_bytes()).unwrap()
}

fn record(uid: &str, generation: i64, outcome: &str, message: &str) -> OutcomeRecord {
    OutcomeRecord::new(NewRecord {
        cluster: "c1".into(),
        kind: "ApplicationInstance".into(),
        namespace: "team-a".into(),
        name: format!("app-{uid}"),
        uid: uid.into(),
        generation,
        outcome: outcome.into(),
        reason: "HelmReleaseReady".into(),
        message: message.into(),
        child_refs: BTreeMap::from([
            ("helmRelease".to_string(), format!("app-{uid}")),
            ("chartVersion".to_string(), "1.2.3".to_string()),
        ]),
        time: None,
    })
    .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
    }
}

#[test]
fn notes_are_readable_by_plain_git_and_rewriting_is_a_no_op() {
    let f = Fixture::new();
    let a = f.commit(&[("README.md", Some("a"))], "a");
    let b = f.commit(&[("README.md", Some("b"))], "b");
    f.push();
    let cache = f.cache("cache");
    let state = f.root.join("state");
    let mut w = NotesWriter::new(&cache, f.remote_url(), "c1", &state).unwrap();
    let r1 = record("u1", 1, "Ready", "installed; password=hunter2");
    let r2 = record("u2", 4, "Failed", "upgrade failed");
    let r3 = record("u3", 1, "Succeeded", "backup done");
    w.enqueue([
        NoteEntry {
            commit: a,
            record: r1.clone(),
        },
        NoteEntry {
            commit: a,
            record: r2.clone(),
        },
        NoteEntry {
            commit: b,
            record: r3.clone(),
        },
    ])
    .unwrap();
    let report = w.flush().unwrap();
    assert_eq!((report.delivered, report.pending), (3, 0), "{report:?}");

    let reader = f.reader();
    let shown = git(
        &reader,
        &["notes", "--ref", "vworkspace/c1", "show", &a.to_string()],
    );
    let lines: Vec<serde_json::Value> = shown
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert_eq!(lines[0]["id"], r1.id);
    assert_eq!(lines[0]["outcome"], "Ready");
    assert_eq!(lines[0]["message"], "installed; password=[REDACTED]");
    assert_eq!(lines[1]["uid"], "u2");
    assert_eq!(lines[1]["generation"], 4);
    assert_eq!(lines[1]["childRefs"]["chartVersion"], "1.2.3");
    assert!(!shown.contains("hunter2"));
    let log = git(&reader, &["log", "--notes=vworkspace/*", "--format=%H%n%N"]);
    assert!(log.contains(&r3.id) && log.contains(&r1.id), "{log}");
    assert!(log.contains("Notes (vworkspace/c1)") || log.contains(&r2.to_line()), "{log}");
    // One notes commit for the whole batch.
    let count = git(&reader, &["rev-list", "--count", "refs/notes/vworkspace/c1"]);
    assert_eq!(count.trim(), "1");

    // The same records again, even recomputed later with a new time: nothing changes on the remote.
    let tip = git(&f.remote, &["rev-parse", "refs/notes/vworkspace/c1"]);
    let mut again = record("u1", 1, "Ready", "installed");
    again.time = "2040-01-01T00:00:00Z".into();
    w.enqueue([NoteEntry {
        commit: a,
        record: again,
    }])
    .unwrap();
    let report = w.flush().unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(report.attempts, 0, "no push needed: {report:?}");
    assert_eq!(git(&f.remote, &["rev-parse", "refs/notes/vworkspace/c1"]), tip);

    // Reading with the library gives the same records, per ref.
    let repo = gix::open(&reader).unwrap();
    let notes = read_notes(&repo, &["refs/notes/vworkspace/*".to_string()], a).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, "refs/notes/vworkspace/c1");
    assert_eq!(
        notes[0].1.iter().filter(|l| matches!(l, NoteLine::Record(_))).count(),
        2
    );
}

#[test]
fn pending_records_survive_a_restart_while_the_remote_is_unreachable() {
    let f = Fixture::new();
    let a = f.commit(&[("README.md", Some("a"))], "a");
    f.push();
    let cache = f.cache("cache");
    let state = f.root.join("state");
    let away = f.root.join("remote-away.git");
    std::fs::rename(&f.remote, &away).unwrap();
    {
        let mut w = NotesWriter::new(&cache, f.remote_url(), "c1", &state)
            .unwrap()
            .with_retry(fast_retry());
        w.enqueue((0..5).map(|i| NoteEntry {
            commit: a,
            record: record(&format!("u{i}"), 1, "Ready", ""),
        }))
        .unwrap();
        let err = w.flush().unwrap_err().to_string();
        assert!(err.contains("fetch"), "{err}");
        assert_eq!(w.pending().len(), 5);
    } // the process "stops"
    std::fs::rename(&away, &f.remote).unwrap();
    let mut w = NotesWriter::new(&cache, f.remote_url(), "c1", &state).unwrap();
    assert_eq!(w.pending().len(), 5, "loaded from the pending store");
    let report = w.flush().unwrap();
    assert_eq!((report.delivered, report.pending), (5, 0));
    let reader = f.reader();
    let shown = git(
        &reader,
        &["notes", "--ref", "vworkspace/c1", "show", &a.to_string()],
    );
    assert_eq!(shown.lines().count(), 5);
    // Delivered records left the store: a third "process" has nothing to do.
    let w = NotesWriter::new(&cache, f.remote_url(), "c1", &state).unwrap();
    assert!(w.pending().is_empty());
}

#[test]
fn eight_concurrent_writers_with_random_push_rejections_deliver_every_record_once() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 200;
    const BATCH: usize = 50;
    let f = Fixture::new();
    let commits: Vec<ObjectId> = (0..20)
        .map(|i| f.commit(&[("n.txt", Some(&i.to_string()))], &format!("c{i}")))
        .collect();
    f.push();
    // The remote refuses about a third of all pushes, whatever they contain.
    let hook = f.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/bash\nif [ $((RANDOM % 3)) -eq 0 ]; then echo 'random rejection' >&2; exit 1; fi\nexit 0\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let caches: Vec<PathBuf> = (0..WRITERS).map(|i| f.cache(&format!("cache{i}"))).collect();
    let url = f.remote_url();
    let root = f.root.clone();
    let handles: Vec<_> = caches
        .into_iter()
        .enumerate()
        .map(|(w, cache)| {
            let url = url.clone();
            let commits = commits.clone();
            let state = root.join(format!("state{w}"));
            std::thread::spawn(move || {
                let mut writer = NotesWriter::new(&cache, url, "c1", &state)
                    .unwrap()
                    .with_retry(fast_retry());
                let (mut rejections, mut flushes) = (0, 0);
                for batch in 0..(PER_WRITER / BATCH) {
                    let entries = (0..BATCH).map(|k| {
                        let n = batch * BATCH + k;
                        NoteEntry {
                            commit: commits[(n * 7 + w) % commits.len()],
                            record: record(&format!("w{w}-r{n}"), 1, "Ready", "ok"),
                        }
                    });
                    writer.enqueue(entries).unwrap();
                    // Flush until this batch is delivered (a flush gives up after its attempts).
                    loop {
                        let r = writer.flush().unwrap();
                        flushes += 1;
                        rejections += r.rejections;
                        if r.pending == 0 {
                            break;
                        }
                    }
                }
                (rejections, flushes)
            })
        })
        .collect();
    let (mut total_rejections, mut total_flushes) = (0, 0);
    for h in handles {
        let (rejections, flushes) = h.join().unwrap();
        total_rejections += rejections;
        total_flushes += flushes;
    }
    eprintln!("{total_flushes} flushes, {total_rejections} rejected pushes");
    assert!(total_rejections > 0, "the test must exercise rejections");

    let reader = f.reader();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for c in &commits {
        let out = git_cmd(
            &reader,
            &["notes", "--ref", "vworkspace/c1", "show", &c.to_string()],
        )
        .output()
        .unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *ids.entry(v["uid"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(ids.len(), WRITERS * PER_WRITER, "every record present");
    assert!(ids.values().all(|&n| n == 1), "every record exactly once");
    let expected: HashSet<String> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |n| format!("w{w}-r{n}")))
        .collect();
    assert_eq!(ids.keys().cloned().collect::<HashSet<_>>(), expected);
}

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
    write_batch,
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
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        oid(git(&self.work, &["rev-parse", "HEAD"]).trim())
    }

    fn push(&self) {
        git(
            &self.work,
            &["push", "-q", self.remote.to_str().unwrap(), "main"],
        );
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
        git(
            &dir,
            &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
        );
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
    // Commit a's note holds two records, b's one: the largest note pushed (what paces the worker's pushes).
    assert_eq!(report.largest_note, 2, "{report:?}");

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
    assert!(
        log.contains("Notes (vworkspace/c1)") || log.contains(&r2.to_line()),
        "{log}"
    );
    // One notes commit for the whole batch.
    let count = git(
        &reader,
        &["rev-list", "--count", "refs/notes/vworkspace/c1"],
    );
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
    assert_eq!(
        git(&f.remote, &["rev-parse", "refs/notes/vworkspace/c1"]),
        tip
    );

    // Reading with the library gives the same records, per ref.
    let repo = gix::open(&reader).unwrap();
    let notes = read_notes(&repo, &["refs/notes/vworkspace/*".to_string()], a).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, "refs/notes/vworkspace/c1");
    assert_eq!(
        notes[0]
            .1
            .iter()
            .filter(|l| matches!(l, NoteLine::Record(_)))
            .count(),
        2
    );

    // The `notes` command reads the same.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    };
    let repo_arg = reader.to_str().unwrap();
    let (code, text) = cli(&["notes", "show", "--repo", repo_arg, &a.to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with(&format!("commit {a}\n")), "{text}");
    assert!(
        text.contains("[c1] ") && text.contains("ApplicationInstance/team-a/app-u1 gen 1  Ready/HelmReleaseReady: installed; password=[REDACTED]  (chartVersion=1.2.3, helmRelease=app-u1)"),
        "{text}"
    );
    assert!(
        text.contains("ApplicationInstance/team-a/app-u2 gen 4  Failed"),
        "{text}"
    );
    let (code, json) = cli(&[
        "notes",
        "show",
        "--repo",
        repo_arg,
        "--cluster-id",
        "c1",
        "--output",
        "json",
        "HEAD",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["commit"], b.to_string());
    assert_eq!(v["notes"][0]["ref"], "refs/notes/vworkspace/c1");
    assert_eq!(v["notes"][0]["clusterId"], "c1");
    assert_eq!(v["notes"][0]["records"][0]["id"], r3.id);
    // Another cluster's ref has nothing here: exit 1.
    let (code, text) = cli(&[
        "notes",
        "show",
        "--repo",
        repo_arg,
        "--cluster-id",
        "c2",
        "HEAD",
    ]);
    assert_eq!(
        (code, text.trim()),
        (1, format!("no vworkspace notes on {b}").as_str())
    );
    let (code, _) = cli(&[
        "notes",
        "show",
        "--repo",
        repo_arg,
        "--cluster-id",
        "../x",
        "HEAD",
    ]);
    assert_eq!(code, 2);
    // log: newest first, one JSON object per commit; a range excludes the base.
    let (code, log) = cli(&["notes", "log", "--repo", repo_arg, "--output", "json"]);
    assert_eq!(code, 0);
    let commits: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["commit"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(commits, vec![b.to_string(), a.to_string()]);
    let (_, log) = cli(&["notes", "log", "--repo", repo_arg, &format!("{a}..{b}")]);
    assert!(
        log.contains(&format!("commit {b}")) && !log.contains(&format!("commit {a}")),
        "{log}"
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
    let caches: Vec<PathBuf> = (0..WRITERS)
        .map(|i| f.cache(&format!("cache{i}")))
        .collect();
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
            *ids.entry(v["uid"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(ids.len(), WRITERS * PER_WRITER, "every record present");
    assert!(ids.values().all(|&n| n == 1), "every record exactly once");
    let expected: HashSet<String> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |n| format!("w{w}-r{n}")))
        .collect();
    assert_eq!(ids.keys().cloned().collect::<HashSet<_>>(), expected);
}

// ---------------------------------------------------------------------------------------------------------
// Provenance

const NS: &str = "clusters/c1/namespaces/team-a";

fn app_yaml(name: &str, version: &str, extra_annotations: &str) -> String {
    format!(
        "apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: {name}
  namespace: team-a
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: c1
  annotations:
    ops.vworkspace.io/backup: velero{extra_annotations}
spec:
  appRef: {{catalogId: nextcloud}}
  chart: {{sourceType: oci, url: oci://registry.example/charts/nextcloud, name: nextcloud, version: {version}}}
  release: {{name: {name}, namespace: team-a}}
  values: {{source: inline, inline: {{replicas: 1}}}}
"
    )
}

fn op_yaml(name: &str, ttl: &str) -> String {
    format!(
        "apiVersion: ops.vworkspace.io/v1alpha1
kind: Operation
metadata:
  name: {name}
  namespace: team-a
  labels:
    app.vworkspace.io/managed-by: control-plane
    app.vworkspace.io/cluster-id: c1
spec:
  targetRef: {{apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: alpha}}
  type: Backup
  engine: velero
  parameters: {{ttl: {ttl}}}
"
    )
}

/// The live form of an ApplicationInstance manifest as the API server returns it: defaults filled in.
fn live_app(version: &str) -> serde_json::Value {
    json!({
        "appRef": {"catalogId": "nextcloud"},
        "mode": "managed",
        "chart": {"sourceType": "oci", "url": "oci://registry.example/charts/nextcloud", "name": "nextcloud", "version": version},
        "release": {"name": "NAME", "namespace": "team-a"},
        "values": {"source": "inline", "inline": {"replicas": 1}}
    })
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.vworkspace.io/managed-by".to_string(),
            "control-plane".to_string(),
        ),
        ("app.vworkspace.io/cluster-id".to_string(), "c1".to_string()),
    ])
}

fn backup_annotation() -> BTreeMap<String, String> {
    BTreeMap::from([("ops.vworkspace.io/backup".to_string(), "velero".to_string())])
}

struct History {
    f: Fixture,
    c1: ObjectId,
    c2: ObjectId,
    side: ObjectId,
    c4: ObjectId,
    head: ObjectId,
}

/// c1: web + multi.yaml (alpha, backup-1) · c2: edits backup-1 only · side branch: edits alpha ·
/// c3 (main): another cluster · merge · c4: web's chart version · c5: README.
fn history() -> History {
    let f = Fixture::new();
    let web = format!("{NS}/applicationinstance-web.yaml");
    let multi = format!("{NS}/multi.yaml");
    let c1 = f.commit(
        &[
            (&web, Some(&app_yaml("web", "1.0.0", ""))),
            (
                &multi,
                Some(&format!(
                    "{}---\n{}",
                    app_yaml("alpha", "2.0.0", ""),
                    op_yaml("backup-1", "24h")
                )),
            ),
        ],
        "c1",
    );
    let c2 = f.commit(
        &[(
            &multi,
            Some(&format!(
                "{}---\n{}",
                app_yaml("alpha", "2.0.0", ""),
                op_yaml("backup-1", "72h")
            )),
        )],
        "c2: longer backup ttl",
    );
    git(&f.work, &["checkout", "-q", "-b", "side"]);
    let side = f.commit(
        &[(
            &multi,
            Some(&format!(
                "{}---\n{}",
                app_yaml("alpha", "2.1.0", ""),
                op_yaml("backup-1", "72h")
            )),
        )],
        "side: upgrade alpha",
    );
    git(&f.work, &["checkout", "-q", "main"]);
    f.commit(
        &[(
            "clusters/c2/namespaces/team-a/applicationinstance-ghost.yaml",
            Some(&app_yaml("ghost", "1.0.0", "")),
        )],
        "c3: other cluster",
    );
    git(
        &f.work,
        &["merge", "-q", "--no-ff", "-m", "merge side", "side"],
    );
    let c4 = f.commit(
        &[(&web, Some(&app_yaml("web", "1.1.0", "")))],
        "c4: upgrade web",
    );
    let head = f.commit(&[("README.md", Some("docs"))], "c5: docs");
    f.push();
    History {
        f,
        c1,
        c2,
        side,
        c4,
        head,
    }
}

fn check(
    index: &ProvenanceIndex,
    repo: &Repo,
    kind: IntentKind,
    name: &str,
    spec: &serde_json::Value,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Provenance {
    index
        .lookup(
            repo,
            &LiveObject {
                kind,
                namespace: "team-a",
                name,
                spec,
                labels,
                annotations,
            },
        )
        .unwrap()
}

fn with_name(mut spec: serde_json::Value, name: &str) -> serde_json::Value {
    spec["release"]["name"] = json!(name);
    spec
}

/// The walk caches of the provenance index hold what two revisions' walks use, however long the history: six
/// intents changed by each of twelve commits, an index per revision built after the previous one, every intent
/// looked up (a walk each). They once kept every file version's parsed documents and grew with each commit.
#[test]
fn provenance_caches_do_not_grow_with_history() {
    let f = Fixture::new();
    let cache = f.root.join("cache");
    remote::open_or_init_cache(&cache).unwrap();
    let url = format!("file://{}", f.remote.display());
    let names = ["a", "b", "c", "d", "e", "f"];
    let (l, a) = (labels(), backup_annotation());
    let mut sizes = Vec::new();
    let mut previous: Option<ProvenanceIndex> = None;
    for round in 0..12 {
        let version = format!("1.{round}.0");
        let files: Vec<(String, String)> = names
            .iter()
            .map(|n| {
                (
                    format!("{NS}/applicationinstance-{n}.yaml"),
                    app_yaml(n, &version, ""),
                )
            })
            .collect();
        let changes: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(p, y)| (p.as_str(), Some(y.as_str())))
            .collect();
        let commit = f.commit(&changes, &format!("round {round}"));
        f.push();
        remote::fetch(
            &cache,
            &url,
            &["+refs/heads/*:refs/heads/*"],
            &Credentials::None,
        )
        .unwrap();
        let repo = Repo::open(&cache).unwrap();
        let rev = repo.resolve_commit("main").unwrap();
        let index = match &previous {
            Some(p) => ProvenanceIndex::build_after(&repo, rev, "clusters/c1", p).unwrap(),
            None => ProvenanceIndex::build(&repo, rev, "clusters/c1").unwrap(),
        };
        for n in names {
            let live = with_name(live_app(&version), n);
            assert_eq!(
                check(
                    &index,
                    &repo,
                    IntentKind::ApplicationInstance,
                    n,
                    &live,
                    &l,
                    &a
                ),
                Provenance::Match {
                    intent_commit: commit,
                    path: format!("{NS}/applicationinstance-{n}.yaml"),
                },
                "round {round}, {n}"
            );
        }
        sizes.push(index.cache_entries());
        previous = Some(index);
    }
    assert!(
        sizes[3..].iter().all(|s| *s <= sizes[2]),
        "cache entries per revision: {sizes:?}"
    );
}

#[test]
fn provenance_matches_and_names_the_commit_that_changed_the_document() {
    let h = history();
    // The operator's own cache, fetched over file:// with gix.
    let cache = h.f.root.join("cache");
    remote::open_or_init_cache(&cache).unwrap();
    let url = format!("file://{}", h.f.remote.display());
    let fetched = remote::fetch(
        &cache,
        &url,
        &["+refs/heads/*:refs/heads/*"],
        &Credentials::None,
    )
    .unwrap();
    assert!(fetched.received_pack);
    assert_eq!(
        fetched.remote_refs,
        vec![("refs/heads/main".to_string(), h.head)]
    );
    let repo = Repo::open(&cache).unwrap();
    let rev = repo.resolve_commit("main").unwrap();
    assert_eq!(rev, h.head);
    let index = ProvenanceIndex::build(&repo, rev, "clusters/c1").unwrap();
    assert_eq!(
        index.len(),
        3,
        "web, alpha, backup-1; not the other cluster's ghost"
    );
    assert!(index.problems().is_empty(), "{:?}", index.problems());
    let (l, a) = (labels(), backup_annotation());
    let app = IntentKind::ApplicationInstance;

    // A single-document file: the last commit that changed it.
    assert_eq!(
        check(
            &index,
            &repo,
            app,
            "web",
            &with_name(live_app("1.1.0"), "web"),
            &l,
            &a
        ),
        Provenance::Match {
            intent_commit: h.c4,
            path: format!("{NS}/applicationinstance-web.yaml"),
        }
    );
    // Multi-document file: alpha last changed on the side branch (not by the merge, not by c2 which
    // touched only backup-1 in the same file).
    assert_eq!(
        check(
            &index,
            &repo,
            app,
            "alpha",
            &with_name(live_app("2.1.0"), "alpha"),
            &l,
            &a
        ),
        Provenance::Match {
            intent_commit: h.side,
            path: format!("{NS}/multi.yaml#0"),
        }
    );
    let op_spec = json!({
        "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "alpha"},
        "type": "Backup", "engine": "velero", "parameters": {"ttl": "72h"}
    });
    assert_eq!(
        check(
            &index,
            &repo,
            IntentKind::Operation,
            "backup-1",
            &op_spec,
            &l,
            &BTreeMap::new()
        ),
        Provenance::Match {
            intent_commit: h.c2,
            path: format!("{NS}/multi.yaml#1"),
        }
    );
    // At c1 the index names c1 for every object.
    let old = ProvenanceIndex::build(&repo, h.c1, "clusters/c1").unwrap();
    let mut op_spec_old = op_spec.clone();
    op_spec_old["parameters"]["ttl"] = json!("24h");
    assert_eq!(
        check(
            &old,
            &repo,
            IntentKind::Operation,
            "backup-1",
            &op_spec_old,
            &l,
            &BTreeMap::new()
        ),
        Provenance::Match {
            intent_commit: h.c1,
            path: format!("{NS}/multi.yaml#1"),
        }
    );
    // An index built after an earlier one reuses its answers where the document did not change since,
    // and walks again where it did (backup-1 changed in c2, after c1).
    let next = ProvenanceIndex::build_after(&repo, rev, "clusters/c1", &old).unwrap();
    assert_eq!(
        check(
            &next,
            &repo,
            IntentKind::Operation,
            "backup-1",
            &op_spec,
            &l,
            &BTreeMap::new()
        ),
        Provenance::Match {
            intent_commit: h.c2,
            path: format!("{NS}/multi.yaml#1"),
        }
    );
    let at_c4 = ProvenanceIndex::build(&repo, h.c4, "clusters/c1").unwrap();
    for name in ["web", "alpha"] {
        let version = if name == "web" { "1.1.0" } else { "2.1.0" };
        let spec = with_name(live_app(version), name);
        let first = check(&at_c4, &repo, app, name, &spec, &l, &a);
        let after = ProvenanceIndex::build_after(&repo, rev, "clusters/c1", &at_c4).unwrap();
        assert_eq!(check(&after, &repo, app, name, &spec, &l, &a), first);
        assert_eq!(check(&index, &repo, app, name, &spec, &l, &a), first);
    }
    // Labels and annotations outside *.vworkspace.io do not matter.
    let mut l2 = l.clone();
    l2.insert("team".into(), "blue".into());
    let mut a2 = a.clone();
    a2.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{}".into(),
    );
    assert!(matches!(
        check(
            &index,
            &repo,
            app,
            "web",
            &with_name(live_app("1.1.0"), "web"),
            &l2,
            &a2
        ),
        Provenance::Match { .. }
    ));
    // The path history of the multi-document file: newest first, the merge not listed.
    let hist = repo.path_history(rev, &format!("{NS}/multi.yaml")).unwrap();
    assert_eq!(hist, vec![h.side, h.c2, h.c1]);
    assert_eq!(repo.path_history(rev, "README.md").unwrap(), vec![h.head]);
}

#[test]
fn provenance_reports_hand_edits_label_and_annotation_edits_and_objects_not_in_git() {
    let h = history();
    let repo = Repo::open(&h.f.work).unwrap();
    let index = ProvenanceIndex::build(&repo, h.head, "clusters/c1").unwrap();
    let (l, a) = (labels(), backup_annotation());
    let app = IntentKind::ApplicationInstance;
    let path = format!("{NS}/applicationinstance-web.yaml");

    // kubectl edit of the chart version and of the inline values.
    let mut edited = with_name(live_app("9.9.9"), "web");
    edited["values"]["inline"]["adminPassword"] = json!("hunter2");
    let verdict = check(&index, &repo, app, "web", &edited, &l, &a);
    assert_eq!(
        verdict,
        Provenance::Mismatch {
            path: path.clone(),
            fields: vec![
                "spec.chart.version".to_string(),
                "spec.values.inline.adminPassword".to_string()
            ],
        }
    );
    assert!(
        !format!("{verdict:?}").contains("hunter2"),
        "values never appear"
    );

    // A changed cluster-id label.
    let mut l2 = l.clone();
    l2.insert("app.vworkspace.io/cluster-id".into(), "c2".into());
    assert_eq!(
        check(
            &index,
            &repo,
            app,
            "web",
            &with_name(live_app("1.1.0"), "web"),
            &l2,
            &a
        ),
        Provenance::Mismatch {
            path: path.clone(),
            fields: vec!["metadata.labels[\"app.vworkspace.io/cluster-id\"]".to_string()],
        }
    );
    // A capability annotation added by hand, and the pause annotation.
    let mut a2 = a.clone();
    a2.insert("ops.vworkspace.io/restore".into(), "velero".into());
    a2.insert("apps.vworkspace.io/reconcile".into(), "disabled".into());
    assert_eq!(
        check(
            &index,
            &repo,
            app,
            "web",
            &with_name(live_app("1.1.0"), "web"),
            &l,
            &a2
        ),
        Provenance::Mismatch {
            path: path.clone(),
            fields: vec![
                "metadata.annotations[\"apps.vworkspace.io/reconcile\"]".to_string(),
                "metadata.annotations[\"ops.vworkspace.io/restore\"]".to_string(),
            ],
        }
    );
    // A capability annotation removed by hand.
    assert_eq!(
        check(
            &index,
            &repo,
            app,
            "web",
            &with_name(live_app("1.1.0"), "web"),
            &l,
            &BTreeMap::new()
        ),
        Provenance::Mismatch {
            path,
            fields: vec!["metadata.annotations[\"ops.vworkspace.io/backup\"]".to_string()],
        }
    );
    // Not in Git: an unknown name, another cluster's object, the wrong kind.
    for (kind, name) in [
        (app, "nobody"),
        (app, "ghost"),
        (IntentKind::Operation, "web"),
    ] {
        assert_eq!(
            check(&index, &repo, kind, name, &live_app("1.0.0"), &l, &a),
            Provenance::NotInGit,
            "{kind}/{name}"
        );
    }
    // An invalid live spec is a mismatch naming the field.
    let verdict = check(&index, &repo, app, "web", &json!({"appRef": {}}), &l, &a);
    let Provenance::Mismatch { fields, .. } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(fields[0].starts_with("spec.appRef"), "{fields:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Credentials over a real smart-HTTP server (git http-backend behind basic auth)

/// A smart-HTTP git server: `git http-backend` as CGI behind HTTP basic authentication.
const HTTP_SERVER: &str = r#"
import base64, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
root, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
expected = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self): self.git()
    def do_POST(self): self.git()
    def git(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_USER=user,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""),
                   GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn http_server(root: &Path, user: &str, password: &str) -> HttpServer {
    use std::io::BufRead;
    let script = root.join("server.py");
    std::fs::write(&script, HTTP_SERVER).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg(user)
        .arg(password)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the smart-HTTP test server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    HttpServer {
        port: line.trim().parse().unwrap(),
        child,
    }
}

#[test]
fn credentials_reach_the_server_but_never_messages() {
    let f = Fixture::new();
    let a = f.commit(&[("README.md", Some("a"))], "a");
    f.push();
    git(&f.remote, &["config", "http.receivepack", "true"]);
    let server = http_server(&f.root, "bot", "s3cret-token");
    let url = format!("http://127.0.0.1:{}/remote.git", server.port);
    let cache = f.cache("cache");
    let good = Credentials::https("bot", "s3cret-token").unwrap();
    let bad = Credentials::https("bot", "wrong-pass-123").unwrap();

    // gix offers the credentials, but never over plain http: refused before anything is sent.
    let e = remote::fetch(&cache, &url, &["+refs/heads/*:refs/heads/*"], &good)
        .unwrap_err()
        .to_string();
    assert!(e.contains("clear text"), "{e}");
    assert!(!e.contains("s3cret-token"), "{e}");
    // Without credentials the server's 401 is an error too; a password in the URL is never printed.
    assert!(
        remote::fetch(
            &cache,
            &url,
            &["+refs/heads/*:refs/heads/*"],
            &Credentials::None
        )
        .is_err()
    );
    let in_url = format!("http://bot:leaky-pass@127.0.0.1:{}/remote.git", server.port);
    let e = remote::fetch(
        &cache,
        &in_url,
        &["+refs/heads/*:refs/heads/*"],
        &Credentials::None,
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("leaky-pass") && !e.contains("bot:"), "{e}");

    // The git CLI push answers the server's challenge through the askpass script.
    let repo = gix::open(&cache).unwrap();
    let entries = [NoteEntry {
        commit: a,
        record: record("u1", 1, "Ready", "ok"),
    }];
    let batch = write_batch(&repo, "refs/notes/vworkspace/c1", None, &entries).unwrap();
    let new = batch.commit.unwrap();
    let refname = "refs/notes/vworkspace/c1";
    let e = remote::push_cas(&cache, &url, new, refname, None, &bad)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("wrong-pass-123"), "{e}");
    assert!(e.contains("git push") && e.contains(&url), "{e}");
    let e = remote::push_cas(&cache, &in_url, new, refname, None, &Credentials::None);
    assert!(!format!("{e:?}").contains("leaky-pass"), "{e:?}");
    git(&f.remote, &["update-ref", "-d", refname]);
    assert_eq!(
        remote::push_cas(&cache, &url, new, refname, None, &good).unwrap(),
        remote::PushOutcome::Accepted
    );
    assert_eq!(
        git(&f.remote, &["rev-parse", refname]).trim(),
        new.to_string()
    );
    // Compare-and-swap: a second push expecting the ref to be absent is rejected, not forced.
    let again = write_batch(
        &repo,
        refname,
        None,
        &[NoteEntry {
            commit: a,
            record: record("u2", 1, "Ready", "ok"),
        }],
    )
    .unwrap()
    .commit
    .unwrap();
    assert!(matches!(
        remote::push_cas(&cache, &url, again, refname, None, &good).unwrap(),
        remote::PushOutcome::Rejected { .. }
    ));
    assert_eq!(
        git(&f.remote, &["rev-parse", refname]).trim(),
        new.to_string()
    );
}

#[test]
fn provenance_refuses_an_object_defined_twice_and_reports_unreadable_files() {
    let f = Fixture::new();
    let c = f.commit(
        &[
            (&format!("{NS}/a.yaml"), Some(&app_yaml("web", "1.0.0", ""))),
            (&format!("{NS}/b.yaml"), Some(&app_yaml("web", "1.0.0", ""))),
            (&format!("{NS}/broken.yaml"), Some("kind: [unclosed")),
        ],
        "dup",
    );
    let repo = Repo::open(&f.work).unwrap();
    let index = ProvenanceIndex::build(&repo, c, "clusters/c1").unwrap();
    assert_eq!(index.problems().len(), 2, "{:?}", index.problems());
    let verdict = check(
        &index,
        &repo,
        IntentKind::ApplicationInstance,
        "web",
        &with_name(live_app("1.0.0"), "web"),
        &labels(),
        &backup_annotation(),
    );
    let Provenance::Mismatch { path, fields } = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(path, format!("{NS}/a.yaml"));
    assert_eq!(
        fields,
        vec![format!(
            "metadata.name (the object is defined more than once in Git, also at {NS}/b.yaml)"
        )]
    );
}

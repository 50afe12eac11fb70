//! Write 10,000 outcome records (one per commit, on 10,000 commits) as git notes and push them to a bare
//! remote on disk: `NotesWriter::enqueue` (pending store, fsynced) + `flush` (fetch, one notes commit with
//! gix, compare-and-swap push with the git CLI, fetch again to confirm delivery).
//!
//! Each iteration starts from a fresh copy of the remote without notes (setup not timed).
//! `benches/notes-vs-git.sh` runs this and a `git notes add` loop side by side.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gix::ObjectId;
use vworkspace_operator::git::notes::{NewRecord, NoteEntry, NotesWriter, OutcomeRecord};
use vworkspace_operator::git::remote::{self, Credentials};

const RECORDS: usize = 10_000;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    template: PathBuf,
    cache: PathBuf,
    commits: Vec<ObjectId>,
}

/// A bare remote with `n` commits on main (made with git fast-import) and the operator's cache of it.
fn fixture(n: usize) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let template = root.join("remote-template.git");
    git(
        &root,
        &["init", "-q", "--bare", "-b", "main", "remote-template.git"],
    );
    let mut stream = String::new();
    for i in 0..n {
        let msg = format!("intent change {i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter Alice <alice@example.org> {} +0000\ndata {}\n{msg}M 644 inline clusters/c1/n.txt\ndata {}\n{i}\n\n",
            1_700_000_000 + i,
            msg.len(),
            i.to_string().len() + 1
        ));
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&template)
        .args(["fast-import", "--quiet"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let cache = root.join("cache");
    remote::open_or_init_cache(&cache).expect("cache");
    remote::fetch(
        &cache,
        template.to_str().expect("utf-8"),
        &["+refs/heads/*:refs/heads/*"],
        &Credentials::None,
    )
    .expect("fetch");
    let commits = git(&template, &["rev-list", "main"])
        .lines()
        .map(|l| ObjectId::from_hex(l.as_bytes()).expect("sha"))
        .collect();
    Fixture {
        _tmp: tmp,
        root,
        template,
        cache,
        commits,
    }
}

fn entries(commits: &[ObjectId]) -> Vec<NoteEntry> {
    commits
        .iter()
        .enumerate()
        .map(|(i, c)| NoteEntry {
            commit: *c,
            record: OutcomeRecord::new(NewRecord {
                cluster: "c1".into(),
                kind: "ApplicationInstance".into(),
                namespace: format!("team-{}", i % 50),
                name: format!("app-{i}"),
                uid: format!("00000000-0000-0000-0000-{i:012}"),
                generation: 1,
                outcome: "Ready".into(),
                reason: "HelmReleaseReady".into(),
                message: "Helm install succeeded for release app".into(),
                child_refs: BTreeMap::from([
                    ("helmRelease".to_string(), format!("app-{i}")),
                    ("chartVersion".to_string(), "1.2.3".to_string()),
                ]),
                time: None,
            })
            .expect("record"),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let f = fixture(RECORDS);
    let records = entries(&f.commits);
    let mut run = 0u32;
    let mut group = c.benchmark_group("notes");
    group.sample_size(10);
    group.bench_function("write_and_push_10000_records", |b| {
        b.iter_batched(
            || {
                run += 1;
                let remote = f.root.join(format!("remote-{run}.git"));
                let out = Command::new("cp")
                    .arg("-a")
                    .arg(&f.template)
                    .arg(&remote)
                    .status()
                    .expect("cp");
                assert!(out.success());
                let state = f.root.join(format!("state-{run}"));
                (remote, state, records.clone())
            },
            |(remote, state, records)| {
                let mut w =
                    NotesWriter::new(&f.cache, remote.to_str().expect("utf-8"), "c1", &state)
                        .expect("writer");
                w.enqueue(records).expect("enqueue");
                let report = w.flush().expect("flush");
                assert_eq!((report.delivered, report.pending), (RECORDS, 0));
                std::fs::remove_dir_all(&remote).ok();
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

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

fn entries(commits: &[ObjectId], run: u32) -> Vec<NoteEntry> {
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
                message: format!("Helm install succeeded for release app (run {run})"),
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
                // Fresh records every iteration: new note blobs, nothing already in the object store.
                (remote, state, entries(&f.commits, run))
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

const OBJECTS: usize = 300;
const HISTORY: usize = 1_000;

fn app_doc(i: usize, version: usize) -> String {
    format!(
        "apiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata:\n  name: app{i}\n  namespace: ns{ns}\n  labels: {{app.vworkspace.io/cluster-id: c1}}\nspec:\n  appRef: {{catalogId: nextcloud}}\n  chart: {{sourceType: oci, url: oci://r.example/c, name: c, version: 1.0.{version}}}\n  release: {{name: app{i}, namespace: ns{ns}}}\n  values: {{source: inline, inline: {{replicas: 1}}}}\n",
        ns = i % 10
    )
}

/// 300 ApplicationInstances in 300 files, then 1,000 commits each changing one of them.
fn provenance_fixture() -> (tempfile::TempDir, PathBuf, Vec<usize>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", "repo.git"],
    );
    let mut versions = vec![0usize; OBJECTS];
    let mut stream = String::new();
    let file = |i: usize| {
        format!(
            "clusters/c1/namespaces/ns{}/applicationinstance-app{i}.yaml",
            i % 10
        )
    };
    let mut push_commit = |n: usize, changes: &[(String, String)]| {
        let msg = format!("change {n}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter Alice <alice@example.org> {} +0000\ndata {}\n{msg}",
            1_700_000_000 + n,
            msg.len()
        ));
        for (path, content) in changes {
            stream.push_str(&format!(
                "M 644 inline {path}\ndata {}\n{content}\n",
                content.len()
            ));
        }
    };
    let initial: Vec<(String, String)> = (0..OBJECTS).map(|i| (file(i), app_doc(i, 0))).collect();
    push_commit(0, &initial);
    let mut rng = fastrand::Rng::with_seed(7);
    for n in 1..=HISTORY {
        let i = rng.usize(..OBJECTS);
        versions[i] += 1;
        push_commit(n, &[(file(i), app_doc(i, versions[i]))]);
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&repo)
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
    (tmp, repo, versions)
}

fn bench_provenance(c: &mut Criterion) {
    use vworkspace_operator::git::provenance::{LiveObject, Provenance, ProvenanceIndex};
    use vworkspace_operator::git::repo::Repo;
    use vworkspace_operator::intent::IntentKind;
    let (_tmp, path, versions) = provenance_fixture();
    let repo = Repo::open(&path).expect("open");
    let rev = repo.resolve_commit("main").expect("main");
    let labels = BTreeMap::from([("app.vworkspace.io/cluster-id".to_string(), "c1".to_string())]);
    let annotations = BTreeMap::new();
    let specs: Vec<serde_json::Value> = (0..OBJECTS)
        .map(|i| {
            serde_json::json!({
                "appRef": {"catalogId": "nextcloud"}, "mode": "managed",
                "chart": {"sourceType": "oci", "url": "oci://r.example/c", "name": "c", "version": format!("1.0.{}", versions[i])},
                "release": {"name": format!("app{i}"), "namespace": format!("ns{}", i % 10)},
                "values": {"source": "inline", "inline": {"replicas": 1}}
            })
        })
        .collect();
    let names: Vec<(String, String)> = (0..OBJECTS)
        .map(|i| (format!("ns{}", i % 10), format!("app{i}")))
        .collect();
    let check_all = |index: &ProvenanceIndex, specs: &[serde_json::Value]| {
        for (i, (ns, name)) in names.iter().enumerate() {
            let verdict = index
                .lookup(
                    &repo,
                    &LiveObject {
                        kind: IntentKind::ApplicationInstance,
                        namespace: ns,
                        name,
                        spec: &specs[i],
                        labels: &labels,
                        annotations: &annotations,
                    },
                )
                .expect("lookup");
            assert!(matches!(verdict, Provenance::Match { .. }), "{verdict:?}");
        }
    };
    let mut group = c.benchmark_group("provenance");
    group.sample_size(10);
    group.bench_function("index_and_check_300_objects_1000_commits", |b| {
        b.iter(|| {
            let index = ProvenanceIndex::build(&repo, rev, "clusters/c1").expect("index");
            check_all(&index, &specs);
        })
    });
    // The controller's steady state: the previous revision was indexed, one new commit arrived.
    let parent = repo.resolve_commit("main~1").expect("main~1");
    let mut parent_specs = specs.clone();
    let changed = (0..OBJECTS)
        .find(|&i| {
            let at_parent = ProvenanceIndex::build(&repo, parent, "clusters/c1").expect("index");
            at_parent
                .lookup(
                    &repo,
                    &LiveObject {
                        kind: IntentKind::ApplicationInstance,
                        namespace: &names[i].0,
                        name: &names[i].1,
                        spec: &specs[i],
                        labels: &labels,
                        annotations: &annotations,
                    },
                )
                .is_ok_and(|v| !matches!(v, Provenance::Match { .. }))
        })
        .expect("the last commit changed one object");
    parent_specs[changed]["chart"]["version"] =
        serde_json::json!(format!("1.0.{}", versions[changed] - 1));
    let previous = ProvenanceIndex::build(&repo, parent, "clusters/c1").expect("index");
    check_all(&previous, &parent_specs);
    group.bench_function("incremental_check_300_objects_after_one_new_commit", |b| {
        b.iter(|| {
            let index =
                ProvenanceIndex::build_after(&repo, rev, "clusters/c1", &previous).expect("index");
            check_all(&index, &specs);
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_provenance);
criterion_main!(benches);

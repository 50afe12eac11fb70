//! Verifying 1,000 SSH-signed commits: the range walk (with and without a path filter), one commit, and
//! loading the policy. The repository is built by `benches/verify-vs-git.sh --build-only` (git CLI, real
//! ssh-keygen signatures), the same repository the script times against `git verify-commit`.
//!
//!   cargo bench --bench verify
//!   VWO_BENCH_DIR=/path/built/by/the/script cargo bench --bench verify   # reuse a built repo

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vworkspace_operator::git::policy::{Mode, TrustPolicy};
use vworkspace_operator::git::repo::Repo;
use vworkspace_operator::git::verify::Verifier;

const COMMITS: u64 = 1000;

/// The bench repo's directory: `VWO_BENCH_DIR` if set, else built once under the target tmp dir.
fn bench_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VWO_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-verify-1000");
    if !dir.join("repo").join("HEAD").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/verify-vs-git.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg("--build-only")
            .arg(&dir)
            .env("N", COMMITS.to_string())
            .status()
            .expect("run benches/verify-vs-git.sh");
        assert!(status.success(), "building the bench repo failed");
    }
    dir
}

fn verify(c: &mut Criterion) {
    let dir = bench_dir();
    let repo = Repo::open(dir.join("repo")).expect("open bench repo");
    let policy_text = std::fs::read_to_string(dir.join("policy.yaml")).expect("policy");
    let policy = TrustPolicy::from_yaml(&policy_text).expect("valid policy");
    let head = repo.resolve_commit("main").expect("main");

    // The work being timed must be the real thing: every commit checked and accepted.
    let report = Verifier::new(&repo, &policy)
        .range(None, head, Some("clusters/bench"), Mode::Range)
        .expect("walk");
    assert!(report.ok(), "bench commits must verify");
    assert_eq!(report.verdicts.len() as u64, COMMITS);

    let mut g = c.benchmark_group("verify");
    g.sample_size(20);
    g.throughput(Throughput::Elements(COMMITS));
    g.bench_function("range_1000_ssh_commits", |b| {
        b.iter(|| {
            let r = Verifier::new(&repo, &policy)
                .range(None, head, None, Mode::Range)
                .expect("walk");
            assert!(r.ok());
            r
        })
    });
    g.bench_function("range_1000_ssh_commits_path_filter", |b| {
        b.iter(|| {
            let r = Verifier::new(&repo, &policy)
                .range(None, head, Some("clusters/bench"), Mode::Range)
                .expect("walk");
            assert!(r.ok());
            r
        })
    });
    g.finish();

    let mut g = c.benchmark_group("verify_single");
    g.bench_function("one_ssh_commit", |b| {
        b.iter(|| {
            let v = Verifier::new(&repo, &policy).commit(head);
            assert!(v.ok);
            v
        })
    });
    g.bench_function("policy_load", |b| {
        b.iter(|| TrustPolicy::from_yaml(&policy_text).expect("valid policy"))
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);

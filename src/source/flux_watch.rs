//! GitOps: follow the revisions Flux has of the cluster path, so the Git view is fetched the moment Flux has a
//! new commit instead of at the next fetch interval.
//!
//! Flux already knows the commit it is about to apply: the GitRepository's artifact revision (source-controller
//! fetched it), then the Kustomization's `lastAttemptedRevision` and `lastAppliedRevision` (kustomize-controller
//! applied it). This watches the Kustomizations whose path covers `clusters/<id>` and that read a
//! GitRepository of the operator's repository and branch; when one of them names a commit that is not the
//! operator's verified view, the view is fetched and judged at once. The fetch interval stays, as the fallback when Flux is absent or cannot be read. Only the few
//! fields below are kept of each object.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tracing::{debug, info};

use super::IntentSource;
use super::gitops::RepoSource;
use crate::k8s::apply::Resources;

/// Whether a Kustomization with `path` applies the cluster path `clusters/<id>`: the path itself or a folder
/// above it (`./` is the whole repo).
pub fn applies_cluster_path(path: &str, cluster_id: &str) -> bool {
    let wanted = format!("clusters/{cluster_id}");
    let path = path.trim_start_matches("./").trim_end_matches('/');
    path.is_empty() || path == wanted || wanted.starts_with(&format!("{path}/"))
}

/// The commit of a Flux revision (`main@sha1:<commit>`, or a bare commit).
pub fn applied_commit(revision: &str) -> &str {
    revision.rsplit(':').next().unwrap_or(revision)
}

type Key = (String, String);

/// What Flux says of the cluster path, folded from the watch events: per Kustomization that applies it, the
/// GitRepository it reads and the commits it attempted and applied; per GitRepository, its artifact's commit.
#[derive(Debug, Default)]
pub struct FluxRevisions {
    kustomizations: BTreeMap<Key, Applying>,
    repositories: BTreeMap<Key, Repository>,
}

/// A GitRepository: whether it reads the operator's repo and branch, and its artifact's commit.
#[derive(Debug)]
struct Repository {
    ours: bool,
    commit: Option<String>,
}

/// The same repository, written two ways: scheme and host case-insensitive, without credentials, a trailing `/`
/// or `.git`.
fn same_repo(a: &str, b: &str) -> bool {
    fn norm(url: &str) -> String {
        let url = url.trim().trim_end_matches('/').trim_end_matches(".git");
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        format!(
            "{}://{}/{path}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    }
    norm(a) == norm(b)
}

/// A Kustomization that applies the cluster path.
#[derive(Debug)]
struct Applying {
    source: Key,
    attempted: Option<String>,
    applied: Option<String>,
}

fn key(obj: &Value) -> Key {
    let at = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (
        at("/metadata/namespace").to_string(),
        at("/metadata/name").to_string(),
    )
}

impl FluxRevisions {
    /// A Kustomization as the watch saw it (`deleted`: gone).
    pub fn kustomization(&mut self, obj: &Value, cluster_id: &str, deleted: bool) {
        let k = key(obj);
        let path = obj
            .pointer("/spec/path")
            .and_then(Value::as_str)
            .unwrap_or("");
        let git =
            obj.pointer("/spec/sourceRef/kind").and_then(Value::as_str) == Some("GitRepository");
        if deleted || !git || !applies_cluster_path(path, cluster_id) {
            self.kustomizations.remove(&k);
            return;
        }
        let source = (
            obj.pointer("/spec/sourceRef/namespace")
                .and_then(Value::as_str)
                .unwrap_or(&k.0)
                .to_string(),
            obj.pointer("/spec/sourceRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        let commit = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .map(|r| applied_commit(r).to_string())
        };
        self.kustomizations.insert(
            k,
            Applying {
                source,
                attempted: commit("/status/lastAttemptedRevision"),
                applied: commit("/status/lastAppliedRevision"),
            },
        );
    }

    /// A GitRepository as the watch saw it (`deleted`: gone). It is ours when it reads `url` at `branch` (a
    /// Kustomization reading another repository, or another branch such as a hydrated one, applies something
    /// else, whatever its path).
    pub fn repository(&mut self, obj: &Value, url: &str, branch: &str, deleted: bool) {
        let k = key(obj);
        if deleted {
            self.repositories.remove(&k);
            return;
        }
        let at = |p: &str| obj.pointer(p).and_then(Value::as_str);
        let ours = at("/spec/url").is_some_and(|u| same_repo(u, url))
            && at("/spec/ref/branch").is_none_or(|b| b == branch);
        let commit = at("/status/artifact/revision").map(|r| applied_commit(r).to_string());
        self.repositories.insert(k, Repository { ours, commit });
    }

    /// The Kustomizations that apply the cluster path of the operator's repository.
    fn ours(&self) -> impl Iterator<Item = (&Applying, &Repository)> {
        self.kustomizations.values().filter_map(|k| {
            let repo = self.repositories.get(&k.source)?;
            repo.ours.then_some((k, repo))
        })
    }

    /// Every commit Flux has for the cluster path: fetched by the GitRepositories the Kustomizations read,
    /// attempted or applied by those Kustomizations.
    pub fn commits(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (k, repo) in self.ours() {
            out.extend(k.attempted.iter().chain(&k.applied).cloned());
            out.extend(repo.commit.iter().cloned());
        }
        out.retain(|c| !c.is_empty());
        out
    }

    /// The commit Flux last applied to the cluster path (the first such Kustomization's, by namespace and name).
    pub fn applied(&self) -> Option<String> {
        self.ours()
            .find_map(|(k, _)| k.applied.clone())
            .filter(|c| !c.is_empty())
    }
}

/// Watch Flux's Kustomizations and GitRepositories and wake `fetch_now` whenever Flux has a commit of the
/// cluster path that is not the verified view (once per commit). Waits while Flux's CRDs are not installed.
pub async fn run(
    client: Client,
    resources: Resources,
    cluster_id: String,
    source: Arc<RepoSource>,
    fetch_now: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let kinds = loop {
        let ks = resources
            .resolve("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
            .await;
        let git = resources
            .resolve("source.toolkit.fluxcd.io/v1", "GitRepository")
            .await;
        if let (Ok(Some(ks)), Ok(Some(git))) = (ks, git) {
            break (ks, git);
        }
        debug!(
            "Flux's Kustomization or GitRepository API is not served; the fetch interval alone applies"
        );
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    };
    let events = |ar: &kube::discovery::ApiResource, is_ks: bool| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |e| (is_ks, e))
            .boxed()
    };
    let mut stream = futures::stream::select(events(&kinds.0, true), events(&kinds.1, false));
    let mut flux = FluxRevisions::default();
    let mut told: BTreeSet<String> = BTreeSet::new();
    info!("following Flux's revisions of the cluster path");
    loop {
        let (is_ks, event) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            next = stream.next() => match next {
                Some(e) => e,
                None => return,
            },
        };
        let (obj, deleted) = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
            Ok(watcher::Event::Delete(o)) => (o, true),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(e) => {
                debug!(error = %e, "watching Flux's revisions");
                continue;
            }
        };
        let Ok(obj) = serde_json::to_value(obj) else {
            continue;
        };
        if is_ks {
            flux.kustomization(&obj, &cluster_id, deleted);
        } else {
            let (url, branch) = source.repo();
            flux.repository(&obj, url, branch, deleted);
        }
        source.set_flux_applied(flux.applied());
        let view = source.status().last_verified_commit;
        let commits = flux.commits();
        let new: Vec<&String> = commits
            .iter()
            .filter(|c| Some(c.as_str()) != view.as_deref() && !told.contains(*c))
            .collect();
        if !new.is_empty() {
            info!(commits = ?new, "Flux has a new revision of the cluster path; fetching now");
            let ahead: Vec<String> = new.into_iter().cloned().collect();
            source.flux_has(&ahead);
            fetch_now.notify_one();
        }
        told = commits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_commits_flux_has_of_the_cluster_path() {
        for (path, applies) in [
            ("./clusters/prod", true),
            ("clusters/prod/", true),
            ("./clusters", true),
            ("./", true),
            ("./clusters/prod-2", false),
            ("./clusters/pro", false),
        ] {
            assert_eq!(applies_cluster_path(path, "prod"), applies, "{path}");
        }
        assert_eq!(applied_commit("main@sha1:abc"), "abc");
        let mut flux = FluxRevisions::default();
        let ks = json!({"metadata": {"namespace": "flux-system", "name": "prod"},
            "spec": {"path": "./clusters/prod", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
            "status": {"lastAppliedRevision": "main@sha1:aaa", "lastAttemptedRevision": "main@sha1:bbb"}});
        let other = json!({"metadata": {"namespace": "flux-system", "name": "other"},
            "spec": {"path": "./clusters/other", "sourceRef": {"kind": "GitRepository", "name": "elsewhere"}},
            "status": {"lastAppliedRevision": "main@sha1:zzz"}});
        let repo = json!({"metadata": {"namespace": "flux-system", "name": "repo"},
            "spec": {"url": "ssh://git@Git.Example/org/fleet.git/", "ref": {"branch": "main"}},
            "status": {"artifact": {"revision": "main@sha1:ccc"}}});
        let elsewhere = json!({"metadata": {"namespace": "flux-system", "name": "elsewhere"},
            "status": {"artifact": {"revision": "main@sha1:yyy"}}});
        flux.kustomization(&ks, "prod", false);
        flux.kustomization(&other, "prod", false);
        const URL: &str = "ssh://git.example/org/fleet";
        flux.repository(&repo, URL, "main", false);
        flux.repository(&elsewhere, URL, "main", false);
        let commits: Vec<String> = flux.commits().into_iter().collect();
        assert_eq!(commits, ["aaa", "bbb", "ccc"]);
        assert_eq!(flux.applied().as_deref(), Some("aaa"));
        // A Kustomization whose path covers every cluster (`./`) but reads another repository, or another
        // branch of this one (a hydrated branch), applies something else.
        let hydrated = json!({"metadata": {"namespace": "flux-system", "name": "hydrated"},
            "spec": {"url": URL, "ref": {"branch": "hydrated/prod"}},
            "status": {"artifact": {"revision": "hydrated/prod@sha1:hhh"}}});
        let all = json!({"metadata": {"namespace": "flux-system", "name": "aaa-all"},
            "spec": {"path": "./", "sourceRef": {"kind": "GitRepository", "name": "hydrated"}},
            "status": {"lastAppliedRevision": "hydrated/prod@sha1:hhh"}});
        flux.repository(&hydrated, URL, "main", false);
        flux.kustomization(&all, "prod", false);
        assert_eq!(flux.applied().as_deref(), Some("aaa"));
        assert!(!flux.commits().contains("hhh"));
        flux.repository(&repo, "https://git.example/org/other", "main", false);
        assert!(flux.applied().is_none());
        flux.repository(&repo, URL, "main", false);
        flux.kustomization(&ks, "prod", true);
        assert!(flux.commits().is_empty());
    }
}

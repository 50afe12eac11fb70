//! The operator in process, for the suites that run it against the test bed: a cluster repo with one signed
//! commit, and the configuration of a GitOps cluster reading it (each suite changes what it needs).

use std::path::Path;
use std::time::Duration;

use vworkspace_operator::controller::context::{Selector, Settings};
use vworkspace_operator::controller::run::OperatorConfig;
use vworkspace_operator::git::policy::TrustPolicy;
use vworkspace_operator::git::remote::Credentials;
use vworkspace_operator::render::Templates;
use vworkspace_operator::source::SourceConfig;
use vworkspace_operator::source::gitops::RepoConfig;
use vworkspace_operator::source::gitops::notes_sink::NotesTiming;

use super::gitfix::{GitRemote, Signer, policy_yaml};

/// A cluster repo under `dir` whose first commit is signed by the control plane's key (`dir/keys`).
pub fn signed_repo(dir: &Path) -> (GitRemote, Signer) {
    let remote = GitRemote::new(dir);
    let signer = Signer::new(&dir.join("keys"), "cp@example.com");
    remote.write("README.md", "cluster repo\n");
    remote.commit("init", Some(&signer), &signer.email);
    (remote, signer)
}

/// The operator of `cluster` in GitOps mode: the repo's `clusters/<cluster>` trusted when `signer` signed it
/// (range mode), state under `state_dir`, quick fetches and notes, no control plane, webhook or leader election.
pub fn gitops_config(
    state_dir: &Path,
    remote: &GitRemote,
    signer: &Signer,
    cluster: &str,
) -> OperatorConfig {
    OperatorConfig {
        settings: Settings {
            cluster_id: cluster.to_string(),
            namespace_selector: Selector::parse("managed-by=vworkspace").unwrap(),
            velero_namespace: "velero".into(),
            approval_key: None,
            resync: Duration::from_secs(300),
            allowed_chart_hosts: Vec::new(),
            helm_engine: Default::default(),
        },
        source: SourceConfig::GitOps(RepoConfig {
            url: remote.url(),
            branch: "main".into(),
            path: format!("clusters/{cluster}"),
            policy: TrustPolicy::from_yaml(&policy_yaml(&[signer], "range")).unwrap(),
            credentials: Credentials::None,
            cache_dir: state_dir.join("state/cache"),
            notes_signing_key: None,
        }),
        fetch_interval: Duration::from_millis(500),
        templates: Templates::embedded(),
        state_dir: state_dir.join("state"),
        control_plane: None,
        admin: None,
        leader_election: None,
        cluster_interval: Duration::from_secs(1),
        notes: NotesTiming {
            retry_interval: Duration::from_millis(500),
            batch_window: Duration::from_millis(200),
        },
        max_concurrent_reconciles: 0,
        webhook: None,
        policy_reload: None,
    }
}

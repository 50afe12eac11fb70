//! `run`: the in-cluster controller (also runs from a workstation with a kubeconfig).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Run the operator: verify intent from the cluster repo, render and apply it, report outcomes.
/// Every flag has an environment variable equivalent (shown in brackets).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// This cluster's id: intents must carry app.vworkspace.io/cluster-id=<id>; the Cluster object is named after it.
    #[arg(long, env = "VWORKSPACE_CLUSTER_ID")]
    pub cluster_id: String,
    /// The cluster repo: https://…, ssh://…, git@host:path, file:// or a local path.
    #[arg(long, env = "VWORKSPACE_REPO_URL")]
    pub repo_url: String,
    /// Branch of the cluster repo to follow.
    #[arg(long, default_value = "main", env = "VWORKSPACE_BRANCH")]
    pub branch: String,
    /// Path of this cluster's intent in the repo [default: clusters/<cluster-id>].
    #[arg(long, env = "VWORKSPACE_REPO_PATH")]
    pub repo_path: Option<String>,
    /// Trust policy file (YAML; see docs/trust-policy.md).
    #[arg(
        long,
        env = "VWORKSPACE_POLICY",
        conflicts_with = "policy_secret",
        required_unless_present = "policy_secret"
    )]
    pub policy: Option<PathBuf>,
    /// Trust policy from a Secret, as namespace/name (key `policy.yaml`).
    #[arg(long, env = "VWORKSPACE_POLICY_SECRET", value_name = "NAMESPACE/NAME")]
    pub policy_secret: Option<String>,
    /// Git credentials file (see docs/install.md): https username/password or token, or an ssh key.
    #[arg(long, env = "VWORKSPACE_GIT_CREDENTIALS")]
    pub git_credentials: Option<PathBuf>,
    /// Namespaces the operator acts in (equality-based label selector).
    #[arg(long, default_value = crate::api::labels::DEFAULT_NAMESPACE_SELECTOR, env = "VWORKSPACE_NAMESPACE_SELECTOR")]
    pub namespace_selector: String,
    /// Namespace of Velero.
    #[arg(long, default_value = "velero", env = "VWORKSPACE_VELERO_NAMESPACE")]
    pub velero_namespace: String,
    /// Control plane base URL; events are posted to <endpoint>/api/agent/events. Off when unset.
    #[arg(long, env = "VWORKSPACE_CONTROL_PLANE_ENDPOINT")]
    pub control_plane_endpoint: Option<String>,
    /// File holding the bearer token for the control plane.
    #[arg(long, env = "VWORKSPACE_CONTROL_PLANE_TOKEN_FILE")]
    pub control_plane_token_file: Option<PathBuf>,
    /// File holding the Standard Webhooks signing secret (whsec_…) for event posts.
    #[arg(long, env = "VWORKSPACE_CONTROL_PLANE_HMAC_KEY_FILE")]
    pub control_plane_hmac_key_file: Option<PathBuf>,
    /// File holding the HMAC key of approval claims (vws1); without it, approval-gated Operations stay Blocked.
    #[arg(long, env = "VWORKSPACE_APPROVAL_KEY_FILE")]
    pub approval_key_file: Option<PathBuf>,
    /// Address of the /metrics endpoint.
    #[arg(long, default_value = "0.0.0.0:8080", env = "VWORKSPACE_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8081", env = "VWORKSPACE_HEALTH_ADDR")]
    pub health_addr: SocketAddr,
    /// Leader election on a Lease [default: on in-cluster, off elsewhere].
    #[arg(long, env = "VWORKSPACE_LEADER_ELECTION")]
    pub leader_election: Option<bool>,
    /// Namespace of the leader-election Lease [default: the pod's namespace, else vworkspace-system].
    #[arg(long, env = "VWORKSPACE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Template override directory.
    #[arg(long, env = "VWORKSPACE_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Where the repo clone and undelivered notes are kept.
    #[arg(
        long,
        default_value = "/var/lib/vworkspace-operator",
        env = "VWORKSPACE_STATE_DIR"
    )]
    pub state_dir: PathBuf,
    /// How often the repo is fetched.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "VWORKSPACE_FETCH_INTERVAL")]
    pub fetch_interval: std::time::Duration,
    /// How often settled objects are looked at again.
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "VWORKSPACE_RESYNC_INTERVAL")]
    pub resync_interval: std::time::Duration,
    /// Log format.
    #[arg(long, default_value = "json", value_parser = ["json", "text"], env = "VWORKSPACE_LOG_FORMAT")]
    pub log_format: String,
}

/// `30s`, `5m`, `1h`, `250ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| (&text[..i], &text[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m or 1h"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

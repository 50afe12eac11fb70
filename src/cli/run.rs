//! `run`: the in-cluster controller (also runs from a workstation with a kubeconfig).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::source::gitops::notes_sink::NotesTiming;

/// Run the operator: verify intent from the cluster repo, render and apply it, report outcomes.
/// Every flag has an environment variable equivalent (shown in brackets).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// This cluster's id: intents must carry app.vworkspace.io/cluster-id=<id>; the Cluster object is named after it.
    #[arg(long, env = "VWORKSPACE_CLUSTER_ID")]
    pub cluster_id: String,
    /// How intent reaches this cluster: gitops (signed commits), pull (jobs long-polled from the control plane)
    /// or push (the control plane applies intents itself) [default: the Cluster's spec.connectivityMode, else
    /// gitops]. See docs/operator.md#modes.
    #[arg(long, value_enum, env = "VWORKSPACE_MODE")]
    pub mode: Option<ModeArg>,
    /// The cluster repo (GitOps mode): https://…, ssh://…, git@host:path, file:// or a local path.
    #[arg(long, env = "VWORKSPACE_REPO_URL")]
    pub repo_url: Option<String>,
    /// The operator's namespace (Pull mode: the credentials Secret, the registration token Secret and the
    /// applied-job store) [default: the pod's namespace, else vworkspace-system].
    #[arg(long, env = "VWORKSPACE_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// Pull mode: accept a plain http:// control-plane endpoint (a test control plane on loopback only).
    #[arg(long, env = "VWORKSPACE_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Pull mode: how long one poll waits for jobs (the `wait` of GET /api/agent/jobs, at most 300 s).
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "VWORKSPACE_POLL_WAIT")]
    pub poll_wait: std::time::Duration,
    /// Push mode: the control plane's field manager; an intent is acted on only when it owns every spec field.
    #[arg(long, default_value = crate::source::push::DEFAULT_FIELD_MANAGER, env = "VWORKSPACE_CONTROL_PLANE_FIELD_MANAGER")]
    pub control_plane_field_manager: String,
    /// Pull mode: a job whose intent reaches no outcome within this gets the result `failed`.
    #[arg(long, default_value = "15m", value_parser = parse_duration, env = "VWORKSPACE_JOB_DEADLINE")]
    pub job_deadline: std::time::Duration,
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
    /// How often the trust policy (file or Secret) is read again; a change is applied at once, judging the
    /// cluster repo again under the new policy (docs/trust-policy.md, "Rotating and revoking keys"). 0: never.
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "VWORKSPACE_POLICY_RELOAD_INTERVAL")]
    pub policy_reload_interval: std::time::Duration,
    /// Git credentials file (see docs/install.md): https username/password or token, or an ssh key.
    #[arg(long, env = "VWORKSPACE_GIT_CREDENTIALS")]
    pub git_credentials: Option<PathBuf>,
    /// Namespaces the operator acts in (equality-based label selector).
    #[arg(long, default_value = crate::api::labels::DEFAULT_NAMESPACE_SELECTOR, env = "VWORKSPACE_NAMESPACE_SELECTOR")]
    pub namespace_selector: String,
    /// Namespace of Velero.
    #[arg(long, default_value = "velero", env = "VWORKSPACE_VELERO_NAMESPACE")]
    pub velero_namespace: String,
    #[command(flatten)]
    pub chart_hosts: super::ChartHostArgs,
    #[command(flatten)]
    pub engine: super::EngineArgs,
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
    /// How long the notes writer keeps collecting outcomes before it pushes them (one push per window while
    /// outcomes keep coming; widened to 2 ms a record, at most 30 s, after pushing a note of over a thousand
    /// records; undelivered notes are retried every 10 s).
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "VWORKSPACE_NOTES_BATCH_WINDOW")]
    pub notes_batch_window: std::time::Duration,
    /// The operator's notes key that signs every outcome record: an unencrypted OpenSSH Ed25519 private key
    /// (docs/audit-trail.md#authenticity). Without it records are unsigned and readers show them unverified.
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_NOTES_SIGNING_KEY")]
    pub notes_signing_key: Option<std::path::PathBuf>,
    /// Reconciles in flight per controller (ApplicationInstance, Operation); 0 means no limit.
    #[arg(
        long,
        default_value_t = 16,
        env = "VWORKSPACE_MAX_CONCURRENT_RECONCILES"
    )]
    pub max_concurrent_reconciles: u16,
    /// Log format.
    #[arg(long, default_value = "json", value_parser = ["json", "text"], env = "VWORKSPACE_LOG_FORMAT")]
    pub log_format: String,
    /// Serve the validating admission webhook (HTTPS) on this address, e.g. 0.0.0.0:9443; every replica serves
    /// it, leader or not. Off when unset.
    #[arg(long, env = "VWORKSPACE_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Serve `tls.crt` / `tls.key` from this directory (kept current by cert-manager or another issuer)
    /// instead of issuing certificates.
    #[arg(long, env = "VWORKSPACE_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// The Secret holding the certificates the operator issues for the webhook.
    #[arg(
        long,
        default_value = "vworkspace-system/vworkspace-operator-webhook-tls",
        value_name = "NAMESPACE/NAME",
        env = "VWORKSPACE_WEBHOOK_SECRET"
    )]
    pub webhook_secret: String,
    /// The ValidatingWebhookConfiguration whose caBundle the operator keeps current.
    #[arg(
        long,
        default_value = "vworkspace-operator",
        env = "VWORKSPACE_WEBHOOK_CONFIGURATION"
    )]
    pub webhook_configuration: String,
    /// Names (comma-separated) the serving certificate is issued for: the webhook Service's DNS name, or an
    /// IP address for a `url` client configuration.
    #[arg(
        long,
        default_value = "vworkspace-operator-webhook.vworkspace-system.svc",
        value_delimiter = ',',
        env = "VWORKSPACE_WEBHOOK_NAMES"
    )]
    pub webhook_names: Vec<String>,
    /// How long a serving certificate lives (renewed after two thirds).
    #[arg(long, default_value = "90d", value_parser = parse_duration, env = "VWORKSPACE_WEBHOOK_CERT_VALIDITY")]
    pub webhook_cert_validity: std::time::Duration,
    /// How long the webhook CA lives (rotated after two thirds, the old CA trusted until it expires).
    #[arg(long, default_value = "1825d", value_parser = parse_duration, env = "VWORKSPACE_WEBHOOK_CA_VALIDITY")]
    pub webhook_ca_validity: std::time::Duration,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Gitops,
    Pull,
    Push,
}

/// `30s`, `5m`, `1h`, `90d`, `250ms`, or plain seconds.
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
        "d" => n * 86_400_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

/// Read the trust policy from a file or a Secret (key `policy.yaml`): the policy, where it came from and the
/// text it was parsed from (what `--policy-reload-interval` compares against).
async fn load_policy(
    args: &Args,
    client: &kube::Client,
) -> anyhow::Result<(
    crate::git::policy::TrustPolicy,
    crate::source::policy_watch::PolicyOrigin,
    String,
)> {
    use crate::source::policy_watch::PolicyOrigin;
    if let Some(path) = &args.policy {
        // The text first, then the policy from the file (relative paths in it resolve beside it); a change in
        // between is seen at the first reload.
        let text = crate::git::policy::read_to_string_limited(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let policy = crate::git::policy::TrustPolicy::load(path)?;
        return Ok((policy, PolicyOrigin::File(path.clone()), text));
    }
    let Some(reference) = &args.policy_secret else {
        anyhow::bail!("--policy or --policy-secret is required");
    };
    let (ns, name) = reference.split_once('/').ok_or_else(|| {
        anyhow::anyhow!("--policy-secret takes NAMESPACE/NAME, got {reference:?}")
    })?;
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = api
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("reading Secret {reference}: {e}"))?;
    let data = secret
        .data
        .and_then(|d| d.get("policy.yaml").cloned())
        .ok_or_else(|| anyhow::anyhow!("Secret {reference} has no key policy.yaml"))?;
    let text = String::from_utf8(data.0)
        .map_err(|_| anyhow::anyhow!("Secret {reference}: policy.yaml is not UTF-8"))?;
    let policy = crate::git::policy::TrustPolicy::from_yaml(&text)?;
    let origin = PolicyOrigin::Secret {
        namespace: ns.into(),
        name: name.into(),
    };
    Ok((policy, origin, text))
}

/// Credentials from a directory (a mounted Secret): `username` + `password` or `token` for https, or
/// `ssh-privatekey` (or `identity`) + `known_hosts` for ssh.
pub fn load_credentials(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<crate::git::remote::Credentials> {
    let Some(dir) = dir else {
        return Ok(crate::git::remote::Credentials::None);
    };
    let file = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let files = crate::git::remote::CredentialFiles {
        username: file(&["username"]),
        password: file(&["password"]),
        token: file(&["token"]),
        ssh_private_key: file(&["ssh-privatekey", "identity"]),
        known_hosts: file(&["known_hosts"]),
    };
    Ok(crate::git::remote::Credentials::from_files(&files)?)
}

/// Logs to stderr as JSON or text (coloured on a terminal only); `RUST_LOG` sets the level (default `info`).
pub fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a container's log (kubectl logs, a log shipper) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    init_tracing(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<u8> {
    use crate::controller::context::{Selector, Settings};
    use crate::controller::run::OperatorConfig;
    crate::report::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the API server: {e}"))?;
    let (policy, policy_origin, policy_text) = load_policy(&args, &client).await?;
    let policy_reload = (!args.policy_reload_interval.is_zero()).then_some(
        crate::source::policy_watch::PolicyReload {
            origin: policy_origin,
            interval: args.policy_reload_interval,
            loaded: policy_text,
            charts: None,
        },
    );
    let namespace_selector = Selector::parse(&args.namespace_selector)
        .map_err(|e| anyhow::anyhow!("--namespace-selector: {e}"))?;
    let approval_key = match &args.approval_key_file {
        Some(p) => approval_key(p)?,
        None => None,
    };
    let templates = match &args.templates {
        Some(dir) => crate::render::Templates::with_overrides(dir)?,
        None => crate::render::Templates::embedded(),
    };
    let leader_election = leader_election(&args);
    let mode = match args.mode {
        Some(m) => m,
        None => cluster_mode(&args, &client).await?,
    };
    let control_plane = control_plane(&args, mode)?;
    let webhook = webhook(&args, approval_key.as_deref())?;
    let config = OperatorConfig {
        settings: Settings {
            cluster_id: args.cluster_id.clone(),
            namespace_selector,
            velero_namespace: args.velero_namespace.clone(),
            approval_key,
            resync: args.resync_interval,
            allowed_chart_hosts: args.chart_hosts.allow_chart_host.clone(),
            helm_engine: args.engine.helm_engine()?,
        },
        source: source_config(&args, mode, policy)?,
        fetch_interval: args.fetch_interval,
        templates,
        state_dir: args.state_dir.clone(),
        control_plane,
        admin: Some((args.metrics_addr, args.health_addr)),
        leader_election,
        cluster_interval: std::time::Duration::from_secs(30),
        notes: NotesTiming {
            retry_interval: std::time::Duration::from_secs(10),
            batch_window: args.notes_batch_window,
        },
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        webhook,
        policy_reload,
    };
    serve(client, config).await
}

/// Start the operator and run it until it stops, or until SIGINT or SIGTERM stops it.
async fn serve(
    client: kube::Client,
    config: crate::controller::run::OperatorConfig,
) -> anyhow::Result<u8> {
    let operator = crate::controller::run::Operator::start(client, config).await?;
    let mut stopped = operator.stopped();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = sigterm() => tracing::info!("terminated; stopping"),
        _ = stopped.wait_for(|s| *s) => {}
    }
    operator.stop().await;
    Ok(super::EXIT_OK)
}

/// The leader election lease (`--leader-election`, by default on in a cluster): in the lease namespace (else
/// the pod's, else vworkspace-system), held as the pod.
fn leader_election(args: &Args) -> Option<crate::controller::run::LeaseSettings> {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    args.leader_election.unwrap_or(in_cluster).then(|| {
        crate::controller::run::LeaseSettings::new(
            args.lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "vworkspace-system".into()),
            format!("vworkspace-operator-{}", args.cluster_id),
            std::env::var("POD_NAME")
                .unwrap_or_else(|_| format!("vworkspace-operator-{}", std::process::id())),
        )
    })
}

/// The mode when `--mode` is not given: the Cluster's spec.connectivityMode, else gitops.
async fn cluster_mode(args: &Args, client: &kube::Client) -> anyhow::Result<ModeArg> {
    let api: kube::Api<crate::api::Cluster> = kube::Api::all(client.clone());
    let spec_mode = api
        .get_opt(&args.cluster_id)
        .await
        .map_err(|e| anyhow::anyhow!("reading Cluster {}: {e}", args.cluster_id))?
        .and_then(|c| c.spec.connectivity_mode);
    Ok(match spec_mode {
        Some(crate::api::ConnectivityMode::Pull) => ModeArg::Pull,
        Some(crate::api::ConnectivityMode::Push) => ModeArg::Push,
        _ => ModeArg::Gitops,
    })
}

/// Where events are posted outside Pull mode (Pull mode posts them with the agent's endpoint and token).
fn control_plane(
    args: &Args,
    mode: ModeArg,
) -> anyhow::Result<Option<crate::report::events::PosterConfig>> {
    Ok(match &args.control_plane_endpoint {
        Some(_) if mode == ModeArg::Pull => None,
        Some(endpoint) => {
            let token = args.control_plane_token_file.clone().ok_or_else(|| {
                anyhow::anyhow!("--control-plane-endpoint needs --control-plane-token-file")
            })?;
            let mut pc =
                crate::report::events::PosterConfig::new(endpoint, token, &args.cluster_id);
            pc.signing_key_file = args.control_plane_hmac_key_file.clone();
            Some(pc)
        }
        None => None,
    })
}

/// The admission webhook (`--webhook-addr`), with its certificate from `--webhook-cert-dir` or else managed in
/// `--webhook-secret`.
fn webhook(
    args: &Args,
    approval_key: Option<&[u8]>,
) -> anyhow::Result<Option<crate::webhook::WebhookConfig>> {
    let Some(addr) = args.webhook_addr else {
        return Ok(None);
    };
    let certs = match &args.webhook_cert_dir {
        Some(dir) => crate::webhook::CertSource::Files(dir.clone()),
        None => {
            let (ns, name) = args.webhook_secret.split_once('/').ok_or_else(|| {
                anyhow::anyhow!(
                    "--webhook-secret takes NAMESPACE/NAME, got {:?}",
                    args.webhook_secret
                )
            })?;
            crate::webhook::CertSource::Managed {
                secret_namespace: ns.into(),
                secret_name: name.into(),
                configuration: args.webhook_configuration.clone(),
                settings: crate::webhook::certs::CertSettings {
                    names: args.webhook_names.clone(),
                    ca_validity: args.webhook_ca_validity,
                    cert_validity: args.webhook_cert_validity,
                },
            }
        }
    };
    Ok(Some(crate::webhook::WebhookConfig {
        addr,
        certs,
        approval_key: approval_key.map(<[u8]>::to_vec),
    }))
}

/// How intent reaches this cluster in `mode`, with the trust policy.
fn source_config(
    args: &Args,
    mode: ModeArg,
    policy: crate::git::policy::TrustPolicy,
) -> anyhow::Result<crate::source::SourceConfig> {
    use crate::source::gitops::RepoConfig;
    use crate::source::{PullSettings, SourceConfig};
    Ok(match mode {
        ModeArg::Pull => {
            let operator_namespace = args
                .operator_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "vworkspace-system".into());
            let mut agent = crate::source::pull::agent::PullConfig::new(
                &args.cluster_id,
                &operator_namespace,
                args.state_dir.join("pull").join("token"),
            );
            agent.endpoint = args.control_plane_endpoint.clone();
            agent.allow_insecure_http = args.allow_insecure_http;
            agent.poll_wait = args.poll_wait.min(std::time::Duration::from_secs(300));
            agent.job_deadline = args.job_deadline;
            SourceConfig::Pull(PullSettings {
                agent,
                policy,
                event_signing_key_file: args.control_plane_hmac_key_file.clone(),
            })
        }
        ModeArg::Push => SourceConfig::Push {
            field_manager: args.control_plane_field_manager.clone(),
            policy,
        },
        ModeArg::Gitops => SourceConfig::GitOps(RepoConfig {
            url: args.repo_url.clone().ok_or_else(|| {
                anyhow::anyhow!("GitOps mode needs --repo-url (VWORKSPACE_REPO_URL)")
            })?,
            branch: args.branch.clone(),
            path: args
                .repo_path
                .clone()
                .unwrap_or_else(|| format!("clusters/{}", args.cluster_id)),
            policy,
            credentials: load_credentials(args.git_credentials.as_deref())?,
            cache_dir: args.state_dir.join("cache"),
            notes_signing_key: args.notes_signing_key.clone(),
        }),
    })
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The approval key file: a regular file of bounded size (a FIFO would block the start-up). A file that does
/// not exist means no key, with a warning: the chart mounts the control-plane Secret as optional and names the
/// file whether or not the Secret holds `approval-key`. That stays closed: an Operation that requires approval
/// is then kept Blocked/AwaitingApproval ("the operator has no approval key configured"). Any other problem
/// (not a regular file, too large, unreadable) stops the start naming the file.
fn approval_key(path: &std::path::Path) -> anyhow::Result<Option<Vec<u8>>> {
    use crate::git::bounded::{BoundedReadError, read};
    match read(path, 64 << 10) {
        Ok(key) => Ok(Some(key)),
        Err(BoundedReadError::Io {
            kind: std::io::ErrorKind::NotFound,
            ..
        }) => {
            tracing::warn!(
                file = %path.display(),
                "no approval key file: Operations that require approval stay Blocked/AwaitingApproval"
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "--approval-key-file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod approval_key_tests {
    #[test]
    fn a_missing_approval_key_file_is_no_key_and_anything_else_wrong_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            super::approval_key(&dir.path().join("absent")).unwrap(),
            None
        );
        std::fs::write(dir.path().join("key"), b"k").unwrap();
        assert_eq!(
            super::approval_key(&dir.path().join("key")).unwrap(),
            Some(b"k".to_vec())
        );
        let err = super::approval_key(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("--approval-key-file "), "{err}");
    }
}

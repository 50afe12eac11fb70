//! Starting the intent source of the configured mode: the one place in the operator that asks which mode runs.
//! [`start`] returns what the controllers need (the [`IntentSource`] they ask, where outcomes go) and
//! [`Started::run`] starts the source's own loops once the intents are watched, returning the ticks on which
//! every intent is judged again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::gitops::notes_sink::{NotesAccess, NotesSink, NotesTiming};
use super::gitops::{RepoConfig, RepoSource, SyncOutcome};
use super::pull::agent::{Agent, AgentStatus, PullConfig, SharedKeys};
use super::push::PushSource;
use super::{IntentSource, NoOutcomes, OutcomeSink, PolicyTarget};
use crate::admin::ReadinessCheck;
use crate::git::policy::TrustPolicy;
use crate::k8s::apply::Resources;
use crate::k8s::watch::IntentWatches;
use crate::metrics::Metrics;
use crate::report::events::{EventPoster, PosterConfig};

/// Where intent comes from (docs/operator.md#modes).
pub enum SourceConfig {
    /// Signed commits in the cluster repo.
    GitOps(RepoConfig),
    /// Jobs long-polled from the control plane.
    Pull(PullSettings),
    /// Intents applied by the control plane itself, proven by their spec's field manager (and signature
    /// annotation, when the policy names control-plane keys).
    Push {
        field_manager: String,
        policy: TrustPolicy,
    },
}

impl SourceConfig {
    /// The trust policy the source starts with.
    pub fn policy(&self) -> &TrustPolicy {
        match self {
            SourceConfig::GitOps(r) => &r.policy,
            SourceConfig::Pull(p) => &p.policy,
            SourceConfig::Push { policy, .. } => policy,
        }
    }

    /// The cluster repo's settings, in GitOps mode.
    pub fn repo_mut(&mut self) -> Option<&mut RepoConfig> {
        match self {
            SourceConfig::GitOps(r) => Some(r),
            SourceConfig::Pull(_) | SourceConfig::Push { .. } => None,
        }
    }
}

/// Pull mode's settings.
pub struct PullSettings {
    pub agent: PullConfig,
    /// The trust policy: its control-plane keys make signed jobs mandatory.
    pub policy: TrustPolicy,
    /// Standard Webhooks signing key file for the event post (which uses the agent's endpoint and token).
    pub event_signing_key_file: Option<PathBuf>,
}

/// What starting a source takes from the process.
pub struct Deps {
    pub client: Client,
    pub resources: Resources,
    pub metrics: Metrics,
    pub cluster_id: String,
    /// Pending notes and the notes work repo live here (GitOps).
    pub state_dir: PathBuf,
    /// How the notes are pushed (GitOps).
    pub notes: NotesTiming,
    /// How often the cluster repo is fetched (GitOps).
    pub fetch_interval: Duration,
    /// The readiness check `source`: passes once the source can judge intents (GitOps: a revision verified;
    /// Pull: the cluster registered; Push: at once).
    pub ready: ReadinessCheck,
    pub stop: watch::Receiver<bool>,
}

/// The running source of one mode.
enum Mode {
    GitOps(Arc<RepoSource>),
    Pull(Arc<Agent>),
    Push(Arc<PushSource>),
}

/// A started source: what the controllers need, and its loops to run.
pub struct Started {
    /// What the reconcilers ask.
    pub source: Arc<dyn IntentSource>,
    /// Where outcomes go (git notes in GitOps mode).
    pub outcomes: Arc<dyn OutcomeSink>,
    /// Pull mode: the control-plane event post goes to the agent's endpoint, with its token.
    pub control_plane: Option<PosterConfig>,
    /// Asked when the trust policy changed: judge every intent again now.
    pub judge_now: Arc<Notify>,
    /// The source's tasks (the notes worker; its loops once [`Started::run`]).
    pub tasks: Vec<JoinHandle<()>>,
    mode: Mode,
    deps: Deps,
}

/// Start the configured source: GitOps opens the repo cache and syncs once; Pull obtains its credential
/// (reading its Secret, or registering the cluster); Push needs nothing first.
pub async fn start(config: SourceConfig, deps: Deps) -> anyhow::Result<Started> {
    let started = match config {
        SourceConfig::GitOps(repo) => start_gitops(repo, &deps).await?,
        SourceConfig::Pull(settings) => start_pull(settings, &deps).await?,
        SourceConfig::Push {
            field_manager,
            policy,
        } => {
            deps.ready.pass();
            info!(field_manager = %field_manager, "Push mode: acting on intents whose spec the control plane owns");
            let source = Arc::new(PushSource::new(
                &field_manager,
                &deps.cluster_id,
                policy.control_plane_keys().to_vec(),
            ));
            Parts::new(source.clone(), Arc::new(NoOutcomes), Mode::Push(source))
        }
    };
    Ok(Started {
        source: started.source,
        outcomes: started.outcomes,
        control_plane: started.control_plane,
        judge_now: Arc::new(Notify::new()),
        tasks: started.tasks,
        mode: started.mode,
        deps,
    })
}

/// What one mode's start gives.
struct Parts {
    source: Arc<dyn IntentSource>,
    outcomes: Arc<dyn OutcomeSink>,
    control_plane: Option<PosterConfig>,
    tasks: Vec<JoinHandle<()>>,
    mode: Mode,
}

impl Parts {
    fn new(source: Arc<dyn IntentSource>, outcomes: Arc<dyn OutcomeSink>, mode: Mode) -> Self {
        Self {
            source,
            outcomes,
            control_plane: None,
            tasks: Vec::new(),
            mode,
        }
    }
}

/// GitOps: open the repo cache and sync once (so the first reconciles have a view), and the notes writer.
async fn start_gitops(repo_config: RepoConfig, deps: &Deps) -> anyhow::Result<Parts> {
    let credentials = repo_config.credentials.clone();
    let remote_url = repo_config.url.clone();
    let notes_signer = repo_config
        .notes_signing_key
        .as_deref()
        .map(crate::git::notes::auth::NotesSigner::load)
        .transpose()?
        .map(Arc::new);
    if notes_signer.is_none() {
        warn!(
            "no notes signing key: outcome records are written unsigned, and readers show them as unverified"
        );
    }
    let source = Arc::new(RepoSource::open(repo_config).context("opening the repo cache")?);
    sync_reported(&source, &deps.metrics, &deps.ready).await?;
    let (notes, notes_worker) = NotesSink::new(
        &deps.cluster_id,
        deps.state_dir.join("notes.git"),
        &remote_url,
        NotesAccess {
            credentials,
            signer: notes_signer,
        },
        deps.state_dir.clone(),
        deps.notes,
        Some(deps.metrics.clone()),
    )?;
    let mut parts = Parts::new(source.clone(), notes, Mode::GitOps(source));
    parts
        .tasks
        .push(tokio::spawn(notes_worker.run(deps.stop.clone())));
    Ok(parts)
}

/// Pull: nothing to fetch before the controllers start (the agent proves each intent as it applies it), but a
/// credential first (from its Secret, or by registering): the event post needs its token. Readiness does not
/// wait for the control plane once the cluster is registered.
async fn start_pull(settings: PullSettings, deps: &Deps) -> anyhow::Result<Parts> {
    let key = Arc::new(std::sync::RwLock::new(None));
    let keys: SharedKeys = Arc::new(std::sync::RwLock::new(Ok(settings
        .policy
        .control_plane_keys()
        .to_vec())));
    let (status_tx, status_rx) = watch::channel(AgentStatus::initial());
    let source = Arc::new(super::pull::source::PullSource::new(
        key.clone(),
        keys.clone(),
        status_rx,
        &settings.agent.namespace,
    ));
    let agent = Agent::new(
        settings.agent,
        deps.client.clone(),
        deps.resources.clone(),
        keys,
        key,
        status_tx,
        Some(deps.metrics.clone()),
    );
    info!("Pull mode: reading or obtaining the control-plane credential");
    if !agent.bootstrap(deps.stop.clone()).await {
        anyhow::bail!("stopped before the cluster was registered");
    }
    deps.ready.pass();
    let mut parts = Parts::new(source, Arc::new(NoOutcomes), Mode::Pull(agent.clone()));
    if let Some(base) = agent.base_url() {
        let mut pc = PosterConfig::new(base, agent.token_file(), &deps.cluster_id);
        pc.signing_key_file = settings.event_signing_key_file;
        parts.control_plane = Some(pc);
    }
    Ok(parts)
}

impl Started {
    /// The Git view (GitOps mode).
    pub fn repo(&self) -> Option<Arc<RepoSource>> {
        match &self.mode {
            Mode::GitOps(r) => Some(r.clone()),
            Mode::Pull(_) | Mode::Push(_) => None,
        }
    }

    /// The Pull agent (Pull mode).
    pub fn agent(&self) -> Option<Arc<Agent>> {
        match &self.mode {
            Mode::Pull(a) => Some(a.clone()),
            Mode::GitOps(_) | Mode::Push(_) => None,
        }
    }

    /// What a trust-policy change goes to.
    fn policy_target(&self) -> Arc<dyn PolicyTarget> {
        match &self.mode {
            Mode::GitOps(r) => r.clone(),
            Mode::Pull(a) => a.clone(),
            Mode::Push(p) => p.clone(),
        }
    }

    /// Run the source's loops now that the intents are watched: GitOps fetches, verifies and indexes on an
    /// interval (and at once when the trust policy changes); the Pull agent follows the stores and posts
    /// job results through `poster`; a policy reload re-reads the trust policy. Returns the ticks on which
    /// every intent is judged again: a new verified revision (GitOps), a change of the agent's state (Pull:
    /// e.g. the provenance key loaded), or a trust-policy change (every mode).
    pub fn run(
        &mut self,
        intents: &IntentWatches,
        poster: Option<Arc<EventPoster>>,
        policy_reload: Option<super::policy_watch::PolicyReload>,
    ) -> watch::Receiver<u64> {
        let stop = self.deps.stop.clone();
        let ticks = match &self.mode {
            Mode::GitOps(repo) => {
                let fetch_now = Arc::new(Notify::new());
                self.tasks.push(tokio::spawn(super::flux_watch::run(
                    self.deps.client.clone(),
                    self.deps.resources.clone(),
                    self.deps.cluster_id.clone(),
                    repo.clone(),
                    fetch_now.clone(),
                    stop.clone(),
                )));
                self.tasks.push(tokio::spawn(repo_loop(
                    repo.clone(),
                    self.deps.fetch_interval,
                    self.judge_now.clone(),
                    fetch_now,
                    self.deps.metrics.clone(),
                    self.deps.ready.clone(),
                    stop.clone(),
                )));
                repo.subscribe()
            }
            Mode::Pull(agent) => {
                let (tx, rx) = watch::channel(0u64);
                self.tasks.push(tokio::spawn(agent_ticks(
                    agent.subscribe(),
                    tx,
                    self.judge_now.clone(),
                    stop.clone(),
                )));
                agent.attach(intents, poster);
                self.tasks
                    .push(tokio::spawn(agent.clone().run(stop.clone())));
                rx
            }
            Mode::Push(_) => {
                // Every intent is judged again when the trust policy changes (its control-plane keys decide
                // whether a signature is required); otherwise the watches trigger reconciles.
                let (tx, rx) = watch::channel(0u64);
                let judge_now = self.judge_now.clone();
                let mut stop = stop.clone();
                self.tasks.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            _ = judge_now.notified() => tx.send_modify(|n| *n += 1),
                        }
                    }
                }));
                rx
            }
        };
        if let Some(reload) = policy_reload {
            self.tasks.push(tokio::spawn(super::policy_watch::run(
                reload,
                self.deps.client.clone(),
                self.policy_target(),
                self.judge_now.clone(),
                self.deps.metrics.clone(),
                stop,
            )));
        }
        ticks
    }
}

/// The Git view: fetch, verify, index on an interval, and at once when the trust policy changes or Flux has a
/// commit of the cluster path the view has not (`fetch_now`, from [`super::flux_watch`]).
async fn repo_loop(
    source: Arc<RepoSource>,
    interval: Duration,
    judge_now: Arc<Notify>,
    fetch_now: Arc<Notify>,
    metrics: Metrics,
    ready: ReadinessCheck,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
            _ = judge_now.notified() => {}
            _ = fetch_now.notified() => {}
        }
        if let Err(e) = sync_reported(&source, &metrics, &ready).await {
            error!(error = %e, "repo sync task failed");
        }
    }
}

/// One sync of the Git view (blocking, on the blocking pool), timed and reported ([`report_sync`]).
async fn sync_reported(
    source: &Arc<RepoSource>,
    metrics: &Metrics,
    ready: &ReadinessCheck,
) -> Result<(), tokio::task::JoinError> {
    let s = source.clone();
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || s.sync()).await?;
    report_sync(&outcome, started.elapsed(), metrics, ready);
    Ok(())
}

/// Pull: a tick when the agent's state changes (heartbeats alone do not re-judge anything), or when the
/// trust policy changed (every applied intent is judged again under it).
async fn agent_ticks(
    mut status: watch::Receiver<AgentStatus>,
    tx: watch::Sender<u64>,
    judge_now: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = status.borrow().clone();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = judge_now.notified() => {
                tx.send_modify(|n| *n += 1);
                continue;
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let now = status.borrow().clone();
        let mut a = last.clone();
        a.last_heartbeat = now.last_heartbeat;
        if a != now {
            tx.send_modify(|n| *n += 1);
        }
        last = now;
    }
}

/// A sync's outcome and wall time (fetch, verification, indexing) in the log, the metrics and the readiness
/// check.
fn report_sync(outcome: &SyncOutcome, took: Duration, metrics: &Metrics, check: &ReadinessCheck) {
    use crate::metrics::{Connectivity, Mode, SyncResult, VerifyResult};
    metrics.repo_synced(
        match outcome {
            SyncOutcome::Verified { .. } => SyncResult::Verified,
            SyncOutcome::Unchanged => SyncResult::Unchanged,
            SyncOutcome::Rejected { .. } => SyncResult::Rejected,
            SyncOutcome::Unreachable { .. } => SyncResult::Unreachable,
        },
        took,
    );
    match outcome {
        SyncOutcome::Verified { head } => {
            info!(%head, took_ms = took.as_millis(), "verified new revision");
            metrics.commit_verified(VerifyResult::Verified);
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            check.pass();
        }
        SyncOutcome::Unchanged => {
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            check.pass();
        }
        SyncOutcome::Rejected { head, reason, view } => {
            metrics.commit_verified(VerifyResult::Rejected);
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            match view {
                Some(view) => {
                    warn!(%head, %reason, %view, "branch head not trusted; acting on the newest verified revision before it");
                    check.pass();
                }
                None => {
                    warn!(%head, %reason, "branch head not trusted and no revision verifies; every intent is Blocked");
                    check.fail(format!("no verified revision: {reason}"));
                }
            }
        }
        SyncOutcome::Unreachable { error } => {
            warn!(%error, "cluster repo unreachable");
            metrics.set_connectivity(Mode::GitOps, Connectivity::Disconnected);
            check.fail(error.clone());
        }
    }
}

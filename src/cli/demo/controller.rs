//! Step 6 of the demo (only with `--kubeconfig`): the operator against a real API server.
//!
//! The operator follows a copy of the cluster repo whose `main` is first at the verified revision, as it
//! would have been while the operator was running when those commits landed: a fresh operator whose branch
//! head is refused has no verified view at all (fail closed) and would block everything. The demo plays
//! Flux: it creates the gate-labelled namespaces and applies the ApplicationInstances of the verified
//! revision, one of them hand-edited (its live spec differs from Git). It waits until the verified intents
//! have their children and the hand-edited one is Blocked, then moves `main` to the refused head and syncs
//! once: the view must stay at the verified revision. Then it deletes what it created (unless `--keep`).
//!
//! Operations are not applied: their engines (Velero, Argo Workflows, VolSync, …) do not run here.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;
use serde_json::{Value, json};

use super::{BRANCH, CLUSTER, Check, INTENT_PATH};
use crate::api::conditions::{reasons, types};
use crate::api::{AppMode, ApplicationInstance, Cluster, labels};
use crate::controller::context::{Selector, Settings};
use crate::controller::run::{Operator, OperatorConfig};
use crate::git::policy::TrustPolicy;
use crate::git::remote::{self, Credentials};
use crate::git::repo::Repo;
use crate::git::repo::load_rev;
use crate::git::short_id;
use crate::intent::{IntentKind, parse_files};
use crate::k8s::apply::Resources;
use crate::render::Templates;
use crate::source::SourceConfig;
use crate::source::gitops::notes_sink::NotesTiming;
use crate::source::gitops::{RepoConfig, SyncOutcome};

/// The intent the demo edits by hand in the cluster, and how.
const HAND_EDITED: (&str, &str) = ("team-beta", "gitea");
const HAND_EDITED_VERSION: &str = "12.9.9";
/// Flux's field manager (kustomize-controller applies what it syncs from Git).
const FLUX_MANAGER: &str = "kustomize-controller";
/// How long the operator gets to act on the intents, and to release them when they are deleted.
const WAIT: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(250);

/// What step 6 needs from the earlier steps.
pub struct Input<'a> {
    pub dir: &'a Path,
    pub kubeconfig: &'a Path,
    pub keep: bool,
    pub repo_dir: &'a Path,
    pub policy: &'a TrustPolicy,
    /// The newest verified revision.
    pub verified: &'a str,
    /// The head of `main` (refused).
    pub head: &'a str,
}

/// A condition, short.
#[derive(Debug, Clone, Serialize)]
pub struct Cond {
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl Cond {
    fn of(conditions: &[Condition], type_: &str) -> Option<Self> {
        conditions.iter().find(|c| c.type_ == type_).map(|c| Self {
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
    }
}

/// One ApplicationInstance in the cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentRow {
    pub namespace: String,
    pub name: String,
    /// False for the hand-edited one.
    pub as_in_git: bool,
    /// A placeholder installs nothing.
    pub placeholder: bool,
    pub ready: Option<Cond>,
    pub blocked: Option<Cond>,
    /// `Kind name` of the children found.
    pub children: Vec<String>,
}

impl IntentRow {
    fn blocked_true(&self) -> bool {
        self.blocked.as_ref().is_some_and(|b| b.status == "True")
    }

    fn has_helm_release(&self) -> bool {
        self.children.iter().any(|c| c.starts_with("HelmRelease "))
    }
}

/// What step 6 did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerInfo {
    /// The API server.
    pub server: String,
    /// Our CRDs the demo installed (they were missing).
    pub crds_installed: Vec<String>,
    pub namespaces_created: Vec<String>,
    /// The repo the operator followed.
    pub operator_repo: String,
    /// The operator's verified view before `main` moved to the refused head.
    pub view: Option<String>,
    /// What was edited by hand in the cluster.
    pub hand_edited: String,
    pub intents: Vec<IntentRow>,
    /// The refused head `main` moved to, and what the sync after it said.
    pub head: String,
    pub refused_head: String,
    pub refused_head_rejected: bool,
    /// The operator's verified view after that sync.
    pub view_after: Option<String>,
    /// The verified revision (what the views must be).
    pub verified: String,
    /// What was deleted at the end, or that everything was kept.
    pub cleanup: String,
}

impl ControllerInfo {
    /// The self-checks of step 6.
    pub fn checks(&self, checks: &mut Vec<Check>) {
        let short_opt = |s: &Option<String>| s.as_deref().map_or("none", short_id).to_string();
        checks.push(Check::new(
            "controller: the operator's view is the verified revision",
            self.view.as_deref() == Some(self.verified.as_str()),
            short_opt(&self.view),
        ));
        for row in &self.intents {
            let key = format!("{}/{}", row.namespace, row.name);
            if !row.as_in_git {
                let got = row.blocked.as_ref().map_or("not blocked".to_string(), |b| {
                    format!("Blocked={}/{}", b.status, b.reason)
                });
                checks.push(Check::new(
                    format!("controller {key} (hand-edited): Blocked/SpecMismatch, no HelmRelease"),
                    row.blocked_true()
                        && row.blocked.as_ref().map(|b| b.reason.as_str())
                            == Some(reasons::SPEC_MISMATCH)
                        && !row.has_helm_release(),
                    got,
                ));
            } else if !row.placeholder {
                checks.push(Check::new(
                    format!("controller {key}: not blocked, HelmRelease applied"),
                    !row.blocked_true() && row.has_helm_release(),
                    if row.children.is_empty() {
                        "no children".to_string()
                    } else {
                        row.children.join(", ")
                    },
                ));
            }
        }
        checks.push(Check::new(
            "controller: the refused head is rejected and the view stays",
            self.refused_head_rejected
                && self.view_after.as_deref() == Some(self.verified.as_str()),
            format!(
                "{}; view {}",
                self.refused_head,
                short_opt(&self.view_after)
            ),
        ));
    }
}

fn cond_text(c: &Option<Cond>) -> String {
    c.as_ref()
        .map_or("-".to_string(), |c| format!("{} {}", c.status, c.reason))
}

impl fmt::Display for ControllerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "7. The controller against {}", self.server)?;
        if !self.crds_installed.is_empty() {
            writeln!(
                f,
                "   installed the CRDs {}",
                self.crds_installed.join(", ")
            )?;
        }
        writeln!(
            f,
            "   the operator follows a copy of the cluster repo with {BRANCH} at {}, as before the refused commits \
             landed; its verified view: {}",
            short_id(&self.verified),
            self.view.as_deref().map_or("none", short_id)
        )?;
        writeln!(
            f,
            "   as Flux would, the namespaces and the {} ApplicationInstances of {} are applied; {}",
            self.intents.len(),
            short_id(&self.verified),
            self.hand_edited
        )?;
        let rows: Vec<[String; 5]> = self
            .intents
            .iter()
            .map(|r| {
                [
                    format!("{}/{}", r.namespace, r.name),
                    if r.as_in_git { "Git" } else { "hand-edited" }.to_string(),
                    cond_text(&r.ready),
                    cond_text(&r.blocked),
                    if r.children.is_empty() {
                        "-".to_string()
                    } else {
                        r.children.join(", ")
                    },
                ]
            })
            .collect();
        let header = [
            "INTENT".to_string(),
            "SPEC".to_string(),
            "READY".to_string(),
            "BLOCKED".to_string(),
            "CHILDREN".to_string(),
        ];
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = "  ".to_string();
            for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
                if i == 4 {
                    line.push_str(&format!(" {cell}"));
                } else {
                    line.push_str(&format!(" {cell:w$} "));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        for r in self.intents.iter().filter(|r| r.blocked_true()) {
            if let Some(b) = &r.blocked {
                writeln!(
                    f,
                    "   {}/{} Blocked {}: {}",
                    r.namespace, r.name, b.reason, b.message
                )?;
            }
        }
        writeln!(
            f,
            "   READY follows each HelmRelease, which Flux's helm-controller reconciles; Operations are not \
             applied (their engines are not part of the demo)"
        )?;
        writeln!(
            f,
            "   then {BRANCH} moved to the refused head {}: {}; the verified view stays at {}",
            short_id(&self.head),
            self.refused_head,
            self.view_after.as_deref().map_or("none", short_id)
        )?;
        writeln!(f, "   {}", self.cleanup)
    }
}

/// Run step 6 on its own runtime.
pub fn run(input: &Input<'_>) -> anyhow::Result<ControllerInfo> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(input))
}

/// What the demo created in the cluster, to delete at the end.
#[derive(Default)]
struct Created {
    crds: Vec<String>,
    namespaces: Vec<String>,
    /// ApplicationInstances applied (namespace, name).
    intents: Vec<(String, String)>,
    /// The operator created the Cluster object (it did not exist before).
    cluster: bool,
}

async fn run_async(input: &Input<'_>) -> anyhow::Result<ControllerInfo> {
    crate::report::install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(input.kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", input.kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("the kubeconfig {}", input.kubeconfig.display()))?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).context("creating the Kubernetes client")?;
    let mut created = Created::default();
    let mut operator = None;
    let result = steps(&client, input, server, &mut created, &mut operator).await;
    let cleanup = if input.keep {
        if let Some(op) = operator.take() {
            op.stop().await;
        }
        Ok(
            "kept in the cluster (--keep): kubectl get applicationinstances,helmreleases -A"
                .to_string(),
        )
    } else {
        cleanup(&client, &created, operator.take()).await
    };
    match (result, cleanup) {
        (Ok(mut info), Ok(text)) => {
            info.cleanup = text;
            Ok(info)
        }
        (Err(e), Ok(_)) => Err(e),
        (Ok(_), Err(e)) => Err(e.context("cleaning up the cluster")),
        (Err(e), Err(c)) => Err(e.context(format!("(cleaning up also failed: {c:#})"))),
    }
}

async fn steps(
    client: &Client,
    input: &Input<'_>,
    server: String,
    created: &mut Created,
    operator_slot: &mut Option<Operator>,
) -> anyhow::Result<ControllerInfo> {
    tracing::info!("demo: installing CRDs");
    created.crds = install_crds(client).await?;
    tracing::info!("demo: CRDs installed");
    let resources = Resources::new(client.clone());
    require_flux(&resources, &server).await?;
    let (namespaces, apps) = verified_intents(input)?;

    let operator_repo = mirror(input)?;
    created.namespaces = create_namespaces(client, &namespaces).await?;
    let clusters: Api<Cluster> = Api::all(client.clone());
    created.cluster = clusters
        .get_opt(CLUSTER)
        .await
        .context("reading the Cluster object")?
        .is_none();
    let config = operator_config(input, &operator_repo)?;
    tracing::info!("demo: starting the operator");
    let operator = operator_slot.insert(
        Operator::start(client.clone(), config)
            .await
            .context("starting the operator")?,
    );
    let view = operator.source.status().last_verified_commit;

    let hand_edited = apply_intents(client, &apps, created).await?;
    tracing::info!(
        intents = created.intents.len(),
        "demo: intents applied as Flux would"
    );
    let intents = wait_for_operator(client, &resources, &created.intents).await?;
    tracing::info!("demo: the operator acted on every intent");

    let (refused_head, refused_head_rejected) =
        sync_refused_head(operator, &operator_repo, input.head).await?;
    let view_after = operator.source.status().last_verified_commit;
    tracing::info!(?view_after, "demo: synced the refused head");

    Ok(ControllerInfo {
        server,
        crds_installed: created.crds.clone(),
        namespaces_created: created.namespaces.clone(),
        operator_repo: operator_repo.display().to_string(),
        view,
        hand_edited,
        intents,
        head: input.head.to_string(),
        refused_head,
        refused_head_rejected,
        view_after,
        verified: input.verified.to_string(),
        cleanup: String::new(),
    })
}

/// Flux's kinds the operator renders into must be served by the cluster at `server`.
async fn require_flux(resources: &Resources, server: &str) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (api_version, kind) in [
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
        ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    ] {
        if resources.resolve(api_version, kind).await?.is_none() {
            missing.push(format!("{kind} ({api_version})"));
        }
    }
    if !missing.is_empty() {
        bail!(
            "Flux is not installed on {server}: {} missing; the operator renders into Flux objects. \
             Install Flux first (see docs/install.md)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// What Flux would sync: the namespaces and ApplicationInstances of the verified revision.
fn verified_intents(input: &Input<'_>) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let repo = Repo::open(input.repo_dir)?;
    let files = load_rev(&repo, input.verified, INTENT_PATH)
        .with_context(|| format!("reading {INTENT_PATH} at {}", input.verified))?;
    let namespaces = namespace_docs(&files);
    let (docs, problems) = parse_files(&files);
    if let Some(p) = problems.first() {
        bail!("the verified revision has an invalid intent: {p}");
    }
    let apps = docs
        .into_iter()
        .filter(|d| d.key.kind == IntentKind::ApplicationInstance)
        .map(|d| d.value)
        .collect();
    Ok((namespaces, apps))
}

/// The operator's configuration: GitOps mode on the mirror `operator_repo`, short intervals.
fn operator_config(input: &Input<'_>, operator_repo: &Path) -> anyhow::Result<OperatorConfig> {
    let state_dir = input.dir.join("controller/state");
    Ok(OperatorConfig {
        settings: Settings {
            cluster_id: CLUSTER.to_string(),
            namespace_selector: Selector::parse(labels::DEFAULT_NAMESPACE_SELECTOR)
                .map_err(|e| anyhow!("namespace selector: {e}"))?,
            velero_namespace: "velero".into(),
            approval_key: None,
            resync: Duration::from_secs(300),
            allowed_chart_hosts: Vec::new(),
            helm_engine: Default::default(),
        },
        source: SourceConfig::GitOps(RepoConfig {
            url: operator_repo.display().to_string(),
            branch: BRANCH.to_string(),
            path: INTENT_PATH.to_string(),
            policy: input.policy.clone(),
            credentials: Credentials::None,
            cache_dir: state_dir.join("cache"),
            notes_signing_key: None,
        }),
        fetch_interval: Duration::from_secs(1),
        templates: Templates::embedded(),
        state_dir,
        control_plane: None,
        admin: None,
        leader_election: None,
        cluster_interval: Duration::from_secs(2),
        notes: NotesTiming {
            retry_interval: Duration::from_secs(1),
            batch_window: Duration::from_millis(200),
        },
        max_concurrent_reconciles: 16,
        webhook: None,
        policy_reload: None,
    })
}

/// Apply the ApplicationInstances as Flux would, one of them ([`HAND_EDITED`]) edited by hand; each is
/// recorded in `created`. Returns what the hand edit was.
async fn apply_intents(
    client: &Client,
    apps: &[Value],
    created: &mut Created,
) -> anyhow::Result<String> {
    let mut hand_edited = String::new();
    for app in apps {
        let ns = crate::render::namespace(app).to_string();
        let name = crate::render::name(app).to_string();
        let mut value = app.clone();
        if (ns.as_str(), name.as_str()) == HAND_EDITED {
            let was = value
                .pointer("/spec/chart/version")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            if let Some(v) = value.pointer_mut("/spec/chart/version") {
                *v = json!(HAND_EDITED_VERSION);
            }
            hand_edited = format!(
                "{ns}/{name} edited by hand in the cluster (spec.chart.version {was} → {HAND_EDITED_VERSION})"
            );
        }
        let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), &ns);
        created.intents.push((ns.clone(), name.clone()));
        api.patch(
            &name,
            &PatchParams::apply(FLUX_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await
        .with_context(|| format!("applying ApplicationInstance {ns}/{name}"))?;
    }
    Ok(hand_edited)
}

/// Poll the intents until the operator acted on every one (see [`waiting_for`]), for at most [`WAIT`].
async fn wait_for_operator(
    client: &Client,
    resources: &Resources,
    intents: &[(String, String)],
) -> anyhow::Result<Vec<IntentRow>> {
    let started = Instant::now();
    loop {
        let rows = intent_rows(client, resources, intents).await?;
        let pending: Vec<String> = rows.iter().filter_map(waiting_for).collect();
        if pending.is_empty() {
            return Ok(rows);
        }
        if started.elapsed() > WAIT {
            bail!(
                "the operator did not act on the intents within {} s; still waiting for: {}",
                WAIT.as_secs(),
                pending.join("; ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Move `main` of the mirror on to the refused `head` and sync once; returns what the sync said and
/// whether it refused the head (as it must).
async fn sync_refused_head(
    operator: &Operator,
    operator_repo: &Path,
    head: &str,
) -> anyhow::Result<(String, bool)> {
    let mirror_repo =
        gix::open(operator_repo).with_context(|| format!("opening {}", operator_repo.display()))?;
    let head = gix::ObjectId::from_hex(head.as_bytes()).map_err(|e| anyhow!("head {head}: {e}"))?;
    mirror_repo
        .reference(
            format!("refs/heads/{BRANCH}"),
            head,
            gix::refs::transaction::PreviousValue::Any,
            "demo: main moves to the refused head",
        )
        .map_err(|e| anyhow!("moving {BRANCH} in {}: {e}", operator_repo.display()))?;
    Ok(match operator.sync_now().await {
        SyncOutcome::Rejected { reason, .. } => (format!("refused: {reason}"), true),
        SyncOutcome::Verified { .. } => ("verified (unexpected)".to_string(), false),
        SyncOutcome::Unchanged => ("nothing new (unexpected)".to_string(), false),
        SyncOutcome::Unreachable { error } => (format!("repo unreachable: {error}"), false),
    })
}

/// What a row still waits for: children for a verified intent, Blocked for the hand-edited one, some
/// condition for every intent.
fn waiting_for(r: &IntentRow) -> Option<String> {
    let key = format!("{}/{}", r.namespace, r.name);
    let seen = format!(
        "(Ready {}, Blocked {})",
        cond_text(&r.ready),
        cond_text(&r.blocked)
    );
    if !r.as_in_git {
        return (!r.blocked_true()).then(|| format!("{key} to be Blocked {seen}"));
    }
    if r.ready.is_none() {
        return Some(format!("{key} to have a Ready condition {seen}"));
    }
    (!r.placeholder && !r.has_helm_release())
        .then(|| format!("{key} to have its HelmRelease {seen}"))
}

/// The ApplicationInstances applied, with their conditions and children.
async fn intent_rows(
    client: &Client,
    resources: &Resources,
    intents: &[(String, String)],
) -> anyhow::Result<Vec<IntentRow>> {
    let mut rows = Vec::new();
    for (ns, name) in intents {
        let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
        let app = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading ApplicationInstance {ns}/{name}"))?;
        let Some(app) = app else {
            bail!("ApplicationInstance {ns}/{name} disappeared");
        };
        let conditions = app
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or(&[]);
        let mut children = Vec::new();
        if let Some(release) = &app.spec.release {
            for (api_version, kind) in [
                ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
                ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
                ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            ] {
                let probe = json!({"apiVersion": api_version, "kind": kind,
                    "metadata": {"name": release.name, "namespace": ns}});
                if resources
                    .get(&probe)
                    .await
                    .with_context(|| format!("reading {kind} {ns}/{}", release.name))?
                    .is_some()
                {
                    children.push(format!("{kind} {}", release.name));
                }
            }
        }
        rows.push(IntentRow {
            namespace: ns.clone(),
            name: name.clone(),
            as_in_git: (ns.as_str(), name.as_str()) != HAND_EDITED,
            placeholder: app.spec.mode == AppMode::Placeholder,
            ready: Cond::of(conditions, types::READY),
            blocked: Cond::of(conditions, types::BLOCKED),
            children,
        });
    }
    Ok(rows)
}

/// The `v1` Namespace documents in the files.
fn namespace_docs(files: &[crate::intent::SourceFile]) -> Vec<Value> {
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::str::from_utf8(&file.data) else {
            continue;
        };
        let Ok(docs) = serde_saphyr::from_multiple::<Value>(text) else {
            continue;
        };
        out.extend(docs.into_iter().filter(|d| {
            crate::render::api_version(d) == "v1" && crate::render::kind(d) == "Namespace"
        }));
    }
    out
}

/// A bare copy of the cluster repo for the operator, with `main` at the verified revision.
fn mirror(input: &Input<'_>) -> anyhow::Result<std::path::PathBuf> {
    let path = input.dir.join("controller/cluster-repo.git");
    remote::open_or_init_cache(&path)?;
    let source = input.repo_dir.display().to_string();
    remote::fetch(
        &path,
        &source,
        &[&format!("+refs/heads/{BRANCH}:refs/demo/{BRANCH}")],
        &Credentials::None,
    )?;
    let repo = gix::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let verified = gix::ObjectId::from_hex(input.verified.as_bytes())
        .map_err(|e| anyhow!("revision {}: {e}", input.verified))?;
    repo.reference(
        format!("refs/heads/{BRANCH}"),
        verified,
        gix::refs::transaction::PreviousValue::Any,
        "demo: the branch as the operator first saw it",
    )
    .map_err(|e| anyhow!("setting {BRANCH} in {}: {e}", path.display()))?;
    Ok(path)
}

/// Create our CRDs that are missing and wait until they are Established; returns the names created.
async fn install_crds(client: &Client) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for crd in crate::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading CRD {name}"))?
            .is_some()
        {
            continue;
        }
        api.create(&PostParams::default(), &crd)
            .await
            .with_context(|| format!("installing CRD {name}"))?;
        installed.push(name);
    }
    let started = Instant::now();
    for name in &installed {
        loop {
            let crd = api
                .get(name)
                .await
                .with_context(|| format!("reading CRD {name}"))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if started.elapsed() > WAIT {
                bail!("CRD {name} was not Established within {} s", WAIT.as_secs());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(installed)
}

/// Create the namespaces that are missing; returns those created. An existing namespace must carry the
/// gate label and not be terminating.
async fn create_namespaces(client: &Client, docs: &[Value]) -> anyhow::Result<Vec<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut created = Vec::new();
    for doc in docs {
        let name = crate::render::name(doc).to_string();
        match api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading namespace {name}"))?
        {
            Some(ns) if ns.metadata.deletion_timestamp.is_some() => bail!(
                "namespace {name} is being deleted (by an earlier demo run?); run again once it is gone \
                 (an API server without a namespace controller, like the test bed's, never finishes: start a fresh one)"
            ),
            Some(ns) => {
                let gated = ns
                    .metadata
                    .labels
                    .unwrap_or_default()
                    .get(labels::NAMESPACE_GATE_KEY)
                    .map(String::as_str)
                    == Some(labels::NAMESPACE_GATE_VALUE);
                if !gated {
                    bail!(
                        "namespace {name} exists without the label {}={}: the operator would ignore it",
                        labels::NAMESPACE_GATE_KEY,
                        labels::NAMESPACE_GATE_VALUE
                    );
                }
            }
            None => {
                let ns: Namespace = serde_json::from_value(doc.clone())
                    .with_context(|| format!("the namespace {name} in Git"))?;
                api.create(&PostParams::default(), &ns)
                    .await
                    .with_context(|| format!("creating namespace {name}"))?;
                created.push(name);
            }
        }
    }
    Ok(created)
}

/// Delete what the demo created: the intents (while the operator runs, so it releases them), the Cluster
/// object, the namespaces and the CRDs. Returns a summary.
async fn cleanup(
    client: &Client,
    created: &Created,
    operator: Option<Operator>,
) -> anyhow::Result<String> {
    let mut done = Vec::new();
    let mut stuck = Vec::new();
    if operator.is_some() && !created.intents.is_empty() {
        for (ns, name) in &created.intents {
            let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("deleting ApplicationInstance {ns}/{name}"));
                }
            }
        }
        let started = Instant::now();
        loop {
            let mut left = Vec::new();
            for (ns, name) in &created.intents {
                let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
                if api
                    .get_opt(name)
                    .await
                    .with_context(|| format!("reading ApplicationInstance {ns}/{name}"))?
                    .is_some()
                {
                    left.push((ns.clone(), name.clone()));
                }
            }
            if left.is_empty() {
                tracing::info!("demo: the operator released every intent");
                done.push(format!("{} ApplicationInstances", created.intents.len()));
                break;
            }
            if started.elapsed() > WAIT {
                stuck = left;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    if let Some(op) = operator {
        tracing::info!("demo: stopping the operator");
        op.stop().await;
        tracing::info!("demo: operator stopped");
    }
    // Whatever the operator did not release in time: drop its finalizer so nothing is left behind.
    for (ns, name) in &stuck {
        let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
        let patch = json!({"metadata": {"finalizers": null}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("releasing ApplicationInstance {ns}/{name}"));
            }
        }
    }
    if !stuck.is_empty() {
        done.push(format!(
            "{} ApplicationInstances (the operator did not release {} in time)",
            created.intents.len(),
            stuck.len()
        ));
    }
    if created.cluster {
        let api: Api<Cluster> = Api::all(client.clone());
        match api.delete(CLUSTER, &DeleteParams::background()).await {
            Ok(_) => done.push(format!("the Cluster {CLUSTER}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting the Cluster {CLUSTER}")),
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in &created.namespaces {
        match namespaces.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting namespace {name}")),
        }
    }
    if !created.namespaces.is_empty() {
        done.push(format!("the namespaces {}", created.namespaces.join(", ")));
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in &created.crds {
        match crds.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting CRD {name}")),
        }
    }
    if !created.crds.is_empty() {
        done.push(format!("the CRDs {}", created.crds.join(", ")));
    }
    Ok(if done.is_empty() {
        "nothing to clean up".to_string()
    } else {
        format!("cleaned up: deleted {}", done.join(", "))
    })
}

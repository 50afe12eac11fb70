//! `demo`: the main job on a fresh machine. With no cluster and no network it builds a throwaway cluster repo
//! from the embedded `examples/cluster-repo`, signs the intent commits with a freshly generated key that the
//! demo trust policy trusts, adds an unsigned commit and a hand-edited one, and runs verify → render →
//! hydrate → notes with the same functions the real commands use. With `--kubeconfig` it also runs the
//! controller against that cluster ([`controller`]).
//!
//! Progress goes to stderr, the report to stdout (text or JSON). Exit 0 when every verdict is the one the
//! demo expects (the refusals are expected), 1 when one differs (a self-check), 2 on errors.

mod controller;
mod pull;
mod report;
mod steps;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use gix::ObjectId;
use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::api::conditions::reasons;
use crate::git::notes;
use crate::git::repo::Repo;
use crate::git::repo::load_rev;
use crate::git::sigcheck::Reason;
use crate::git::sign::SigningKey;
use crate::git::verify::Verdict;
use crate::git::{short_id, write};
use crate::hydrate::{self, CommitOutcome};
use crate::tree::render_tree;
use report::{CommitLine, Report};

/// One self-check: what the demo expects, and what it got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub got: String,
}

impl Check {
    pub fn new(what: impl Into<String>, ok: bool, got: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ok,
            got: got.into(),
        }
    }
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/cluster_repo.rs"));
}

/// The example cluster.
pub const CLUSTER: &str = "eu-prod-1";
/// Its intent path in the repo.
pub const INTENT_PATH: &str = "clusters/eu-prod-1";
/// The intent branch.
pub const BRANCH: &str = "main";
/// The cluster repo inside the demo directory.
pub const REPO_DIR: &str = "cluster-repo.git";
/// The notes ref as `git log --notes=` takes it.
pub const NOTES: &str = "vworkspace/eu-prod-1";
/// The `git log` format of the audit trail: short sha, subject, then the notes.
pub const LOG_FORMAT: &str = "%h %s%n%N";

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Run the whole flow on a throwaway cluster repo: verify, render, hydrate, notes (and the controller with
/// --kubeconfig), and print what happened.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build everything in DIR (it must not exist, or be empty) and leave it there to explore.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Also run the controller against the cluster of this kubeconfig. Only this flag is read: the demo never
    /// picks up $KUBECONFIG or ~/.kube/config by itself.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Someone who writes commits.
#[derive(Debug, Clone, Copy)]
struct Person {
    name: &'static str,
    email: &'static str,
}

const ALICE: Person = Person {
    name: "Alice",
    email: "alice@example.com",
};
/// The comment of Alice's key, shown in the trust policy.
const ALICE_KEY_COMMENT: &str = "Alice, platform team";
const BOB: Person = Person {
    name: "Bob",
    email: "bob@example.com",
};

/// A change to one of the example files (paths relative to examples/cluster-repo).
enum Edit {
    /// Replace the first `from` with `to`.
    Replace {
        file: &'static str,
        from: &'static str,
        to: &'static str,
    },
    /// Remove the YAML document whose `metadata.name` is `name` from a multi-document file.
    RemoveDocument {
        file: &'static str,
        name: &'static str,
    },
}

impl Edit {
    fn file(&self) -> &'static str {
        match self {
            Self::Replace { file, .. } | Self::RemoveDocument { file, .. } => file,
        }
    }
}

const NEXTCLOUD: &str =
    "clusters/eu-prod-1/namespaces/team-alpha/applicationinstance-nextcloud.yaml";
const NEXTCLOUD_OPERATIONS: &str = "clusters/eu-prod-1/namespaces/team-alpha/operations.yaml";
const GITEA: &str = "clusters/eu-prod-1/namespaces/team-beta/applicationinstance-gitea.yaml";
const VAULTWARDEN: &str =
    "clusters/eu-prod-1/namespaces/team-beta/applicationinstance-vaultwarden.yaml";

/// A commit the demo writes, and what verify must say about it.
struct Planned {
    subject: &'static str,
    author: Person,
    signed: bool,
    /// `None`: every example file (the first commit).
    edits: Option<&'static [Edit]>,
    /// Edits made to the tree after the commit was signed (the signature is kept).
    after_signing: &'static [Edit],
    /// What the demo did, in a few words.
    story: &'static str,
    /// `None`: verified; otherwise the reason verify must give.
    refused: Option<Reason>,
}

const PLAN: &[Planned] = &[
    Planned {
        subject: "eu-prod-1: import the example intents",
        author: ALICE,
        signed: true,
        edits: None,
        after_signing: &[],
        story: "signed",
        refused: None,
    },
    Planned {
        subject: "nextcloud: upgrade the chart to 6.7.0",
        author: ALICE,
        signed: true,
        // The version moves into the ApplicationInstance and the Upgrade Operation that carried it goes:
        // hydrate commits one HelmRelease per release, and refuses a revision where an Upgrade Operation
        // renders its target's HelmRelease differently.
        edits: Some(&[
            Edit::Replace {
                file: NEXTCLOUD,
                from: "    version: 6.6.4\n",
                to: "    version: 6.7.0\n",
            },
            Edit::RemoveDocument {
                file: NEXTCLOUD_OPERATIONS,
                name: "nextcloud-upgrade-6-7",
            },
        ]),
        after_signing: &[],
        story: "signed",
        refused: None,
    },
    Planned {
        subject: "gitea: scale to 3 replicas",
        author: BOB,
        signed: false,
        edits: Some(&[Edit::Replace {
            file: GITEA,
            from: "    inline:\n      gitea:\n",
            to: "    inline:\n      replicaCount: 3\n      gitea:\n",
        }]),
        after_signing: &[],
        story: "not signed",
        refused: Some(Reason::Unsigned),
    },
    Planned {
        subject: "vaultwarden: upgrade the chart to 0.34.4",
        author: ALICE,
        signed: true,
        edits: Some(&[Edit::Replace {
            file: VAULTWARDEN,
            from: "    version: 0.34.3\n",
            to: "    version: 0.34.4\n",
        }]),
        after_signing: &[Edit::Replace {
            file: VAULTWARDEN,
            from: "    url: https://guerzon.github.io/vaultwarden\n",
            to: "    url: https://charts.example.net/vaultwarden\n",
        }],
        story: "signed, then hand-edited (chart url changed after signing)",
        refused: Some(Reason::BadSignature),
    },
];

/// Where the demo works: a directory kept for the user, or a temporary one removed at the end.
enum WorkDir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            Self::Kept(p) => p,
            Self::Temp(t) => t.path(),
        }
    }
}

/// Progress lines on stderr: `[2/5] verifying … 4 commits, 0.01 s`.
struct Progress {
    step: usize,
    total: usize,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            step: 0,
            total,
            started: Instant::now(),
        }
    }

    fn begin(&mut self, what: &str) {
        self.step += 1;
        self.started = Instant::now();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "[{}/{}] {what} … ", self.step, self.total);
        let _ = err.flush();
    }

    fn done(&self, summary: &str) {
        eprintln!(
            "{}, {:.2} s",
            crate::escape::Esc(&summary),
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if std::env::var_os("RUST_LOG").is_some() {
        super::run::init_tracing("text");
    }
    let work = match &args.keep {
        Some(dir) => match prepare_keep_dir(dir) {
            Ok(()) => WorkDir::Kept(dir.clone()),
            Err(e) => {
                eprintln!(
                    "error: --keep {}: {}",
                    crate::escape::Esc(dir.display()),
                    crate::escape::Esc(e)
                );
                return Ok(EXIT_USAGE);
            }
        },
        None => WorkDir::Temp(
            tempfile::Builder::new()
                .prefix("vworkspace-demo-")
                .tempdir()
                .context("creating a temporary directory")?,
        ),
    };
    if let Some(k) = &args.kubeconfig
        && !k.is_file()
    {
        eprintln!("error: --kubeconfig {}: not a file", k.display());
        return Ok(EXIT_USAGE);
    }
    let started = Instant::now();
    let result = demo(work.path(), &args);
    let kept = matches!(work, WorkDir::Kept(_));
    if let WorkDir::Temp(t) = work {
        let path = t.path().to_path_buf();
        t.close()
            .with_context(|| format!("removing {}", path.display()))?;
    }
    let mut report = result?;
    report.seconds = started.elapsed().as_secs_f64();
    report.kept = kept;
    match args.output {
        Output::Text => print!("{}", crate::escape::Lines(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_INVALID })
}

/// `--keep DIR` must not exist or be an empty directory; it is created.
fn prepare_keep_dir(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err("exists and is not empty; give a new or empty directory".into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))
        }
        Err(e) => Err(format!("cannot read it: {e}")),
    }
}

/// The steps, in order; returns the report (every check recorded in it).
fn demo(dir: &Path, args: &Args) -> anyhow::Result<Report> {
    let total = if args.kubeconfig.is_some() { 7 } else { 6 };
    let mut progress = Progress::new(total);
    let mut checks = Vec::new();
    let built = steps::cluster_repo(dir, &mut progress)?;
    let verified = steps::verify(&built, &mut progress, &mut checks)?;
    let revision = verified.revision;
    let render = steps::render(
        &verified.repo,
        &revision,
        &built.commits,
        &mut progress,
        &mut checks,
    )?;
    let hydrated = steps::hydrate_output(dir, &built, &revision, &mut progress, &mut checks)?;
    let log = steps::audit_trail(&built.repo_dir, &mut progress, &mut checks)?;
    let pull = steps::pull_scene(&hydrated.repo, &revision, &mut progress, &mut checks)?;
    let controller = match &args.kubeconfig {
        Some(kubeconfig) => {
            progress.begin("running the controller against the kubeconfig's cluster");
            let info = controller::run(&controller::Input {
                dir,
                kubeconfig,
                keep: args.keep.is_some(),
                repo_dir: &built.repo_dir,
                policy: &built.policy,
                verified: &revision,
                head: &verified.head.to_string(),
            })
            .context("step 7 (controller)")?;
            info.checks(&mut checks);
            progress.done(&format!("{} intents", info.intents.len()));
            Some(info)
        }
        None => None,
    };

    let ok = checks.iter().all(|c| c.ok);
    Ok(Report {
        cluster_id: CLUSTER.to_string(),
        dir: dir.display().to_string(),
        kept: false,
        commits: built.commits,
        policy: report::PolicyLine {
            signer: ALICE.email.to_string(),
            comment: ALICE_KEY_COMMENT.to_string(),
            fingerprint: built.keys.alice.fingerprint().to_string(),
            mode: "range".to_string(),
        },
        verify: verified.verify,
        revision,
        render,
        hydrate: hydrated.report,
        output_signed_by: hydrated
            .output_signed
            .and_then(|v| v.ok.then_some(v.fingerprint).flatten()),
        operator_key: built.keys.operator.fingerprint().to_string(),
        notes_command: format!("git log --notes={NOTES} --format='{LOG_FORMAT}' {BRANCH}"),
        notes: log,
        pull,
        controller,
        checks,
        ok,
        seconds: 0.0,
    })
}

/// The demo's keys: Alice's (trusted by the policy) and the operator's (signs output commits). Fresh
/// Ed25519 keys from the OS random generator, written to `<dir>/keys/` so the kept directory can be used
/// with `git` and `hydrate`.
struct Keys {
    alice: SigningKey,
    operator: SigningKey,
    operator_path: PathBuf,
}

impl Keys {
    fn generate(dir: &Path) -> anyhow::Result<Self> {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
        let (alice, _) = new_key(&keys.join("alice"), ALICE_KEY_COMMENT)?;
        let (operator, operator_path) =
            new_key(&keys.join("operator"), "vworkspace-operator (demo)")?;
        Ok(Self {
            alice,
            operator,
            operator_path,
        })
    }
}

/// A fresh Ed25519 key written as an OpenSSH private key at `path` (mode 0600) and its public key beside it.
fn new_key(path: &Path, comment: &str) -> anyhow::Result<(SigningKey, PathBuf)> {
    let pair = Ed25519Keypair::random(&mut rand::rngs::OsRng);
    let key = PrivateKey::new(pair.into(), comment).context("building an Ed25519 key")?;
    let text = key
        .to_openssh(LineEnding::LF)
        .context("encoding an Ed25519 key")?;
    write_private(path, text.as_bytes())?;
    let public = path.with_extension("pub");
    let line = key
        .public_key()
        .to_openssh()
        .context("encoding a public key")?;
    std::fs::write(&public, format!("{line}\n"))
        .with_context(|| format!("writing {}", public.display()))?;
    let signing = SigningKey::from_text(&text, &path.display().to_string())?;
    Ok((signing, path.to_path_buf()))
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .with_context(|| format!("writing {}", path.display()))
}

/// Apply `edits` to the files; returns the paths changed. An edit that no longer matches the embedded
/// examples is an error naming it.
fn apply_edits(
    files: &mut BTreeMap<String, String>,
    edits: &[Edit],
) -> anyhow::Result<Vec<String>> {
    let mut changed = Vec::new();
    for e in edits {
        let text = files
            .get_mut(e.file())
            .ok_or_else(|| anyhow!("examples/cluster-repo has no file {}", e.file()))?;
        match e {
            Edit::Replace { file, from, to } => {
                if !text.contains(from) {
                    bail!(
                        "examples/cluster-repo/{file} no longer contains {from:?}: update the demo's edits"
                    );
                }
                *text = text.replacen(from, to, 1);
            }
            Edit::RemoveDocument { file, name } => {
                let marker = format!("\n  name: {name}\n");
                let docs: Vec<&str> = text.split("\n---\n").collect();
                let kept: Vec<&str> = docs
                    .iter()
                    .copied()
                    .filter(|d| !format!("\n{d}").contains(&marker))
                    .collect();
                if kept.len() + 1 != docs.len() {
                    bail!(
                        "examples/cluster-repo/{file} has no single document named {name}: update the demo's edits"
                    );
                }
                *text = kept.join("\n---\n");
            }
        }
        changed.push(e.file().to_string());
    }
    Ok(changed)
}

/// Write the cluster repo at `dir`: a bare repository whose `main` holds the [`PLAN`] commits, built and
/// signed in process and written as one pack.
fn build_repo(dir: &Path, alice: &SigningKey) -> anyhow::Result<Vec<CommitLine>> {
    let repo = gix::init_bare(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files: BTreeMap<String, String> = embedded::EMBEDDED
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    let mut mem = repo.clone().with_object_memory();
    let mut tree = ObjectId::empty_tree(repo.object_hash());
    let mut parent: Option<ObjectId> = None;
    let mut lines = Vec::new();
    // Five minutes apart, ending a minute ago: the walk orders by committer time.
    let start = jiff::Timestamp::now().as_second() - 60 - 300 * PLAN.len() as i64;
    let git_err = |e: &dyn std::fmt::Display| anyhow!("writing {}: {e}", dir.display());
    for (i, p) in PLAN.iter().enumerate() {
        let changed = match p.edits {
            None => files.keys().cloned().collect(),
            Some(edits) => apply_edits(&mut files, edits)?,
        };
        let write_tree = |files: &BTreeMap<String, String>, base, changed: &[String]| {
            write::edit_tree(
                &mem,
                base,
                [],
                changed.iter().filter_map(|path| {
                    files.get(path).map(|text| (path.as_str(), text.as_bytes()))
                }),
            )
        };
        tree = write_tree(&files, tree, &changed).map_err(|e| git_err(&e))?;
        let who = write::person(
            p.author.name,
            p.author.email,
            gix::date::Time::new(start + 300 * i as i64, 0),
        );
        let mut commit = write::new_commit(
            &mem,
            tree,
            parent,
            who.clone(),
            who,
            format!("{}\n", p.subject),
            p.signed.then_some(alice),
        )?;
        if !p.after_signing.is_empty() {
            // Hand-edited after signing: the tree changes, the signature stays.
            let edited = apply_edits(&mut files, p.after_signing)?;
            tree = write_tree(&files, tree, &edited).map_err(|e| git_err(&e))?;
            commit.tree = tree;
        }
        let id = mem.write_object(&commit).map_err(|e| git_err(&e))?.detach();
        lines.push(CommitLine {
            sha: id.to_string(),
            subject: p.subject.to_string(),
            author: format!("{} <{}>", p.author.name, p.author.email),
            story: p.story.to_string(),
            expected: match p.refused {
                None => "verified".to_string(),
                Some(r) => format!("refused: {r}"),
            },
        });
        parent = Some(id);
    }
    if let Some(objects) = mem.objects.take_object_memory() {
        notes::write_pack(&repo, &objects).map_err(|e| git_err(&e))?;
    }
    let head = parent.ok_or_else(|| anyhow!("the demo plan has no commits"))?;
    repo.reference(
        format!("refs/heads/{BRANCH}"),
        head,
        gix::refs::transaction::PreviousValue::MustNotExist,
        "demo: build the cluster repo",
    )
    .map_err(|e| git_err(&e))?;
    Ok(lines)
}

/// The verdicts match the plan: the signed commits verified as Alice's, the others refused for the planned
/// reason.
fn check_verdicts(commits: &[CommitLine], verdicts: &[Verdict], checks: &mut Vec<Check>) {
    checks.push(Check::new(
        "verify: every commit is checked",
        verdicts.len() == PLAN.len(),
        format!("{} verdicts for {} commits", verdicts.len(), PLAN.len()),
    ));
    for (c, p) in commits.iter().zip(PLAN) {
        let v = verdicts.iter().find(|v| v.sha == c.sha);
        let got = match v {
            None => "not checked".to_string(),
            Some(v) if v.ok => {
                format!("verified, signed by {}", v.signer.as_deref().unwrap_or("?"))
            }
            Some(v) => format!(
                "refused: {}",
                v.reason.as_ref().map_or("?", |r| r.reason.as_str())
            ),
        };
        let ok = match (p.refused, v) {
            (None, Some(v)) => v.ok && v.signer.as_deref() == Some(ALICE.email),
            (Some(reason), Some(v)) => !v.ok && v.reason.as_ref().map(|r| r.reason) == Some(reason),
            (_, None) => false,
        };
        checks.push(Check::new(
            format!(
                "verify {} ({}): {}",
                short_id(&c.sha),
                c.subject,
                c.expected
            ),
            ok,
            got,
        ));
    }
}

/// The newest revision of `head`'s first-parent chain whose history holds no refused commit: what hydrate
/// and the controller act on in range mode (the same selection hydrate makes).
fn newest_verified(
    repo: &Repo,
    head: ObjectId,
    verdicts: &[Verdict],
) -> anyhow::Result<Option<String>> {
    let (parents, chain) = crate::git::select::range_graph(repo, None, head)?;
    let bad = verdicts
        .iter()
        .filter(|v| !v.ok)
        .filter_map(|v| ObjectId::from_hex(v.sha.as_bytes()).ok())
        .collect();
    Ok(crate::git::select::select_range(&chain, &parents, &bad).map(|i| chain[i].to_string()))
}

/// Render the intents at `revision` with the embedded templates.
fn render_step(repo: &Repo, revision: &str) -> anyhow::Result<report::RenderInfo> {
    let renderer = crate::render::renderer(None, Some(CLUSTER), "velero")
        .context("step 3 (render): the embedded templates")?;
    let files = load_rev(repo, revision, INTENT_PATH)
        .with_context(|| format!("step 3 (render): reading {INTENT_PATH} at {revision}"))?;
    let result = render_tree(&files, &renderer, Some(CLUSTER));
    let name = |obj: &serde_json::Value| {
        let ns = crate::render::namespace(obj);
        let name = crate::render::name(obj);
        if ns.is_empty() {
            format!("{} {name}", crate::render::kind(obj))
        } else {
            format!("{} {ns}/{name}", crate::render::kind(obj))
        }
    };
    Ok(report::RenderInfo {
        intents: result
            .intents
            .iter()
            .map(|i| report::RenderedIntent {
                intent: format!("{} {}/{}", i.key.kind, i.key.namespace, i.key.name),
                objects: i.objects.iter().map(name).collect(),
            })
            .collect(),
        objects: result.objects().count(),
        problems: result.problems.iter().map(ToString::to_string).collect(),
    })
}

/// The first ApplicationInstance document of the intent path at `revision`, as JSON (what the Pull scene's
/// control plane sends).
fn first_application(repo: &Repo, revision: &str) -> anyhow::Result<serde_json::Value> {
    for file in load_rev(repo, revision, INTENT_PATH)? {
        let text = String::from_utf8_lossy(&file.data);
        for doc in text.split("\n---") {
            let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(doc) else {
                continue;
            };
            if value["kind"] == "ApplicationInstance" {
                return Ok(value);
            }
        }
    }
    anyhow::bail!("no ApplicationInstance under {INTENT_PATH} at {revision}")
}

/// Hydrate rendered the verified commits, refused the others with the planned note reasons, and signed its
/// output commit with the operator's key.
fn check_hydrate(
    commits: &[CommitLine],
    revision: &str,
    hydrated: &hydrate::HydrateReport,
    output_signed: Option<&Verdict>,
    checks: &mut Vec<Check>,
) {
    checks.push(Check::new(
        "hydrate: renders the newest verified revision",
        hydrated.revision.as_deref() == Some(revision) && hydrated.problems.is_empty(),
        format!(
            "revision {}",
            hydrated.revision.as_deref().map_or("none", short_id)
        ),
    ));
    checks.push(Check::new(
        "hydrate: an output commit signed by the operator's key",
        output_signed.is_some_and(|v| v.ok),
        match (&hydrated.output_commit, output_signed) {
            (Some(c), Some(v)) if v.ok => format!("{} verified", short_id(c)),
            (Some(c), Some(v)) => format!(
                "{} not verified: {}",
                short_id(c),
                v.reason.as_ref().map_or("?", |r| r.reason.as_str())
            ),
            _ => "no output commit".to_string(),
        },
    ));
    for (c, p) in commits.iter().zip(PLAN) {
        let outcome = hydrated
            .commits
            .iter()
            .find(|r| r.commit == c.sha)
            .map(|r| r.outcome);
        let note = hydrated.notes.iter().find(|n| n.commit == c.sha);
        let (want_outcome, want_note, want_reason) = match p.refused {
            None => (
                CommitOutcome::Rendered,
                hydrate::OUTCOME_RENDERED,
                reasons::COMMIT_VERIFIED,
            ),
            Some(Reason::Unsigned) => (
                CommitOutcome::Refused,
                hydrate::OUTCOME_REJECTED,
                reasons::UNSIGNED_COMMIT,
            ),
            Some(_) => (
                CommitOutcome::Refused,
                hydrate::OUTCOME_REJECTED,
                reasons::UNTRUSTED_SIGNATURE,
            ),
        };
        let ok = outcome == Some(want_outcome)
            && note.is_some_and(|n| n.outcome == want_note && n.reason == want_reason);
        checks.push(Check::new(
            format!(
                "hydrate {}: {want_outcome:?}, note {want_note}/{want_reason}",
                short_id(&c.sha)
            ),
            ok,
            format!(
                "{}, note {}",
                outcome.map_or_else(|| "not processed".to_string(), |o| format!("{o:?}")),
                note.map_or_else(
                    || "none".to_string(),
                    |n| format!("{}/{}", n.outcome, n.reason)
                )
            ),
        ));
    }
}

/// The audit trail exactly as `git log --notes` prints it (git isolated from the user's configuration).
fn git_log_notes(repo_dir: &Path) -> anyhow::Result<String> {
    let notes_arg = format!("--notes={NOTES}");
    let format_arg = format!("--format={LOG_FORMAT}");
    let out = std::process::Command::new("git")
        .arg("--no-pager")
        .arg("-C")
        .arg(repo_dir)
        .args(["log", &notes_arg, &format_arg, BRANCH])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .context("step 5 (notes): running git (is git installed?)")?;
    if !out.status.success() {
        bail!(
            "step 5 (notes): git log failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_edits_apply_to_the_embedded_examples() {
        let mut files: BTreeMap<String, String> = embedded::EMBEDDED
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        for p in PLAN {
            if let Some(edits) = p.edits {
                apply_edits(&mut files, edits).unwrap();
            }
            apply_edits(&mut files, p.after_signing).unwrap();
        }
        assert!(files.contains_key(NEXTCLOUD) && files.contains_key(GITEA));
    }

    #[test]
    fn keep_dir_must_be_new_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(prepare_keep_dir(&tmp.path().join("new/dir")).is_ok());
        assert!(
            prepare_keep_dir(tmp.path())
                .unwrap_err()
                .contains("not empty")
        );
    }
}

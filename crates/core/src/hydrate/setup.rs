//! The resolved configuration of a pass ([`Setup`]): options checked, the signing key, notes signer and
//! renderer loaded, the refs and paths named.

use std::path::PathBuf;

use crate::git::notes::{self};
use crate::git::policy::TrustPolicy;
use crate::git::remote;
use crate::git::sign::SigningKey;
use crate::render::Renderer;

use super::{
    DEFAULT_BRANCH, HydrateError, HydrateOptions, OutTarget, check_branch, check_path, overlaps,
};

/// The resolved configuration of a pass.
pub(super) struct Setup<'a> {
    pub(super) opts: &'a HydrateOptions,
    pub(super) branch: String,
    pub(super) intent_path: String,
    pub(super) intent_ref: String,
    /// The ref the output is pushed to (the intent ref in path mode).
    pub(super) out_ref: String,
    /// The output prefix in the output tree (`""`: the root of the output branch).
    pub(super) out_prefix: String,
    pub(super) path_mode: bool,
    /// The output as named in notes and reports.
    pub(super) output_name: String,
    pub(super) notes_ref: String,
    pub(super) key: Option<SigningKey>,
    /// Signs the outcome records.
    pub(super) notes_signer: Option<std::sync::Arc<notes::auth::NotesSigner>>,
    /// The policy that trusts exactly the signing key: how output commits are recognised.
    pub(super) own_policy: Option<TrustPolicy>,
    pub(super) renderer: Renderer,
    pub(super) cache: PathBuf,
}

impl<'a> Setup<'a> {
    pub(super) fn new(opts: &'a HydrateOptions) -> Result<Self, HydrateError> {
        let notes_ref = notes::notes_ref(&opts.cluster_id).map_err(|e| HydrateError::Option {
            option: "cluster-id",
            reason: e.to_string(),
        })?;
        if opts.repo.trim().is_empty() {
            return Err(HydrateError::Option {
                option: "repo",
                reason: "empty".into(),
            });
        }
        let branch = opts
            .branch
            .clone()
            .unwrap_or_else(|| DEFAULT_BRANCH.to_string());
        check_branch("branch", &branch)?;
        let intent_path = check_path(
            "repo-path",
            &opts
                .repo_path
                .clone()
                .unwrap_or_else(|| format!("clusters/{}", opts.cluster_id)),
        )?;
        let out = opts
            .out
            .clone()
            .unwrap_or_else(|| OutTarget::Branch(format!("hydrated/{}", opts.cluster_id)));
        let (out_ref, out_prefix, path_mode, output_name) = match &out {
            OutTarget::Branch(b) => {
                check_branch("out-branch", b)?;
                if *b == branch {
                    return Err(HydrateError::Option {
                        option: "out-branch",
                        reason: format!(
                            "{b:?} is the intent branch; use --out-path to write into it"
                        ),
                    });
                }
                (format!("refs/heads/{b}"), String::new(), false, b.clone())
            }
            OutTarget::Path(p) => {
                let p = check_path("out-path", p)?;
                if overlaps(&p, &intent_path) {
                    return Err(HydrateError::Option {
                        option: "out-path",
                        reason: format!(
                            "{p:?} overlaps the intent path {intent_path:?}: the output must stay out of the intents"
                        ),
                    });
                }
                (
                    format!("refs/heads/{branch}"),
                    p.clone(),
                    true,
                    format!("{branch}:{p}"),
                )
            }
        };
        let key = opts
            .signing_key
            .as_deref()
            .map(SigningKey::load)
            .transpose()?;
        let own_policy = key.as_ref().map(SigningKey::own_policy).transpose()?;
        let notes_signer = opts
            .notes_signing_key
            .as_deref()
            .map(notes::auth::NotesSigner::load)
            .transpose()
            .map_err(|e| HydrateError::Option {
                option: "notes-signing-key",
                reason: e.to_string(),
            })?
            .map(std::sync::Arc::new);
        let renderer = crate::render::renderer(
            opts.templates.as_deref(),
            Some(&opts.cluster_id),
            &opts.velero_namespace,
        )
        .map_err(|e| HydrateError::Templates(e.to_string()))?
        .with_allowed_chart_hosts(opts.guards.allowed_chart_hosts.clone())
        .with_helm_engine(opts.helm_engine.clone())
        .with_chart_trust(crate::charts::ChartTrustCell::new(
            opts.policy.charts().clone(),
        ));
        Ok(Self {
            opts,
            intent_ref: format!("refs/heads/{branch}"),
            branch,
            intent_path,
            out_ref,
            out_prefix,
            path_mode,
            output_name,
            notes_ref,
            key,
            notes_signer,
            own_policy,
            renderer,
            cache: opts.work_dir.join("repo.git"),
        })
    }

    pub(super) fn url(&self) -> String {
        remote::display_url(&self.opts.repo)
    }
}

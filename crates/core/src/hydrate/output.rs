//! The output side of a pass: the last output commit the operator vouches for, the intent commits to
//! hydrate, the files now at the output location, and writing the output commit.

use std::collections::BTreeMap;
use std::fmt;

use gix::ObjectId;

use super::plan::{CurrentEntry, DesiredFile, Plan};
use super::{message, plan};
use crate::git::notes::{self};
use crate::git::repo::Repo;
use crate::git::select::{Selection, select};
use crate::git::verify::Verifier;
use crate::git::write;

use super::setup::Setup;
use super::{HydrateError, git_err};

/// The newest output commit of this cluster that the operator can vouch for.
pub(super) struct LastOutput {
    pub(super) commit: ObjectId,
    pub(super) trailers: message::Trailers,
    /// Signed by the operator's own key (always false without a signing key).
    pub(super) trusted: bool,
}

impl Setup<'_> {
    /// The newest commit reachable from `tip` whose trailers name this cluster, preferring (and, with a
    /// signing key, requiring) one signed by the operator's key.
    pub(super) fn last_output(
        &self,
        repo: &Repo,
        tip: ObjectId,
    ) -> Result<Option<LastOutput>, HydrateError> {
        let what = || format!("walking {} for output commits", self.out_ref);
        let walk = repo
            .walk_newest_first([tip], [])
            .map_err(|e| git_err(what(), e))?;
        let mut buf = Vec::new();
        for info in walk {
            let info = info.map_err(|e| git_err(what(), e))?;
            // Read within the bounds (crate::git::bounds): the output branch can be pushed to by anyone with
            // push access.
            let data = repo
                .read(info.id, &mut buf)
                .map_err(|e| git_err(what(), e))?;
            let trailers = message::parse(&message::body(data.map(|d| d.data).unwrap_or_default()));
            if trailers.cluster.as_deref() != Some(self.opts.cluster_id.as_str())
                || trailers.intent_commit.is_none()
            {
                continue;
            }
            match &self.own_policy {
                None => {
                    return Ok(Some(LastOutput {
                        commit: info.id,
                        trailers,
                        trusted: false,
                    }));
                }
                Some(policy) => {
                    if Verifier::new(repo, policy).commit(info.id).ok {
                        return Ok(Some(LastOutput {
                            commit: info.id,
                            trailers,
                            trusted: true,
                        }));
                    }
                    tracing::warn!(commit = %info.id, "output commit not signed by the operator's key; ignored");
                }
            }
        }
        Ok(None)
    }

    /// Verify what is new and choose the revision to render.
    pub(super) fn select(
        &self,
        repo: &Repo,
        base: Option<ObjectId>,
        head: ObjectId,
    ) -> Result<Selection, HydrateError> {
        Ok(select(
            repo,
            &self.opts.policy,
            &self.intent_path,
            base,
            head,
            None,
        )?)
    }

    /// The entries below the output prefix in the tree of `tip`.
    pub(super) fn current_entries(
        &self,
        repo: &Repo,
        tip: Option<ObjectId>,
    ) -> Result<BTreeMap<String, CurrentEntry>, HydrateError> {
        let mut out = BTreeMap::new();
        let Some(tip) = tip else {
            return Ok(out);
        };
        let what = || format!("reading the output tree of {tip}");
        let (tree, _) = repo
            .commit_tree_and_parents(tip)
            .map_err(|e| git_err(what(), e))?;
        let start = match repo
            .lookup(tree, &self.out_prefix)
            .map_err(|e| git_err(what(), e))?
        {
            None => return Ok(out),
            Some((mode, id)) if mode.is_tree() => id,
            Some((_, id)) => {
                out.insert(
                    self.out_prefix.clone(),
                    CurrentEntry {
                        id,
                        regular_file: false,
                    },
                );
                return Ok(out);
            }
        };
        let hash = repo.gix().object_hash();
        let mut buf = Vec::new();
        let mut stack = vec![(start, self.out_prefix.clone())];
        while let Some((id, base)) = stack.pop() {
            let data = match repo.read(id, &mut buf).map_err(|e| git_err(what(), e))? {
                Some(d) if d.kind == gix::objs::Kind::Tree => d.data,
                _ => return Err(git_err(what(), format!("tree {id} is missing"))),
            };
            for entry in gix::objs::TreeRefIter::from_bytes(data, hash) {
                let entry = entry.map_err(|e| git_err(what(), e))?;
                let bound = crate::git::bounds::Bound::TreeEntries;
                if (out.len() + stack.len()) as u64 >= bound.limit() {
                    return Err(git_err(what(), format!("refused: (bound: {bound})")));
                }
                let name = String::from_utf8_lossy(entry.filename);
                let path = plan::join(&base, &name);
                if entry.mode.is_tree() {
                    stack.push((entry.oid.to_owned(), path));
                } else {
                    out.insert(
                        path,
                        CurrentEntry {
                            id: entry.oid.to_owned(),
                            regular_file: entry.mode.kind() == gix::objs::tree::EntryKind::Blob,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Write the output commit (on top of `tip`) as one pack; returns its id. No ref is moved.
    pub(super) fn write_output(
        &self,
        repo: &Repo,
        tip: Option<ObjectId>,
        plan: &Plan,
        desired: &BTreeMap<String, DesiredFile>,
        message: String,
    ) -> Result<ObjectId, HydrateError> {
        let what = "writing the output commit";
        let err = |e: &dyn fmt::Display| git_err(what, e);
        let hash = repo.gix().object_hash();
        let mut mem = repo.gix().clone().with_object_memory();
        let base_tree = match tip {
            Some(t) => mem
                .find_commit(t)
                .map_err(|e| err(&e))?
                .tree_id()
                .map_err(|e| err(&e))?
                .detach(),
            None => ObjectId::empty_tree(hash),
        };
        let files = plan.added.iter().chain(&plan.changed).filter_map(|path| {
            desired
                .get(path)
                .map(|f| (path.as_str(), f.data.as_slice()))
        });
        let removed = plan.removed.iter().map(String::as_str);
        let tree = write::edit_tree(&mem, base_tree, removed, files).map_err(|e| err(&e))?;
        let person = write::person(
            &self.opts.author_name,
            &self.opts.author_email,
            gix::date::Time::now_utc(),
        );
        let commit = write::new_commit(
            &mem,
            tree,
            tip,
            person.clone(),
            person,
            message,
            self.key.as_ref(),
        )?;
        let id = mem.write_object(&commit).map_err(|e| err(&e))?.detach();
        if let Some(objects) = mem.objects.take_object_memory() {
            notes::write_pack(repo.gix(), &objects).map_err(|e| err(&e))?;
        }
        Ok(id)
    }
}

//! Reading a repository with gix: resolve revisions and read the files of a tree without a work tree.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

/// Errors reading a repository. Messages name the repo path, revision or tree path involved.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("cannot open git repository {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot resolve revision {rev:?}: {message}")]
    Resolve { rev: String, message: String },
    #[error("cannot read object {id}: {message}")]
    Object { id: String, message: String },
    #[error("{path}: refused: {reason}")]
    Refused { path: String, reason: &'static str },
}

/// A file read from a git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path relative to the tree root, `/`-separated.
    pub path: String,
    /// Blob id.
    pub id: ObjectId,
    pub data: Vec<u8>,
}

/// Size of the object cache of an opened repository.
const OBJECT_CACHE_BYTES: usize = 16 << 20;

/// A repository opened for reading (bare or not; the work tree is never used).
pub struct Repo {
    inner: gix::Repository,
    path: PathBuf,
}

impl Repo {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RepoError> {
        let path = path.as_ref().to_path_buf();
        let mut inner = gix::open(&path).map_err(|e| RepoError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // History walks (provenance, path history) read the same trees over and over.
        inner.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        Ok(Self { inner, path })
    }

    /// The underlying gix repository.
    pub fn gix(&self) -> &gix::Repository {
        &self.inner
    }

    /// Where the repository was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolve a revision (sha, branch, tag, `HEAD~2`, …) to the commit it names (tags are peeled).
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, RepoError> {
        let err = |message: String| RepoError::Resolve {
            rev: rev.to_string(),
            message,
        };
        let id = self
            .inner
            .rev_parse_single(rev)
            .map_err(|e| err(e.to_string()))?;
        let commit = id
            .object()
            .map_err(|e| err(e.to_string()))?
            .peel_to_commit()
            .map_err(|e| err(e.to_string()))?;
        Ok(commit.id)
    }

    /// Read every regular file at or below `prefix` (a `/`-separated tree path; empty for the root) in the
    /// tree of `commit`. Symlinks, submodules and entry names that could escape the tree are refused with an
    /// error naming the path: a manifest must be a plain file in the reviewed tree.
    /// A missing `prefix` yields no files.
    pub fn read_files(&self, commit: ObjectId, prefix: &str) -> Result<Vec<TreeFile>, RepoError> {
        let obj_err = |id: ObjectId, e: &dyn std::fmt::Display| RepoError::Object {
            id: id.to_string(),
            message: e.to_string(),
        };
        let tree = self
            .inner
            .find_commit(commit)
            .map_err(|e| obj_err(commit, &e))?
            .tree()
            .map_err(|e| obj_err(commit, &e))?;
        let prefix = prefix.trim_matches('/');
        let mut out = Vec::new();
        let start = if prefix.is_empty() {
            tree.id
        } else {
            for part in prefix.split('/') {
                check_name(prefix, part.as_bytes())?;
            }
            match tree
                .lookup_entry_by_path(prefix)
                .map_err(|e| obj_err(tree.id, &e))?
            {
                None => return Ok(out),
                Some(entry) => match entry.mode().kind() {
                    EntryKind::Tree => entry.object_id(),
                    EntryKind::Blob | EntryKind::BlobExecutable => {
                        let data = self.blob(entry.object_id())?;
                        out.push(TreeFile {
                            path: prefix.to_string(),
                            id: entry.object_id(),
                            data,
                        });
                        return Ok(out);
                    }
                    EntryKind::Link => {
                        return Err(RepoError::Refused {
                            path: prefix.to_string(),
                            reason: "symbolic link",
                        });
                    }
                    EntryKind::Commit => {
                        return Err(RepoError::Refused {
                            path: prefix.to_string(),
                            reason: "submodule",
                        });
                    }
                },
            }
        };
        self.walk(start, prefix.to_string(), &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn walk(
        &self,
        tree_id: ObjectId,
        base: String,
        out: &mut Vec<TreeFile>,
    ) -> Result<(), RepoError> {
        let obj_err = |e: &dyn std::fmt::Display| RepoError::Object {
            id: tree_id.to_string(),
            message: e.to_string(),
        };
        let tree = self.inner.find_tree(tree_id).map_err(|e| obj_err(&e))?;
        let decoded = tree.decode().map_err(|e| obj_err(&e))?;
        for entry in &decoded.entries {
            let path = if base.is_empty() {
                entry.filename.to_str_lossy().into_owned()
            } else {
                format!("{base}/{}", entry.filename.to_str_lossy())
            };
            check_name(&path, entry.filename.as_bytes())?;
            let id = entry.oid.to_owned();
            match entry.mode.kind() {
                EntryKind::Tree => self.walk(id, path, out)?,
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let data = self.blob(id)?;
                    out.push(TreeFile { path, id, data });
                }
                EntryKind::Link => {
                    return Err(RepoError::Refused {
                        path,
                        reason: "symbolic link",
                    });
                }
                EntryKind::Commit => {
                    return Err(RepoError::Refused {
                        path,
                        reason: "submodule",
                    });
                }
            }
        }
        Ok(())
    }

    /// The bytes of a blob.
    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>, RepoError> {
        let obj = self.inner.find_object(id).map_err(|e| RepoError::Object {
            id: id.to_string(),
            message: e.to_string(),
        })?;
        if obj.kind != gix::object::Kind::Blob {
            return Err(RepoError::Object {
                id: id.to_string(),
                message: format!("expected a blob, found a {}", obj.kind),
            });
        }
        Ok(obj.detach().data)
    }
}

impl Repo {
    /// The id of the tree entry at `path` (`/`-separated, empty for the root tree) in the tree of `commit`,
    /// or `None` when the path does not exist there.
    pub fn entry_id(&self, commit: ObjectId, path: &str) -> Result<Option<ObjectId>, RepoError> {
        let obj_err = |e: &dyn std::fmt::Display| RepoError::Object {
            id: commit.to_string(),
            message: e.to_string(),
        };
        let tree = self
            .inner
            .find_commit(commit)
            .map_err(|e| obj_err(&e))?
            .tree()
            .map_err(|e| obj_err(&e))?;
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Ok(Some(tree.id));
        }
        Ok(tree
            .lookup_entry_by_path(path)
            .map_err(|e| obj_err(&e))?
            .map(|e| e.object_id()))
    }

    /// The tree and the parents (in order) of `commit`.
    pub fn commit_tree_and_parents(
        &self,
        commit: ObjectId,
    ) -> Result<(ObjectId, Vec<ObjectId>), RepoError> {
        let err = |e: &dyn std::fmt::Display| RepoError::Object {
            id: commit.to_string(),
            message: e.to_string(),
        };
        let c = self.inner.find_commit(commit).map_err(|e| err(&e))?;
        let tree = c.tree_id().map_err(|e| err(&e))?.detach();
        Ok((tree, c.parent_ids().map(|id| id.detach()).collect()))
    }

    /// The id of the entry `name` (one path component) in the tree `tree`; `None` when there is no such
    /// entry or `tree` is not a tree.
    pub fn tree_entry(&self, tree: ObjectId, name: &str) -> Result<Option<ObjectId>, RepoError> {
        let obj = self
            .inner
            .find_object(tree)
            .map_err(|e| RepoError::Object {
                id: tree.to_string(),
                message: e.to_string(),
            })?;
        if obj.kind != gix::object::Kind::Tree {
            return Ok(None);
        }
        let tree_ref = gix::objs::TreeRefIter::from_bytes(&obj.data, self.inner.object_hash());
        for entry in tree_ref {
            let entry = entry.map_err(|e| RepoError::Object {
                id: tree.to_string(),
                message: e.to_string(),
            })?;
            if entry.filename == name.as_bytes() {
                return Ok(Some(entry.oid.to_owned()));
            }
        }
        Ok(None)
    }

    /// The parents of `commit`, in order.
    pub fn parents(&self, commit: ObjectId) -> Result<Vec<ObjectId>, RepoError> {
        let c = self
            .inner
            .find_commit(commit)
            .map_err(|e| RepoError::Object {
                id: commit.to_string(),
                message: e.to_string(),
            })?;
        Ok(c.parent_ids().map(|id| id.detach()).collect())
    }

    /// The commits reachable from `tip` that changed `path` (a file or a directory; empty for the whole tree),
    /// newest first (by commit time). A commit changed the path when the path's entry differs from its
    /// entry in every parent, like `git log --full-history -- <path>`: a merge that took one side unchanged
    /// is not listed, the commit on that side that made the change is.
    pub fn path_history(&self, tip: ObjectId, path: &str) -> Result<Vec<ObjectId>, RepoError> {
        let walk_err = |e: &dyn std::fmt::Display| RepoError::Object {
            id: tip.to_string(),
            message: e.to_string(),
        };
        let walk = self
            .inner
            .rev_walk([tip])
            .sorting(gix::revision::walk::Sorting::ByCommitTime(
                gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
            ))
            .all()
            .map_err(|e| walk_err(&e))?;
        let mut out = Vec::new();
        for info in walk {
            let info = info.map_err(|e| walk_err(&e))?;
            let here = self.entry_id(info.id, path)?;
            let parents: Vec<ObjectId> = info.parent_ids.iter().copied().collect();
            let changed = if parents.is_empty() {
                here.is_some()
            } else {
                let mut changed = true;
                for p in parents {
                    if self.entry_id(p, path)? == here {
                        changed = false;
                        break;
                    }
                }
                changed
            };
            if changed {
                out.push(info.id);
            }
        }
        Ok(out)
    }
}

/// A tree entry name must be a single, ordinary path component.
fn check_name(path: &str, name: &[u8]) -> Result<(), RepoError> {
    let bad = name.is_empty()
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&b'\\')
        || name.contains(&0);
    if bad {
        Err(RepoError::Refused {
            path: path.to_string(),
            reason: "path escapes the tree",
        })
    } else {
        Ok(())
    }
}

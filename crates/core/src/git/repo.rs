//! Reading a repository with gix: resolve revisions and read the files of a tree without a work tree.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::Find as _;
use gix::objs::Kind;
use gix::objs::tree::EntryKind;

use super::bounds::{
    self, Bound, Bounded, Exceeded, FindError, MAX_PATH_BYTES, MAX_READ_BYTES, MAX_TREE_DEPTH,
    MAX_TREE_ENTRIES, short,
};

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
    /// Something read is over one of the bounds of [`super::bounds`].
    #[error("refused: {0}")]
    Exceeded(#[from] Exceeded),
    /// The path asked for does not exist in the commit's tree.
    #[error("commit {commit}: {path} does not exist")]
    PathMissing { commit: String, path: String },
}

impl RepoError {
    /// Whether the error is a refusal of what the repository holds (a bound, a missing path, a symlink), as
    /// opposed to a failure to read it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            RepoError::Refused { .. } | RepoError::Exceeded(_) | RepoError::PathMissing { .. }
        )
    }

    fn within(self, context: &str) -> Self {
        match self {
            RepoError::Exceeded(e) => RepoError::Exceeded(e.within(context)),
            other => other,
        }
    }
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

/// Annotated tags peeled at most this many times to reach a commit.
const MAX_TAG_CHAIN: usize = 8;

/// A repository opened for reading (bare or not; the work tree is never used).
pub struct Repo {
    inner: gix::Repository,
    path: PathBuf,
}

impl Repo {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RepoError> {
        let path = path.as_ref().to_path_buf();
        let mut inner = bounds::open(&path).map_err(|e| RepoError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // History walks (provenance, path history) read the same trees over and over.
        inner.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        Ok(Self { inner, path })
    }

    /// The underlying gix repository. Read objects with [`Repo::objects`] or [`Repo::read`], never with its
    /// own `find_*` methods: those are bounded only by the allocation limit.
    pub fn gix(&self) -> &gix::Repository {
        &self.inner
    }

    /// The bounded object database (see [`super::bounds`]): for walks and anything else that takes a
    /// [`gix::objs::Find`].
    pub fn objects(&self) -> Bounded<'_> {
        Bounded::new(&self.inner)
    }

    /// Where the repository was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object `id` into `buf`, its size checked against its kind's bound before it is inflated;
    /// `None` when it is missing.
    pub fn read<'b>(
        &self,
        id: ObjectId,
        buf: &'b mut Vec<u8>,
    ) -> Result<Option<gix::objs::Data<'b>>, RepoError> {
        let err = |message: String| RepoError::Object {
            id: id.to_string(),
            message,
        };
        match self.objects().check(&id) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(FindError::Exceeded(e)) => return Err(e.into()),
            Err(FindError::Read(m)) => return Err(err(m)),
        }
        self.inner
            .objects
            .try_find(&id, buf)
            .map_err(|e| err(e.to_string()))
    }

    /// The bytes of object `id`, which must be of `kind`.
    fn read_kind<'b>(
        &self,
        id: ObjectId,
        kind: Kind,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], RepoError> {
        match self.read(id, buf)? {
            Some(d) if d.kind == kind => Ok(d.data),
            Some(d) => Err(RepoError::Object {
                id: id.to_string(),
                message: format!("expected a {kind}, found a {}", d.kind),
            }),
            None => Err(RepoError::Object {
                id: id.to_string(),
                message: "object is missing".into(),
            }),
        }
    }

    /// Resolve a revision (sha, branch, tag, `HEAD~2`, …) to the commit it names (tags are peeled).
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, RepoError> {
        let err = |message: String| RepoError::Resolve {
            rev: rev.to_string(),
            message,
        };
        let mut id = self
            .inner
            .rev_parse_single(rev)
            .map_err(|e| err(e.to_string()))?
            .detach();
        let mut buf = Vec::new();
        for _ in 0..MAX_TAG_CHAIN {
            // The kind from the header: a commit is not read here (whoever reads it next checks its size).
            let kind = self
                .inner
                .try_find_header(id)
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err(format!("object {id} is missing")))?
                .kind();
            match kind {
                Kind::Commit => return Ok(id),
                Kind::Tag => {
                    let data = self.read_kind(id, Kind::Tag, &mut buf)?;
                    id = gix::objs::TagRefIter::from_bytes(data, self.inner.object_hash())
                        .target_id()
                        .map_err(|e| err(format!("tag {id}: {e}")))?;
                }
                other => return Err(err(format!("object {id} is a {other}, not a commit"))),
            }
        }
        Err(err(format!("more than {MAX_TAG_CHAIN} nested tags")))
    }

    /// Read the files at or below `prefix` (a `/`-separated tree path; empty for the root) in the tree of
    /// `commit` whose path `keep` accepts (the others are never read). Symlinks, submodules and entry names
    /// that could escape the tree are refused with an error naming the path: a manifest must be a plain
    /// file in the reviewed tree. The walk is iterative and bounded (depth, entries, path length, bytes read,
    /// each object's size: [`super::bounds`]); a bound exceeded is an error naming the commit, the path and
    /// the bound. A missing `prefix` is an error ([`RepoError::PathMissing`]): "no files" means the path
    /// exists and holds none.
    pub fn read_files(
        &self,
        commit: ObjectId,
        prefix: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<TreeFile>, RepoError> {
        let context = format!("commit {}", short(&commit));
        let (tree, _) = self.commit_tree_and_parents(commit)?;
        let prefix = prefix.trim_matches('/');
        for part in prefix.split('/').filter(|_| !prefix.is_empty()) {
            check_name(prefix, part.as_bytes())?;
        }
        let Some((mode, id)) = self.lookup(tree, prefix).map_err(|e| e.within(&context))? else {
            return Err(RepoError::PathMissing {
                commit: commit.to_string(),
                path: prefix.to_string(),
            });
        };
        let mut walk = Walk {
            repo: self,
            context: &context,
            root: prefix,
            keep,
            entries: 0,
            bytes: 0,
            out: Vec::new(),
        };
        if mode.is_tree() {
            walk.tree(id)?;
        } else {
            walk.entry(prefix.to_string(), mode.kind(), id, 0)?;
        }
        let mut out = walk.out;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The bytes of a blob.
    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>, RepoError> {
        let mut buf = Vec::new();
        self.read_kind(id, Kind::Blob, &mut buf)?;
        Ok(buf)
    }
}

/// One bounded, iterative tree walk of [`Repo::read_files`].
struct Walk<'a> {
    repo: &'a Repo,
    /// `commit 1a2b3c4`, for errors.
    context: &'a str,
    /// The path the walk starts at.
    root: &'a str,
    keep: &'a dyn Fn(&str) -> bool,
    entries: u64,
    bytes: u64,
    out: Vec<TreeFile>,
}

impl Walk<'_> {
    fn exceeded(&self, what: String, bound: Bound) -> RepoError {
        RepoError::Exceeded(Exceeded {
            object: self.context.to_string(),
            what,
            bound,
        })
    }

    /// Walk the tree `root` (at [`Walk::root`]) with an explicit stack.
    fn tree(&mut self, root: ObjectId) -> Result<(), RepoError> {
        let hash = self.repo.inner.object_hash();
        let mut stack = vec![(root, self.root.to_string(), 0u64)];
        let mut buf = Vec::new();
        while let Some((tree_id, dir, depth)) = stack.pop() {
            let context = format!(
                "{}: {}",
                self.context,
                if dir.is_empty() { "/" } else { &dir }
            );
            let data = self
                .repo
                .read_kind(tree_id, Kind::Tree, &mut buf)
                .map_err(|e| e.within(&context))?;
            for entry in gix::objs::TreeRefIter::from_bytes(data, hash) {
                let entry = entry.map_err(|e| RepoError::Object {
                    id: tree_id.to_string(),
                    message: e.to_string(),
                })?;
                self.entries += 1;
                if self.entries > MAX_TREE_ENTRIES {
                    let what = format!(
                        "more than {MAX_TREE_ENTRIES} tree entries under {}",
                        self.shown_root()
                    );
                    return Err(self.exceeded(what, Bound::TreeEntries));
                }
                let name = entry.filename.as_bytes();
                if (dir.len() + 1 + name.len()) as u64 > MAX_PATH_BYTES {
                    let what = format!(
                        "a path under {dir} is longer than {MAX_PATH_BYTES} bytes",
                        dir = if dir.is_empty() { "/" } else { &dir }
                    );
                    return Err(self.exceeded(what, Bound::PathBytes));
                }
                let path = if dir.is_empty() {
                    entry.filename.to_str_lossy().into_owned()
                } else {
                    format!("{dir}/{}", entry.filename.to_str_lossy())
                };
                check_name(&path, name)?;
                let id = entry.oid.to_owned();
                if entry.mode.is_tree() {
                    if depth + 1 > MAX_TREE_DEPTH {
                        let what = format!(
                            "tree depth exceeds {MAX_TREE_DEPTH} under {} (at {path})",
                            self.shown_root()
                        );
                        return Err(self.exceeded(what, Bound::TreeDepth));
                    }
                    stack.push((id, path, depth + 1));
                } else {
                    self.entry(path, entry.mode.kind(), id, depth)?;
                }
            }
        }
        Ok(())
    }

    fn shown_root(&self) -> &str {
        if self.root.is_empty() { "/" } else { self.root }
    }

    /// A non-tree entry: a kept file is read, a link or submodule is refused.
    fn entry(
        &mut self,
        path: String,
        kind: EntryKind,
        id: ObjectId,
        _depth: u64,
    ) -> Result<(), RepoError> {
        match kind {
            EntryKind::Tree => Ok(()),
            EntryKind::Blob | EntryKind::BlobExecutable => {
                if !(self.keep)(&path) {
                    return Ok(());
                }
                let data = self
                    .repo
                    .blob(id)
                    .map_err(|e| e.within(&format!("{}: {path}", self.context)))?;
                self.bytes += data.len() as u64;
                if self.bytes > MAX_READ_BYTES {
                    let what = format!(
                        "the files under {} are more than {MAX_READ_BYTES} bytes (at {path})",
                        self.shown_root()
                    );
                    return Err(self.exceeded(what, Bound::ReadBytes));
                }
                self.out.push(TreeFile { path, id, data });
                Ok(())
            }
            EntryKind::Link => Err(RepoError::Refused {
                path,
                reason: "symbolic link",
            }),
            EntryKind::Commit => Err(RepoError::Refused {
                path,
                reason: "submodule",
            }),
        }
    }
}

impl Repo {
    /// The mode and id of the entry at `path` (`/`-separated; empty for `tree` itself) below `tree`, read one
    /// component at a time through the bounded reads; `None` when it does not exist.
    pub fn lookup(
        &self,
        tree: ObjectId,
        path: &str,
    ) -> Result<Option<(gix::objs::tree::EntryMode, ObjectId)>, RepoError> {
        let mut at: (gix::objs::tree::EntryMode, ObjectId) = (EntryKind::Tree.into(), tree);
        let mut buf = Vec::new();
        for name in path.split('/').filter(|n| !n.is_empty()) {
            if !at.0.is_tree() {
                return Ok(None);
            }
            match self.entry_in(at.1, name, &mut buf)? {
                Some(next) => at = next,
                None => return Ok(None),
            }
        }
        Ok(Some(at))
    }

    /// The mode and id of the entry `name` in the tree `tree`.
    fn entry_in(
        &self,
        tree: ObjectId,
        name: &str,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(gix::objs::tree::EntryMode, ObjectId)>, RepoError> {
        let hash = self.inner.object_hash();
        let data = self.read_kind(tree, Kind::Tree, buf)?;
        for entry in gix::objs::TreeRefIter::from_bytes(data, hash) {
            let entry = entry.map_err(|e| RepoError::Object {
                id: tree.to_string(),
                message: e.to_string(),
            })?;
            if entry.filename == name.as_bytes() {
                return Ok(Some((entry.mode, entry.oid.to_owned())));
            }
        }
        Ok(None)
    }

    /// The id of the tree entry at `path` (`/`-separated, empty for the root tree) in the tree of `commit`,
    /// or `None` when the path does not exist there.
    pub fn entry_id(&self, commit: ObjectId, path: &str) -> Result<Option<ObjectId>, RepoError> {
        let (tree, _) = self.commit_tree_and_parents(commit)?;
        Ok(self.lookup(tree, path.trim_matches('/'))?.map(|(_, id)| id))
    }

    /// Whether `path` is a folder (a tree) in the tree of `commit`.
    pub fn is_tree(&self, commit: ObjectId, path: &str) -> Result<bool, RepoError> {
        let (tree, _) = self.commit_tree_and_parents(commit)?;
        Ok(self
            .lookup(tree, path.trim_matches('/'))?
            .is_some_and(|(mode, _)| mode.is_tree()))
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
        let mut buf = Vec::new();
        let data = self.read_kind(commit, Kind::Commit, &mut buf)?;
        let hash = self.inner.object_hash();
        let mut c = gix::objs::CommitRefIter::from_bytes(data, hash);
        let tree = c.tree_id().map_err(|e| err(&e))?;
        let parents = gix::objs::CommitRefIter::from_bytes(data, hash)
            .parent_ids()
            .collect();
        Ok((tree, parents))
    }

    /// The id of the entry `name` (one path component) in the tree `tree`; `None` when there is no such
    /// entry or `tree` is not a tree.
    pub fn tree_entry(&self, tree: ObjectId, name: &str) -> Result<Option<ObjectId>, RepoError> {
        let mut buf = Vec::new();
        match self.read(tree, &mut buf)? {
            Some(d) if d.kind == Kind::Tree => {}
            Some(_) => return Ok(None),
            None => {
                return Err(RepoError::Object {
                    id: tree.to_string(),
                    message: "object is missing".into(),
                });
            }
        }
        Ok(self.entry_in(tree, name, &mut buf)?.map(|(_, id)| id))
    }

    /// The parents of `commit`, in order.
    pub fn parents(&self, commit: ObjectId) -> Result<Vec<ObjectId>, RepoError> {
        Ok(self.commit_tree_and_parents(commit)?.1)
    }

    /// The commits reachable from `tips` and not from `hidden`, newest first (by commit time), read through the
    /// bounded object database: a commit over [`super::bounds::MAX_COMMIT_BYTES`] ends the walk with
    /// [`RepoError::Exceeded`] naming it.
    pub fn walk_newest_first(
        &self,
        tips: impl IntoIterator<Item = ObjectId>,
        hidden: impl IntoIterator<Item = ObjectId>,
    ) -> Result<impl Iterator<Item = Result<gix::traverse::commit::Info, RepoError>> + '_, RepoError>
    {
        use gix::traverse::commit::simple::{CommitTimeOrder, Sorting};
        let objects = self.objects();
        let seen = objects.clone();
        let error = move |e: &dyn std::fmt::Display| match seen.last_exceeded() {
            Some(x) => RepoError::Exceeded(x),
            None => RepoError::Object {
                id: "(history walk)".into(),
                message: e.to_string(),
            },
        };
        let walk = gix::traverse::commit::Simple::new(tips, objects)
            .sorting(Sorting::ByCommitTime(CommitTimeOrder::NewestFirst))
            .map_err(|e| error(&e))?
            .hide(hidden)
            .map_err(|e| error(&e))?;
        Ok(walk.map(move |r| r.map_err(|e| error(&e))))
    }

    /// The commits reachable from `tip` that changed `path` (a file or a directory; empty for the whole tree),
    /// newest first (by commit time). A commit changed the path when the path's entry differs from its
    /// entry in every parent, like `git log --full-history -- <path>`: a merge that took one side unchanged
    /// is not listed, the commit on that side that made the change is.
    pub fn path_history(&self, tip: ObjectId, path: &str) -> Result<Vec<ObjectId>, RepoError> {
        let walk = self.walk_newest_first([tip], [])?;
        let mut out = Vec::new();
        for info in walk {
            let info = info?;
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

/// The manifest files at or below `prefix` in the tree of `rev`, read from git objects (only manifest files are
/// read, within the bounds of [`crate::git::bounds`]). A `prefix` missing at `rev` is an error.
pub fn load_rev(
    repo: &Repo,
    rev: &str,
    prefix: &str,
) -> Result<Vec<crate::intent::SourceFile>, RepoError> {
    let commit = repo.resolve_commit(rev)?;
    Ok(repo
        .read_files(commit, prefix, &crate::intent::is_manifest_path)?
        .into_iter()
        .map(|f| crate::intent::SourceFile {
            path: f.path,
            data: f.data,
        })
        .collect())
}

//! Bounds on what is read from a repository before trust is decided.
//!
//! Anyone with push access can put objects in the cluster repo, and the operator reads them before it knows
//! whether a trusted key signed them: the commits it verifies, the trees and manifests of a refused head it
//! indexes, the history it walks. Every such read is bounded here, so that a hostile push is refused with a
//! reason naming the bound instead of exhausting memory or the stack:
//!
//! - every object read goes through [`Bounded`] (a [`gix::objs::Find`]): its size is read from its header
//!   before it is inflated, and an object over the bound of its kind is refused ([`Bound::CommitBytes`],
//!   [`Bound::TagBytes`], [`Bound::TreeBytes`], [`Bound::BlobBytes`]);
//! - repositories are opened with gix's allocation limit ([`MAX_OBJECT_ALLOC_BYTES`]), which also bounds what a
//!   fetch inflates while indexing a received pack, and any read that does not go through [`Bounded`];
//! - tree walks are iterative, bounded in depth ([`Bound::TreeDepth`]), entries ([`Bound::TreeEntries`]) and the
//!   manifest bytes read ([`Bound::ReadBytes`]) and path length ([`Bound::PathBytes`]); only the files the caller
//!   asks for (manifests) are read.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use gix::ObjectId;
use gix::objs::Kind;

/// Largest commit object read (headers, signature and message), in bytes.
pub const MAX_COMMIT_BYTES: u64 = 1 << 20;
/// Largest annotated tag object read, in bytes.
pub const MAX_TAG_BYTES: u64 = 1 << 20;
/// Largest tree object read, in bytes (about 200,000 entries).
pub const MAX_TREE_BYTES: u64 = 8 << 20;
/// Largest blob read, in bytes: a manifest file (the same as `intent::MAX_MANIFEST_BYTES`).
pub const MAX_BLOB_BYTES: u64 = 4 << 20;
/// Deepest tree walked below the tree a walk starts at.
pub const MAX_TREE_DEPTH: u64 = 64;
/// Most tree entries visited by one walk (files, folders, everything).
pub const MAX_TREE_ENTRIES: u64 = 20_000;
/// Longest path (from the repository root) of an entry visited by a walk, in bytes.
pub const MAX_PATH_BYTES: u64 = 1024;
/// Most manifest bytes read by one walk (all files together).
pub const MAX_READ_BYTES: u64 = 16 << 20;
/// The allocation limit of every repository opened (gix's `gitoxide.objects.allocLimit`): no single object is
/// inflated beyond it, by any reader, including a fetch indexing the pack it received.
pub const MAX_OBJECT_ALLOC_BYTES: u64 = 32 << 20;

/// A bound on what is read from a repository. Named in errors and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    CommitBytes,
    TagBytes,
    TreeBytes,
    BlobBytes,
    TreeDepth,
    TreeEntries,
    ReadBytes,
    PathBytes,
    ObjectAlloc,
}

impl Bound {
    /// Every bound, for docs and tests.
    pub const ALL: [Bound; 9] = [
        Bound::CommitBytes,
        Bound::TagBytes,
        Bound::TreeBytes,
        Bound::BlobBytes,
        Bound::TreeDepth,
        Bound::TreeEntries,
        Bound::ReadBytes,
        Bound::PathBytes,
        Bound::ObjectAlloc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bound::CommitBytes => "max commit size",
            Bound::TagBytes => "max tag size",
            Bound::TreeBytes => "max tree size",
            Bound::BlobBytes => "max blob size",
            Bound::TreeDepth => "max tree depth",
            Bound::TreeEntries => "max tree entries",
            Bound::ReadBytes => "max bytes read",
            Bound::PathBytes => "max path length",
            Bound::ObjectAlloc => "max object allocation",
        }
    }

    pub fn limit(self) -> u64 {
        match self {
            Bound::CommitBytes => MAX_COMMIT_BYTES,
            Bound::TagBytes => MAX_TAG_BYTES,
            Bound::TreeBytes => MAX_TREE_BYTES,
            Bound::BlobBytes => MAX_BLOB_BYTES,
            Bound::TreeDepth => MAX_TREE_DEPTH,
            Bound::TreeEntries => MAX_TREE_ENTRIES,
            Bound::ReadBytes => MAX_READ_BYTES,
            Bound::PathBytes => MAX_PATH_BYTES,
            Bound::ObjectAlloc => MAX_OBJECT_ALLOC_BYTES,
        }
    }

    fn in_bytes(self) -> bool {
        !matches!(self, Bound::TreeDepth | Bound::TreeEntries)
    }

    /// The size bound of an object of `kind`.
    pub fn for_kind(kind: Kind) -> Bound {
        match kind {
            Kind::Commit => Bound::CommitBytes,
            Kind::Tag => Bound::TagBytes,
            Kind::Tree => Bound::TreeBytes,
            Kind::Blob => Bound::BlobBytes,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.limit())?;
        if self.in_bytes() {
            f.write_str(" bytes")?;
        }
        Ok(())
    }
}

/// A bound was exceeded: `{object}: {what} (bound: {bound})`, e.g. `commit 1a2b3c4: tree depth exceeds 64 under
/// clusters/x/a/a/… (bound: max tree depth 64)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {what} (bound: {bound})")]
pub struct Exceeded {
    /// The object read, with what it was read for (`commit 1a2b3c4: clusters/x/a.yaml: blob 5d6e7f8`).
    pub object: String,
    /// What is over the bound.
    pub what: String,
    pub bound: Bound,
}

impl Exceeded {
    /// The same, with `context` (the commit and path it was read for) put before the object.
    pub fn within(mut self, context: &str) -> Self {
        if !context.is_empty() {
            self.object = format!("{context}: {}", self.object);
        }
        self
    }
}

/// Open a repository for reading with the allocation limit set ([`MAX_OBJECT_ALLOC_BYTES`]).
pub fn open(path: &Path) -> Result<gix::Repository, gix::Error> {
    let options = gix::open::Options::default().config_overrides([format!(
        "gitoxide.objects.allocLimit={MAX_OBJECT_ALLOC_BYTES}"
    )]);
    gix::open_opts(path, options)
}

/// The object database of a repository, bounded: an object's kind and size are read from its header, and an
/// object over its kind's bound is refused before it is inflated. Every read of an object by this crate
/// goes through it.
#[derive(Clone)]
pub struct Bounded<'a> {
    repo: &'a gix::Repository,
    /// The last bound exceeded (shared by clones): a walk's error may not carry it as a typed cause.
    exceeded: Rc<RefCell<Option<Exceeded>>>,
}

impl<'a> Bounded<'a> {
    pub fn new(repo: &'a gix::Repository) -> Self {
        Self {
            repo,
            exceeded: Rc::default(),
        }
    }

    /// The last bound this database (or a clone) refused an object for.
    pub fn last_exceeded(&self) -> Option<Exceeded> {
        self.exceeded.borrow().clone()
    }

    /// The kind and size of `id` from its header, or `None` when it is missing; an error when its size is over
    /// the bound of its kind.
    pub fn check(&self, id: &gix::oid) -> Result<Option<(Kind, u64)>, FindError> {
        let header = match self.repo.try_find_header(id.to_owned()) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => return Err(FindError::Read(e.to_string())),
        };
        let (kind, size) = (header.kind(), header.size());
        let bound = Bound::for_kind(kind);
        if size > bound.limit() {
            let e = Exceeded {
                object: format!("{kind} {}", super::short_id(&id.to_string())),
                what: format!("{size} bytes"),
                bound,
            };
            *self.exceeded.borrow_mut() = Some(e.clone());
            return Err(FindError::Exceeded(e));
        }
        Ok(Some((kind, size)))
    }
}

/// Why [`Bounded`] could not give an object.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FindError {
    #[error(transparent)]
    Exceeded(#[from] Exceeded),
    #[error("{0}")]
    Read(String),
}

impl gix::objs::Find for Bounded<'_> {
    fn try_find<'a>(
        &self,
        id: &gix::oid,
        buffer: &'a mut Vec<u8>,
    ) -> Result<Option<gix::objs::Data<'a>>, gix::Error> {
        if self.check(id).map_err(gix::Error::from_error)?.is_none() {
            return Ok(None);
        }
        self.repo.objects.try_find(id, buffer)
    }
}

/// A short object id for messages.
pub fn short(id: &ObjectId) -> String {
    super::short_id(&id.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_their_values() {
        assert_eq!(
            Bound::TreeDepth.to_string(),
            format!("max tree depth {MAX_TREE_DEPTH}")
        );
        assert_eq!(
            Bound::CommitBytes.to_string(),
            "max commit size 1048576 bytes"
        );
        let e = Exceeded {
            object: "tree 1234567".into(),
            what: "depth exceeds 64 under clusters/x".into(),
            bound: Bound::TreeDepth,
        }
        .within("commit abcdef0");
        assert_eq!(
            e.to_string(),
            "commit abcdef0: tree 1234567: depth exceeds 64 under clusters/x (bound: max tree depth 64)"
        );
        // The blob bound is the manifest bound: a manifest the parser would take is never refused unread.
        assert_eq!(MAX_BLOB_BYTES, crate::intent::MAX_MANIFEST_BYTES as u64);
    }
}

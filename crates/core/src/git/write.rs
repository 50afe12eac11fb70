//! Writing trees and commits in process with gix: hydrate's output commits and the `demo` command's cluster
//! repo. Objects go wherever the repository writes them; with `with_object_memory()` they stay in memory
//! until [`super::notes::write_pack`] writes them as one pack. No ref is moved here.

use gix::ObjectId;

use super::sign::{self, SignError, SigningKey};

/// An author or committer at `time`.
pub fn person(name: &str, email: &str, time: gix::date::Time) -> gix::actor::Signature {
    gix::actor::Signature {
        name: name.into(),
        email: email.into(),
        time,
    }
}

/// Write the tree `base` (the empty tree: `ObjectId::empty_tree`) with the `removed` paths removed and
/// every `(path, contents)` of `files` written as a regular file; returns the new tree's id.
pub fn edit_tree<'a>(
    repo: &gix::Repository,
    base: ObjectId,
    removed: impl IntoIterator<Item = &'a str>,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<ObjectId, String> {
    let mut editor = repo.edit_tree(base).map_err(|e| e.to_string())?;
    for path in removed {
        editor.remove(path).map_err(|e| e.to_string())?;
    }
    for (path, data) in files {
        let blob = repo.write_blob(data).map_err(|e| e.to_string())?.detach();
        editor
            .upsert(path, gix::objs::tree::EntryKind::Blob, blob)
            .map_err(|e| e.to_string())?;
    }
    Ok(editor.write().map_err(|e| e.to_string())?.detach())
}

/// A commit object (not written yet), signed with `key` as `git commit -S` would sign it when a key is given.
pub fn new_commit(
    repo: &gix::Repository,
    tree: ObjectId,
    parents: impl IntoIterator<Item = ObjectId>,
    author: gix::actor::Signature,
    committer: gix::actor::Signature,
    message: String,
    key: Option<&SigningKey>,
) -> Result<gix::objs::Commit, SignError> {
    let mut commit = gix::objs::Commit {
        tree,
        parents: parents.into_iter().collect(),
        author,
        committer,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    if let Some(key) = key {
        sign::sign_commit(&mut commit, repo.object_hash(), key)?;
    }
    Ok(commit)
}

//! Loading manifest files from a directory or from a git revision (read from git objects, no checkout).

use std::path::Path;

use super::{SourceFile, is_manifest_path};
use crate::git::repo::{Repo, RepoError};

/// Errors loading manifest files.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: refused: symbolic link")]
    Symlink { path: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Every `.yaml`/`.yml` file below `root`, recursively, with paths relative to `root`, sorted.
/// Symbolic links are refused (as in a git tree) so that a manifest cannot point outside the tree.
pub fn load_dir(root: &Path) -> Result<Vec<SourceFile>, SourceError> {
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(root).map_err(|source| SourceError::Io {
        path: root.display().to_string(),
        source,
    })?;
    if meta.is_file() {
        let data = std::fs::read(root).map_err(|source| SourceError::Io {
            path: root.display().to_string(),
            source,
        })?;
        out.push(SourceFile {
            path: root.display().to_string(),
            data,
        });
        return Ok(out);
    }
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), SourceError> {
    let io = |path: &Path, source| SourceError::Io {
        path: path.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with('.') || rel.contains("/.") {
            continue; // hidden files and folders (.git, editor files) are not part of the tree
        }
        let ft = entry.file_type().map_err(|e| io(&path, e))?;
        if ft.is_symlink() {
            if is_manifest_path(&rel) || path.is_dir() {
                return Err(SourceError::Symlink { path: rel });
            }
            continue;
        }
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() && is_manifest_path(&rel) {
            let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
            out.push(SourceFile { path: rel, data });
        }
    }
    Ok(())
}

/// The manifest files at or below `prefix` in the tree of `rev`, read from git objects (only manifest files are
/// read, within the bounds of [`crate::git::bounds`]). A `prefix` missing at `rev` is an error.
pub fn load_rev(repo: &Repo, rev: &str, prefix: &str) -> Result<Vec<SourceFile>, SourceError> {
    let commit = repo.resolve_commit(rev)?;
    Ok(repo
        .read_files(commit, prefix, &is_manifest_path)?
        .into_iter()
        .map(|f| SourceFile {
            path: f.path,
            data: f.data,
        })
        .collect())
}

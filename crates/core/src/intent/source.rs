//! Loading manifest files from a directory (a git revision: [`crate::git::repo::load_rev`]).

use std::path::Path;

use super::{SourceFile, is_manifest_path};

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

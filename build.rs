//! Embeds every file under `examples/cluster-repo/` (the `demo` command's cluster repo) into the binary, and the
//! git revision it is built from (`VWO_GIT_REVISION`: `--version` prints it). The templates are embedded by the
//! core crate's build script (crates/core/build.rs).

use std::path::Path;

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Write `OUT_DIR/<out_file>`: a static `(relative path, contents)` list of every file under `dir` (relative
/// to the crate root).
fn embed(dir: &str, out_file: &str, doc: &str) {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join(dir);
    println!("cargo:rerun-if-changed={dir}");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    let mut code = format!("/// {doc}\npub static EMBEDDED: &[(&str, &str)] = &[\n");
    for rel in &files {
        println!("cargo:rerun-if-changed={dir}/{rel}");
        // Relative to the crate being compiled, not to this build: the generated file must not pin one
        // checkout's absolute paths (worktrees sharing a target directory would embed each other's files).
        let path = format!("/{dir}/{rel}");
        code.push_str(&format!(
            "    ({rel:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {path:?}))),\n"
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join(out_file);
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// The revision the binary is built from: `VWO_GIT_REVISION` when set (an image build without `.git`), else
/// `git rev-parse HEAD` (the commit checked out; uncommitted changes are not tracked), else `unknown`.
fn revision() -> String {
    println!("cargo:rerun-if-env-changed=VWO_GIT_REVISION");
    if let Ok(r) = std::env::var("VWO_GIT_REVISION")
        && !r.trim().is_empty()
    {
        return r.trim().to_string();
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&manifest_dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let git_dir = Path::new(&manifest_dir).join(git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("refs").display());
    }
    git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

fn main() {
    println!(
        "cargo:rustc-env=VWO_VERSION_LINE={} (git {})",
        std::env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION"),
        revision()
    );
    embed(
        "examples/cluster-repo",
        "cluster_repo.rs",
        "Every file under examples/cluster-repo/, embedded at build time (the demo's cluster repo).",
    );
}

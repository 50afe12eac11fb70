//! Real git fixtures: a bare remote and a work clone, commits signed with real ssh-keygen keys, git isolated
//! from the developer's configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An SSH signing key made with ssh-keygen, for one committer email.
pub struct Signer {
    pub key: PathBuf,
    pub public: String,
    pub email: String,
}

impl Signer {
    pub fn new(dir: &Path, email: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let key = dir.join(format!("key-{}", email.replace(['@', '.'], "_")));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", email, "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap_or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())).unwrap());
        Self {
            key,
            public: public.trim().to_string(),
            email: email.to_string(),
        }
    }

    /// The allowed_signers line trusting this key for this email, namespace git.
    pub fn allowed_signers_line(&self) -> String {
        let mut parts = self.public.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        format!("{} namespaces=\"git\" {kind} {key}", self.email)
    }
}

/// A trust policy (YAML) trusting these SSH signers.
pub fn policy_yaml(signers: &[&Signer], mode: &str) -> String {
    let lines: Vec<String> = signers
        .iter()
        .map(|s| format!("  {}", s.allowed_signers_line()))
        .collect();
    format!("mode: {mode}\nsshAllowedSigners: |\n{}\n", lines.join("\n"))
}

/// A bare remote and a work clone.
pub struct GitRemote {
    pub bare: PathBuf,
    pub work: PathBuf,
    home: PathBuf,
    url: String,
}

impl GitRemote {
    pub fn new(dir: &Path) -> Self {
        let bare = dir.join("remote.git");
        let work = dir.join("work");
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let url = bare.display().to_string();
        let me = Self {
            bare,
            work,
            home,
            url,
        };
        me.git(dir, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        me.git(dir, &["clone", "-q", "remote.git", "work"]);
        me.git(&me.work, &["checkout", "-q", "-B", "main"]);
        me
    }

    /// A work clone (in `dir/work`) of a remote served at `url`, whose bare repository is `bare` on this machine
    /// (the test bed's git server: pushes go over HTTP, reads of what arrived use the path).
    pub fn clone_of(dir: &Path, url: &str, bare: PathBuf) -> Self {
        let work = dir.join("work");
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let me = Self {
            bare,
            work,
            home,
            url: url.to_string(),
        };
        me.git(dir, &["clone", "-q", url, "work"]);
        me.git(&me.work, &["checkout", "-q", "-B", "main"]);
        me
    }

    /// Run git in `dir`, isolated from any user or system configuration.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run_git(dir, args);
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// As [`git`](Self::git), but `None` when git fails (e.g. a note that does not exist).
    #[allow(dead_code)]
    pub fn try_git(&self, dir: &Path, args: &[&str]) -> Option<String> {
        let out = self.run_git(dir, args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn run_git(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.home)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("git")
    }

    /// The remote's URL (a local path, or the git server's URL for [`clone_of`](Self::clone_of)).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.work.join(rel)).unwrap();
    }

    /// Copy a directory tree into the work clone at `rel`.
    pub fn copy_in(&self, from: &Path, rel: &str) {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        copy(from, &self.work.join(rel));
    }

    /// Commit everything, signed by `signer` (committer = the signer's email) or unsigned by `email`, and push.
    /// Returns the commit id.
    pub fn commit(&self, message: &str, signer: Option<&Signer>, email: &str) -> String {
        self.git(&self.work, &["add", "-A"]);
        let name = format!("user.name={email}");
        let mail = format!("user.email={email}");
        let mut args: Vec<String> = vec!["-c".into(), name, "-c".into(), mail];
        if let Some(s) = signer {
            args.extend([
                "-c".into(),
                "gpg.format=ssh".into(),
                "-c".into(),
                format!("user.signingkey={}", s.key.display()),
                "commit".into(),
                "-q".into(),
                "-S".into(),
            ]);
        } else {
            args.extend(["commit".into(), "-q".into()]);
        }
        args.extend(["--allow-empty".into(), "-m".into(), message.into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.git(&self.work, &refs);
        self.git(&self.work, &["push", "-q", "origin", "main"]);
        self.git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// A fresh Ed25519 key pair made by ssh-keygen at `path` (private) and `path.pub`; returns the public line.
pub fn ed25519_key(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "key@example.com",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub"))
        .expect("the public key")
        .trim()
        .to_string()
}

//! Talking to a remote: fetch with gix (blocking: call it from `spawn_blocking`), push with the git CLI (gix
//! cannot push), and credentials that never reach a log line, an error message or a printed URL.
//!
//! Credentials come from files (a mounted Secret) or from in-memory values. For a network operation they are
//! materialized in a private temporary directory (mode 0700, files 0600) that is removed when the operation
//! ends: https uses a `GIT_ASKPASS` script reading the files, ssh uses `ssh -i <key>` with a pinned
//! `known_hosts` and `StrictHostKeyChecking=yes`. Nothing secret is put on a command line or in an environment
//! variable.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;

use gix::remote::Direction;

use super::repo::{Repo, RepoError};
use crate::secrets::REDACTED;

/// Errors talking to a remote. Messages never contain credentials: URLs are shown with their user info
/// removed and any text from git or gix is scrubbed of the secret values in use.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot read credential file {path}: {message}")]
    CredentialFile { path: PathBuf, message: String },
    #[error("invalid credentials: {0}")]
    Credentials(String),
    #[error("cannot prepare credentials: {0}")]
    CredentialDir(String),
    #[error("cannot open or create the repository cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("fetch from {url} failed: {message}")]
    Fetch { url: String, message: String },
    #[error("cannot run git {action} for {url}: {message}")]
    Spawn {
        action: &'static str,
        url: String,
        message: String,
    },
    #[error("git {action} for {url} failed (exit {code}): {stderr}")]
    Git {
        action: &'static str,
        url: String,
        code: i32,
        stderr: String,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// A secret string: `Debug` and `Display` print `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// How to authenticate to a remote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (local paths, `file://`, public https).
    #[default]
    None,
    /// https basic authentication: a username with a password or an access token.
    Https {
        username: String,
        password: SecretString,
    },
    /// ssh with a private key (OpenSSH or PEM format) and the known host keys to accept.
    Ssh {
        private_key: SecretString,
        /// `known_hosts` lines. Without them the host key cannot be checked and the connection is refused.
        known_hosts: String,
    },
}

/// Files holding credentials, e.g. the keys of a mounted Secret.
#[derive(Debug, Clone, Default)]
pub struct CredentialFiles {
    /// https username (default `git` when only a token is given).
    pub username: Option<PathBuf>,
    /// https password.
    pub password: Option<PathBuf>,
    /// https access token (used as the password).
    pub token: Option<PathBuf>,
    /// ssh private key.
    pub ssh_private_key: Option<PathBuf>,
    /// ssh `known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

/// Largest credential file read (username, password, token, ssh private key), in bytes: a credential is a few
/// KiB at most (an OpenSSH RSA-16384 key is about 12 KiB).
const MAX_CREDENTIAL_BYTES: u64 = 64 << 10;
/// Largest `known_hosts` file read, in bytes: one line per host key, so it may hold many hosts.
const MAX_KNOWN_HOSTS_BYTES: u64 = 1 << 20;

/// Read a credential file of at most `max` bytes (a bigger one is refused, not read whole). Messages name the
/// file and why (for an I/O error only its kind: never content).
fn read_cred_file(path: &Path, max: u64) -> Result<String, RemoteError> {
    use super::bounded::{BoundedReadError, read_to_string};
    read_to_string(path, max).map_err(|e| RemoteError::CredentialFile {
        path: path.to_path_buf(),
        message: match e {
            BoundedReadError::Io { kind, .. } => kind.to_string(),
            other => other.to_string(),
        },
    })
}

impl Credentials {
    /// Read credentials from files. Give either https files (username plus password or token) or ssh files
    /// (private key plus known_hosts), not both; no files means no credentials.
    pub fn from_files(files: &CredentialFiles) -> Result<Self, RemoteError> {
        let https = files.username.is_some() || files.password.is_some() || files.token.is_some();
        let ssh = files.ssh_private_key.is_some() || files.known_hosts.is_some();
        match (https, ssh) {
            (false, false) => Ok(Self::None),
            (true, true) => Err(RemoteError::Credentials(
                "give https credentials or an ssh key, not both".into(),
            )),
            (true, false) => {
                let password = match (&files.password, &files.token) {
                    (Some(_), Some(_)) => {
                        return Err(RemoteError::Credentials(
                            "give a password file or a token file, not both".into(),
                        ));
                    }
                    (Some(p), None) | (None, Some(p)) => read_cred_file(p, MAX_CREDENTIAL_BYTES)?,
                    (None, None) => {
                        return Err(RemoteError::Credentials(
                            "a username needs a password or token file".into(),
                        ));
                    }
                };
                let username = match &files.username {
                    Some(p) => read_cred_file(p, MAX_CREDENTIAL_BYTES)?,
                    None => "git".to_string(),
                };
                Self::https(username.trim(), password.trim_end_matches(['\r', '\n']))
            }
            (false, true) => {
                let (Some(key), Some(kh)) = (&files.ssh_private_key, &files.known_hosts) else {
                    return Err(RemoteError::Credentials(
                        "ssh needs both a private key file and a known_hosts file".into(),
                    ));
                };
                Self::ssh(
                    read_cred_file(key, MAX_CREDENTIAL_BYTES)?,
                    read_cred_file(kh, MAX_KNOWN_HOSTS_BYTES)?,
                )
            }
        }
    }

    /// https credentials from in-memory values.
    pub fn https(
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self, RemoteError> {
        let (username, password) = (username.into(), password.into());
        if username.is_empty() || username.contains(['\n', '\r']) {
            return Err(RemoteError::Credentials(
                "https username is empty or spans several lines".into(),
            ));
        }
        if password.is_empty() || password.contains(['\n', '\r']) {
            return Err(RemoteError::Credentials(
                "https password/token is empty or spans several lines".into(),
            ));
        }
        Ok(Self::Https {
            username,
            password: SecretString(password),
        })
    }

    /// ssh credentials from in-memory values.
    pub fn ssh(
        private_key: impl Into<String>,
        known_hosts: impl Into<String>,
    ) -> Result<Self, RemoteError> {
        let (mut private_key, known_hosts) = (private_key.into(), known_hosts.into());
        if !private_key.contains("PRIVATE KEY-----") {
            return Err(RemoteError::Credentials(
                "the ssh private key is not a PEM or OpenSSH private key".into(),
            ));
        }
        if known_hosts.trim().is_empty() {
            return Err(RemoteError::Credentials(
                "ssh known_hosts is empty: the host key could not be checked".into(),
            ));
        }
        if !private_key.ends_with('\n') {
            private_key.push('\n'); // ssh refuses a key file without a final newline
        }
        Ok(Self::Ssh {
            private_key: SecretString(private_key),
            known_hosts,
        })
    }

    /// Replace every secret value in `text` with `[REDACTED]`, and strip user info from URLs.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = redact_urls_in(text);
        let secrets: Vec<&str> = match self {
            Self::None => vec![],
            Self::Https { password, .. } => vec![password.expose()],
            Self::Ssh { private_key, .. } => private_key
                .expose()
                .lines()
                .filter(|l| l.len() >= 8 && !l.starts_with("-----"))
                .chain(std::iter::once(private_key.expose().trim()))
                .collect(),
        };
        for s in secrets {
            if !s.is_empty() {
                out = out.replace(s, REDACTED);
            }
        }
        out
    }
}

/// A URL with any user info (`user:password@`) removed, for messages. scp-like ssh addresses
/// (`git@host:path`) keep their user name, which is not secret.
pub fn display_url(url: &str) -> String {
    redact_urls_in(url)
}

fn redact_urls_in(text: &str) -> String {
    use std::sync::LazyLock;
    static USERINFO: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@").expect("static regex")
    });
    USERINFO.replace_all(text, "${1}").into_owned()
}

/// Credentials written to a private temporary directory for the duration of one operation.
struct CredentialDir {
    dir: Option<tempfile::TempDir>,
    ssh_command: Option<String>,
    askpass: Option<PathBuf>,
}

impl CredentialDir {
    fn new(creds: &Credentials) -> Result<Self, RemoteError> {
        let mut out = Self {
            dir: None,
            ssh_command: None,
            askpass: None,
        };
        if *creds == Credentials::None {
            return Ok(out);
        }
        let io = |e: std::io::Error| RemoteError::CredentialDir(e.kind().to_string());
        let dir = tempfile::Builder::new()
            .prefix("vwo-cred-")
            .tempdir()
            .map_err(io)?;
        set_mode(dir.path(), 0o700).map_err(io)?;
        match creds {
            Credentials::None => {}
            Credentials::Https { username, password } => {
                write_private(&dir.path().join("username"), username.as_bytes()).map_err(io)?;
                write_private(&dir.path().join("password"), password.expose().as_bytes())
                    .map_err(io)?;
                let script = dir.path().join("askpass.sh");
                let d = shell_quote(&dir.path().to_string_lossy());
                write_private(
                    &script,
                    format!(
                        "#!/bin/sh\ncase \"$1\" in\n  Username*) cat {d}/username ;;\n  *) cat {d}/password ;;\nesac\n"
                    )
                    .as_bytes(),
                )
                .map_err(io)?;
                set_mode(&script, 0o700).map_err(io)?;
                out.askpass = Some(script);
            }
            Credentials::Ssh {
                private_key,
                known_hosts,
            } => {
                let key = dir.path().join("id");
                let kh = dir.path().join("known_hosts");
                write_private(&key, private_key.expose().as_bytes()).map_err(io)?;
                write_private(&kh, known_hosts.as_bytes()).map_err(io)?;
                out.ssh_command = Some(format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
                    shell_quote(&key.to_string_lossy()),
                    shell_quote(&kh.to_string_lossy())
                ));
            }
        }
        out.dir = Some(dir);
        Ok(out)
    }

    /// Environment for a git CLI child: no prompts, credentials only from this directory.
    fn apply(&self, cmd: &mut Command) {
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        cmd.env_remove("GIT_ASKPASS");
        cmd.env_remove("SSH_ASKPASS");
        if let Some(askpass) = &self.askpass {
            cmd.env("GIT_ASKPASS", askpass);
        }
        if let Some(ssh) = &self.ssh_command {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Open the bare repository cache at `dir`, creating it (bare, empty) if it does not exist yet.
pub fn open_or_init_cache(dir: &Path) -> Result<Repo, RemoteError> {
    let err = |e: &dyn fmt::Display| RemoteError::Cache {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    if !dir.join("HEAD").exists() && !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        gix::init_bare(dir).map_err(|e| err(&e))?;
    }
    Ok(Repo::open(dir)?)
}

/// What a fetch changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// Whether a pack was received.
    pub received_pack: bool,
    /// Local references updated, with their new targets.
    pub updated: Vec<(String, gix::ObjectId)>,
    /// The remote references the refspecs matched, with what they pointed at on the remote. A ref the
    /// remote does not have is absent.
    pub remote_refs: Vec<(String, gix::ObjectId)>,
}

/// Fetch `refspecs` (e.g. `+refs/heads/*:refs/heads/*`) from `url` into the repository at `repo_path` with
/// gix. Blocking: run it in `spawn_blocking`. No tags are fetched beyond what the refspecs name.
/// `url` may be a local path, `file://`, `https://` or `ssh://` / `user@host:path`.
pub fn fetch(
    repo_path: &Path,
    url: &str,
    refspecs: &[&str],
    creds: &Credentials,
) -> Result<FetchOutcome, RemoteError> {
    let shown = display_url(url);
    let fail = |message: String| RemoteError::Fetch {
        url: shown.clone(),
        message: creds.scrub(&message),
    };
    let creddir = CredentialDir::new(creds)?;
    // The allocation limit bounds what indexing the received pack inflates (crate::git::bounds).
    let mut repo = super::bounds::open(repo_path).map_err(|e| RemoteError::Cache {
        path: repo_path.to_path_buf(),
        message: e.to_string(),
    })?;
    {
        let mut config = repo.config_snapshot_mut();
        // Never prompt, never ask a credential helper or an agent: only what we were given is used.
        config
            .set_value(&gix::config::tree::Credential::HELPER, "")
            .map_err(|e| fail(e.to_string()))?;
        if let Some(ssh) = &creddir.ssh_command {
            config
                .set_value(&gix::config::tree::Core::SSH_COMMAND, ssh.as_str())
                .map_err(|e| fail(e.to_string()))?;
        }
        config.commit().map_err(|e| fail(e.to_string()))?;
    }
    let remote = repo
        .remote_at(url)
        .map_err(|e| fail(e.to_string()))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(refspecs.iter().copied(), Direction::Fetch)
        .map_err(|e| fail(e.to_string()))?;
    let conn = remote
        .connect(Direction::Fetch)
        .map_err(|e| fail(e.to_string()))?;
    let https = match creds {
        Credentials::Https { username, password } => {
            Some((username.clone(), password.expose().to_string()))
        }
        _ => None,
    };
    let conn = conn.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => match &https {
            Some((username, password)) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: username.clone(),
                    password: password.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            })),
            None => Ok(None),
        },
        _ => Ok(None),
    });
    let prepare = conn
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail(format!("{e:#}")))?;
    if prepare.ref_map().mappings.is_empty() {
        // The remote has none of the refs asked for (e.g. no notes written yet): nothing to fetch.
        return Ok(FetchOutcome {
            received_pack: false,
            updated: Vec::new(),
            remote_refs: Vec::new(),
        });
    }
    let outcome = prepare
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| fail(format!("{e:#}")))?;
    drop(creddir);
    let (received_pack, update_refs) = match &outcome.status {
        gix::remote::fetch::Status::NoPackReceived { update_refs, .. } => (false, update_refs),
        gix::remote::fetch::Status::Change { update_refs, .. } => (true, update_refs),
    };
    let mut updated = Vec::new();
    for edit in &update_refs.edits {
        if let gix::refs::transaction::Change::Update {
            new: gix::refs::Target::Object(id),
            ..
        } = &edit.change
        {
            updated.push((edit.name.to_string(), *id));
        }
    }
    let remote_refs = outcome
        .ref_map
        .mappings
        .iter()
        .filter_map(|m| {
            Some((
                m.remote.as_name()?.to_string(),
                m.remote.as_id()?.to_owned(),
            ))
        })
        .collect();
    Ok(FetchOutcome {
        received_pack,
        updated,
        remote_refs,
    })
}

/// A git CLI invocation with credentials, run in `repo_path` (`git -C`), with git's own configuration
/// isolated from credential helpers.
pub struct GitCli<'a> {
    repo_path: &'a Path,
    creds: &'a Credentials,
}

impl<'a> GitCli<'a> {
    pub fn new(repo_path: &'a Path, creds: &'a Credentials) -> Self {
        Self { repo_path, creds }
    }

    /// Run `git <args>` against `url` (used only for messages). Output is returned whatever the exit code;
    /// stderr is scrubbed before it reaches an error.
    pub fn run(
        &self,
        action: &'static str,
        url: &str,
        args: &[&str],
    ) -> Result<Output, RemoteError> {
        let creddir = CredentialDir::new(self.creds)?;
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.repo_path)
            .args(["-c", "credential.helper=", "-c", "core.askPass="])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        creddir.apply(&mut cmd);
        let output = cmd.output().map_err(|e| RemoteError::Spawn {
            action,
            url: display_url(url),
            message: e.to_string(),
        })?;
        drop(creddir);
        Ok(output)
    }

    /// The error for a failed invocation.
    pub fn failure(&self, action: &'static str, url: &str, output: &Output) -> RemoteError {
        RemoteError::Git {
            action,
            url: display_url(url),
            code: output.status.code().unwrap_or(-1),
            stderr: self
                .creds
                .scrub(String::from_utf8_lossy(&output.stderr).trim()),
        }
    }
}

/// How a compare-and-swap push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote ref now points at the pushed commit.
    Accepted,
    /// The remote refused the update (someone else moved the ref, or a hook declined it). Fetch and retry.
    Rejected { reason: String },
}

/// Push `new` to `remote_ref` at `url` with the git CLI, only if the remote ref is still `expected` (`None`:
/// it must not exist yet). Never forces.
pub fn push_cas(
    repo_path: &Path,
    url: &str,
    new: gix::ObjectId,
    remote_ref: &str,
    expected: Option<gix::ObjectId>,
    creds: &Credentials,
) -> Result<PushOutcome, RemoteError> {
    let lease = format!(
        "--force-with-lease={remote_ref}:{}",
        expected.map(|id| id.to_string()).unwrap_or_default()
    );
    let refspec = format!("{new}:{remote_ref}");
    let cli = GitCli::new(repo_path, creds);
    // --force-with-lease with an explicit expected value is a compare-and-swap; as long as `new` descends
    // from `expected` (it always does here) the update is also a fast-forward, so nothing is ever overwritten.
    let output = cli.run(
        "push",
        url,
        &[
            "-c",
            "pack.window=0",
            "push",
            "--porcelain",
            "--no-verify",
            &lease,
            url,
            &refspec,
        ],
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return Ok(PushOutcome::Accepted);
    }
    // Porcelain: one line per ref, `<flag>\t<from>:<to>\t<summary>`; `!` means rejected.
    let rejected = stdout
        .lines()
        .find(|l| l.starts_with('!') && l.contains(remote_ref));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hook_declined = stderr.contains("pre-receive hook declined")
        || stderr.contains("hook declined")
        || stderr.contains("remote rejected");
    match rejected {
        Some(line) => Ok(PushOutcome::Rejected {
            reason: creds.scrub(line.split('\t').nth(2).unwrap_or(line).trim()),
        }),
        None if hook_declined => Ok(PushOutcome::Rejected {
            reason: "remote rejected the update".into(),
        }),
        None => Err(cli.failure("push", url, &output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(
            display_url("https://user:s3cr3t@git.example/repo.git"),
            "https://git.example/repo.git"
        );
        assert_eq!(
            display_url("https://ghp_token@git.example/x"),
            "https://git.example/x"
        );
        assert_eq!(display_url("ssh://git@host:22/repo"), "ssh://host:22/repo");
        assert_eq!(display_url("git@host:org/repo"), "git@host:org/repo");
        assert_eq!(display_url("/srv/git/repo"), "/srv/git/repo");
        assert_eq!(
            redact_urls_in("fatal: unable to access 'https://a:b@h/r/': 403"),
            "fatal: unable to access 'https://h/r/': 403"
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::https("bot", "hunter2-token").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.scrub("auth failed for hunter2-token"),
            "auth failed for [REDACTED]"
        );
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAABBBBCCCCDDDD\n-----END OPENSSH PRIVATE KEY-----";
        let c = Credentials::ssh(key, "host ssh-ed25519 AAAA").unwrap();
        assert!(!format!("{c:?}").contains("AAAABBBB"));
        assert_eq!(c.scrub("x AAAABBBBCCCCDDDD y"), "x [REDACTED] y");
    }

    #[test]
    fn credentials_are_validated() {
        assert!(Credentials::https("", "p").is_err());
        assert!(Credentials::https("u", "a\nb").is_err());
        assert!(Credentials::ssh("not a key", "h k").is_err());
        assert!(Credentials::ssh("-----BEGIN OPENSSH PRIVATE KEY-----\n", " ").is_err());
    }

    #[test]
    fn credentials_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str, v: &str| {
            let path = dir.path().join(n);
            std::fs::write(&path, v).unwrap();
            Some(path)
        };
        let files = CredentialFiles {
            token: p("token", "tok123\n"),
            ..Default::default()
        };
        assert_eq!(
            Credentials::from_files(&files).unwrap(),
            Credentials::https("git", "tok123").unwrap()
        );
        let files = CredentialFiles {
            username: p("u", "bot\n"),
            password: p("pw", "pw\n"),
            ssh_private_key: p("k", "x"),
            ..Default::default()
        };
        assert!(Credentials::from_files(&files).is_err());
        let files = CredentialFiles {
            ssh_private_key: p(
                "k2",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            ),
            known_hosts: None,
            ..Default::default()
        };
        assert!(Credentials::from_files(&files).is_err());
        let missing = CredentialFiles {
            token: Some(dir.path().join("nope")),
            ..Default::default()
        };
        let e = Credentials::from_files(&missing).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        assert_eq!(
            Credentials::from_files(&CredentialFiles::default()).unwrap(),
            Credentials::None
        );
    }

    /// Credential files are read up to a bound: a bigger file (a wrong path, a device, a log) is refused with
    /// the file and the limit named, not read whole. known_hosts may be bigger than a key.
    #[test]
    fn credential_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t".repeat(MAX_CREDENTIAL_BYTES as usize + 1)).unwrap();
        let files = CredentialFiles {
            token: Some(token.clone()),
            ..Default::default()
        };
        let e = Credentials::from_files(&files).unwrap_err().to_string();
        assert!(
            e.contains(&token.display().to_string()) && e.contains("65536-byte limit"),
            "{e}"
        );
        std::fs::write(&token, "t".repeat(MAX_CREDENTIAL_BYTES as usize)).unwrap();
        assert!(Credentials::from_files(&files).is_ok());

        let key = dir.path().join("key");
        std::fs::write(
            &key,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let known_hosts = dir.path().join("known_hosts");
        let line = "host.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB\n";
        let many = line.repeat(MAX_CREDENTIAL_BYTES as usize / line.len() + 1);
        std::fs::write(&known_hosts, &many).unwrap();
        let files = CredentialFiles {
            ssh_private_key: Some(key),
            known_hosts: Some(known_hosts.clone()),
            ..Default::default()
        };
        assert!(Credentials::from_files(&files).is_ok());
        let too_many = line.repeat(MAX_KNOWN_HOSTS_BYTES as usize / line.len() + 1);
        std::fs::write(&known_hosts, too_many).unwrap();
        let e = Credentials::from_files(&files).unwrap_err().to_string();
        assert!(
            e.contains("known_hosts") && e.contains("1048576-byte limit"),
            "{e}"
        );
    }

    #[test]
    fn askpass_script_answers_username_and_password() {
        let c = Credentials::https("bot", "pa ss'word").unwrap();
        let d = CredentialDir::new(&c).unwrap();
        let script = d.askpass.clone().unwrap();
        let ask = |prompt: &str| {
            let out = Command::new(&script).arg(prompt).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(ask("Username for 'https://h': "), "bot");
        assert_eq!(ask("Password for 'https://bot@h': "), "pa ss'word");
        let dir = d.dir.as_ref().unwrap().path().to_path_buf();
        drop(d);
        assert!(!dir.exists(), "credential dir removed after use");
    }
}

//! Commit signature verification against real git, real `ssh-keygen` and real `gpg`.
//!
//! One fixture repository is built with the git CLI (commits signed by `git commit-tree -S`, objects
//! tampered with and written by `git hash-object --literally`, a few signatures made directly with
//! `ssh-keygen -Y sign`, `gpg --detach-sign` or, where gpg refuses to produce the bad input, rPGP), then:
//! - `tamper_corpus`: every named case gets the verdict it should; no tampered case is accepted and every
//!   valid control is;
//! - `differential_against_git`: for each checked commit, our verdict agrees with `git verify-commit`
//!   configured with the same allowed signers / keyring, except in the listed cases where our rule is
//!   documented as stricter (docs/trust-policy.md);
//! - `cli`: the `verify` command's output and exit codes.
//!
//! git is isolated from the machine's configuration (GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1,
//! HOME and GNUPGHOME in the fixture directory).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use vworkspace_operator::git::policy::{Mode, TrustPolicy};
use vworkspace_operator::git::repo::Repo;
use vworkspace_operator::git::sigcheck::Reason;
use vworkspace_operator::git::verify::Verifier;

/// Committer/author time of ordinary fixture commits: 2025-06-01T12:00:00Z.
const DATE: &str = "1748779200 +0000";

// ---------------------------------------------------------------------------------------------------
// Process helpers

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap().trim_end().to_string()
}

// ---------------------------------------------------------------------------------------------------
// The fixture

/// How a fixture commit is signed by `git commit-tree`.
#[derive(Clone, Copy)]
enum Sign<'a> {
    No,
    /// With this SSH key (by name).
    Ssh(&'a str),
    /// With this gpg key spec (fingerprint; `FPR!` for a given subkey).
    Gpg(&'a str),
    /// With this gpg key spec, gpg's clock set to the given time (`20230601T000000!`).
    GpgAt(&'a str, &'a str),
}

/// Who makes a fixture commit.
#[derive(Clone, Copy)]
struct Who<'a> {
    name: &'a str,
    email: &'a str,
    date: &'a str,
}

fn who(email: &str) -> Who<'_> {
    Who {
        name: "Fixture Person",
        email,
        date: DATE,
    }
}

struct GpgKey {
    fpr: String,
    subkeys: Vec<String>,
}

#[derive(Debug, Clone)]
enum Expect {
    Accept,
    Reject(Reason),
    PolicyError(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    policy: String,
    base: Option<String>,
    target: String,
    path: Option<&'static str>,
    mode: Mode,
    expect: Expect,
}

struct Fx {
    root: PathBuf,
    repo: PathBuf,
    gnupg: PathBuf,
    gpg_wrapper: PathBuf,
    ssh: BTreeMap<&'static str, (PathBuf, String)>,
    gpg: BTreeMap<&'static str, GpgKey>,
    /// Policy name → YAML.
    policies: BTreeMap<String, String>,
    cases: Vec<Case>,
}

impl Fx {
    fn env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("GNUPGHOME", &self.gnupg)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("TZ", "UTC")
            .env("LC_ALL", "C");
    }

    fn git_cmd(&self) -> Command {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd.current_dir(&self.repo);
        cmd
    }

    fn git(&self, args: &[&str]) -> String {
        text(ok(self.git_cmd().args(args), None))
    }

    fn gpg(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let mut cmd = Command::new("gpg");
        self.env(&mut cmd);
        cmd.args(["--batch", "--yes", "--no-tty", "--quiet"])
            .args(args);
        ok(&mut cmd, stdin)
    }

    /// A tree holding `files` (path, content).
    fn tree(&self, files: &[(&str, &str)]) -> String {
        let index = self.root.join(format!("index-{}", fastrand::u64(..)));
        for (path, content) in files {
            let blob = text(ok(
                self.git_cmd().args(["hash-object", "-w", "--stdin"]),
                Some(content.as_bytes()),
            ));
            ok(
                self.git_cmd()
                    .env("GIT_INDEX_FILE", &index)
                    .args(["update-index", "--add", "--cacheinfo"])
                    .arg(format!("100644,{blob},{path}")),
                None,
            );
        }
        let tree = text(ok(
            self.git_cmd()
                .env("GIT_INDEX_FILE", &index)
                .arg("write-tree"),
            None,
        ));
        let _ = std::fs::remove_file(index);
        tree
    }

    /// A commit made by `git commit-tree`, signed as `sign`.
    fn commit(
        &self,
        tree: &str,
        parents: &[&str],
        msg: &str,
        by: Who<'_>,
        sign: Sign<'_>,
    ) -> String {
        self.commit_with(tree, parents, msg, by, by, sign, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_with(
        &self,
        tree: &str,
        parents: &[&str],
        msg: &str,
        author: Who<'_>,
        committer: Who<'_>,
        sign: Sign<'_>,
        config: &[&str],
    ) -> String {
        let mut cmd = self.git_cmd();
        cmd.env("GIT_AUTHOR_NAME", author.name)
            .env("GIT_AUTHOR_EMAIL", author.email)
            .env("GIT_AUTHOR_DATE", author.date)
            .env("GIT_COMMITTER_NAME", committer.name)
            .env("GIT_COMMITTER_EMAIL", committer.email)
            .env("GIT_COMMITTER_DATE", committer.date);
        for c in config {
            cmd.args(["-c", c]);
        }
        match sign {
            Sign::No => {}
            Sign::Ssh(key) => {
                cmd.args(["-c", "gpg.format=ssh", "-c"])
                    .arg(format!("user.signingkey={}", self.ssh[key].0.display()));
            }
            Sign::Gpg(spec) => {
                cmd.args(["-c", "gpg.format=openpgp", "-c"])
                    .arg(format!("user.signingkey={spec}"));
            }
            Sign::GpgAt(spec, time) => {
                cmd.args(["-c", "gpg.format=openpgp", "-c"])
                    .arg(format!("user.signingkey={spec}"))
                    .args(["-c"])
                    .arg(format!("gpg.program={}", self.gpg_wrapper.display()))
                    .env("FAKED_TIME", time);
            }
        }
        cmd.arg("commit-tree");
        if !matches!(sign, Sign::No) {
            cmd.arg("-S");
        }
        for p in parents {
            cmd.args(["-p", p]);
        }
        cmd.args(["-m", msg, tree]);
        text(ok(&mut cmd, None))
    }

    fn raw(&self, rev: &str) -> Vec<u8> {
        ok(self.git_cmd().args(["cat-file", "commit", rev]), None)
    }

    /// Write a commit object as given, without any checks.
    fn write_raw(&self, data: &[u8]) -> String {
        text(ok(
            self.git_cmd().args([
                "hash-object",
                "-w",
                "-t",
                "commit",
                "--literally",
                "--stdin",
            ]),
            Some(data),
        ))
    }

    /// An SSHSIG over `data` by key `key` for `namespace`.
    fn ssh_sign(&self, key: &str, namespace: &str, data: &[u8], extra: &[&str]) -> String {
        let mut cmd = Command::new("ssh-keygen");
        self.env(&mut cmd);
        cmd.args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(&self.ssh[key].0)
            .args(extra);
        text(ok(&mut cmd, Some(data)))
    }

    /// A detached armored gpg signature over `data`.
    fn gpg_sign(&self, args: &[&str], data: &[u8]) -> String {
        let mut all = vec!["--armor", "--detach-sign"];
        all.extend_from_slice(args);
        text(self.gpg(&all, Some(data)))
    }

    fn gpg_export(&self, fpr: &str) -> String {
        text(self.gpg(&["--armor", "--export", fpr], None))
    }

    fn gpg_export_secret(&self, fpr: &str) -> String {
        text(self.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--armor",
                "--export-secret-keys",
                fpr,
            ],
            None,
        ))
    }

    fn gpg_new_key(
        &self,
        uid: &str,
        algo: &str,
        usage: &str,
        expire: &str,
        at: Option<&str>,
    ) -> String {
        let mut args = vec!["--passphrase", ""];
        if let Some(t) = at {
            args.extend_from_slice(&["--faked-system-time", t]);
        }
        args.extend_from_slice(&["--quick-gen-key", uid, algo, usage, expire]);
        self.gpg(&args, None);
        self.gpg_fprs(uid).remove(0)
    }

    /// The fingerprints of a key: primary first, then subkeys in order.
    fn gpg_fprs(&self, spec: &str) -> Vec<String> {
        let out = text(self.gpg(&["--with-colons", "--list-keys", spec], None));
        out.lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_string())
            .collect()
    }
}

/// Insert `sig` as a `gpgsig` header at the end of the header block of `payload`, as git does.
fn with_sig(payload: &[u8], sig: &str) -> Vec<u8> {
    with_header(payload, "gpgsig", sig)
}

/// Insert a (possibly multi-line) header at the end of the header block.
fn with_header(payload: &[u8], name: &str, value: &str) -> Vec<u8> {
    let end = payload
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("commit has a message")
        + 1;
    let mut header = format!("{name} ");
    for (i, line) in value.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            header.push_str("\n ");
        }
        header.push_str(line);
    }
    header.push('\n');
    let mut out = payload[..end].to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&payload[end..]);
    out
}

/// Split a raw commit into (payload without the gpgsig header, the signature text), git's way.
fn split_sig(raw: &[u8]) -> (Vec<u8>, String) {
    let s = std::str::from_utf8(raw).unwrap();
    let (headers, body) = s.split_once("\n\n").unwrap();
    let mut payload = String::new();
    let mut sig = String::new();
    let mut in_sig = false;
    for line in headers.split('\n') {
        if let Some(rest) = line.strip_prefix("gpgsig ") {
            in_sig = true;
            sig.push_str(rest);
            sig.push('\n');
        } else if in_sig && line.starts_with(' ') {
            sig.push_str(&line[1..]);
            sig.push('\n');
        } else {
            in_sig = false;
            payload.push_str(line);
            payload.push('\n');
        }
    }
    payload.push('\n');
    payload.push_str(body);
    (payload.into_bytes(), sig)
}

/// Replace the first occurrence of `from` in `data`.
fn replace_once(data: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = std::str::from_utf8(data).unwrap();
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1).into_bytes()
}

fn payload(tree: &str, parents: &[&str], headers: &str, msg: &str) -> Vec<u8> {
    let mut s = format!("tree {tree}\n");
    for p in parents {
        s.push_str(&format!("parent {p}\n"));
    }
    s.push_str(headers);
    s.push('\n');
    s.push_str(msg);
    s.into_bytes()
}

fn person(email: &str) -> String {
    format!("Fixture Person <{email}> {DATE}")
}

/// Sign `data` with rPGP using a key exported from gpg: `component` 0 is the primary key, n the n-th
/// subkey. `created` overrides the signature creation time; `expires_in` adds a signature expiry.
fn rpgp_sign(
    secret_armored: &str,
    component: usize,
    data: &[u8],
    created: Option<u32>,
    expires_in: Option<u32>,
) -> String {
    use pgp::composed::{Deserializable, DetachedSignature, SignedSecretKey, SubpacketConfig};
    use pgp::crypto::hash::HashAlgorithm;
    use pgp::packet::{Subpacket, SubpacketData};
    use pgp::types::{Duration, KeyDetails, Password, SigningKey, Timestamp};

    let (key, _) = SignedSecretKey::from_string(secret_armored).unwrap();
    let signer: Box<&dyn SigningKey> = if component == 0 {
        Box::new(&key.primary_key)
    } else {
        Box::new(&key.secret_subkeys[component - 1].key)
    };
    let (fpr, key_id) = if component == 0 {
        (
            key.primary_key.fingerprint(),
            key.primary_key.legacy_key_id(),
        )
    } else {
        let k = &key.secret_subkeys[component - 1].key;
        (k.fingerprint(), k.legacy_key_id())
    };
    let time = created
        .map(Timestamp::from_secs)
        .unwrap_or_else(Timestamp::now);
    let mut hashed = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(time)).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(fpr)).unwrap(),
    ];
    if let Some(secs) = expires_in {
        hashed.push(
            Subpacket::regular(SubpacketData::SignatureExpirationTime(Duration::from_secs(
                secs,
            )))
            .unwrap(),
        );
    }
    let unhashed = vec![Subpacket::regular(SubpacketData::IssuerKeyId(key_id)).unwrap()];
    let sig = DetachedSignature::sign_binary_data_with_subpackets(
        rand::thread_rng(),
        &signer,
        &Password::empty(),
        HashAlgorithm::Sha256,
        data,
        SubpacketConfig::UserDefined { hashed, unhashed },
    )
    .unwrap();
    sig.to_armored_string(Default::default()).unwrap()
}

/// Remove the subkey with fingerprint `drop` from an armored public key (rPGP; gpg 2.2's export filters
/// cannot select a single signing subkey).
fn without_subkey(armored: &str, drop: &str) -> String {
    use pgp::composed::{Deserializable, SignedPublicKey};
    use pgp::types::KeyDetails;
    let (mut key, _) = SignedPublicKey::from_string(armored).unwrap();
    let before = key.public_subkeys.len();
    key.public_subkeys
        .retain(|s| hex::encode_upper(s.key.fingerprint().as_bytes()) != drop);
    assert_eq!(key.public_subkeys.len(), before - 1);
    key.to_armored_string(Default::default()).unwrap()
}

fn yaml_block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// One `openpgpKeys` list item holding `key`.
fn yaml_list_item(key: &str) -> String {
    format!("  - |\n{}", yaml_block(key, 4))
}

fn policy_yaml(ssh_lines: &[String], pgp_keys: &[&String], extra: &str) -> String {
    let mut y = String::from(extra);
    if !ssh_lines.is_empty() {
        y.push_str("sshAllowedSigners: |\n");
        y.push_str(&yaml_block(&ssh_lines.join("\n"), 2));
    }
    if !pgp_keys.is_empty() {
        y.push_str("openpgpKeys:\n");
        for k in pgp_keys {
            y.push_str("  - |\n");
            y.push_str(&yaml_block(k, 4));
        }
    }
    y
}

fn fixture() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(build)
}

fn build() -> Fx {
    // A short path: gpg-agent's socket lives in GNUPGHOME, and unix socket paths are limited to 108 bytes
    // (a deep CARGO_TARGET_DIR would break it).
    let root = std::env::temp_dir().join(format!("vwo-verify-{}", std::process::id()));
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap();
    }
    let repo = root.join("repo");
    let gnupg = root.join("gnupg");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&gnupg).unwrap();
    set_mode(&gnupg, 0o700);
    let gpg_wrapper = root.join("gpg-faked-time");
    std::fs::write(
        &gpg_wrapper,
        "#!/bin/sh\nexec gpg --faked-system-time \"$FAKED_TIME\" --ignore-time-conflict \"$@\"\n",
    )
    .unwrap();
    set_mode(&gpg_wrapper, 0o755);

    let mut fx = Fx {
        root: root.clone(),
        repo,
        gnupg,
        gpg_wrapper,
        ssh: BTreeMap::new(),
        gpg: BTreeMap::new(),
        policies: BTreeMap::new(),
        cases: Vec::new(),
    };
    fx.git(&["init", "-q", "-b", "main"]);

    // --- SSH keys -------------------------------------------------------------------------------
    let ssh_keys: &[(&str, &[&str])] = &[
        ("alice", &["-t", "ed25519"]),
        ("bob", &["-t", "ed25519"]),
        ("carol", &["-t", "ecdsa", "-b", "256"]),
        ("dave", &["-t", "ecdsa", "-b", "384"]),
        ("erin", &["-t", "rsa", "-b", "3072"]),
        ("frank", &["-t", "ed25519"]),
        ("glob", &["-t", "ed25519"]),
        ("gina", &["-t", "ed25519"]),
        ("hank", &["-t", "ed25519"]),
        ("ivan", &["-t", "ed25519"]),
        ("judy", &["-t", "ed25519"]),
        ("ken", &["-t", "ed25519"]),
        ("leo", &["-t", "ed25519"]),
        ("mia", &["-t", "ed25519"]),
        ("nina", &["-t", "ed25519"]),
        ("oscar", &["-t", "ed25519"]),
        ("mallory", &["-t", "ed25519"]),
    ];
    for (name, args) in ssh_keys {
        let path = root.join(format!("ssh-{name}"));
        let mut cmd = Command::new("ssh-keygen");
        fx.env(&mut cmd);
        cmd.args(["-q", "-N", "", "-C", name])
            .args(*args)
            .arg("-f")
            .arg(&path);
        ok(&mut cmd, None);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        fx.ssh.insert(name, (path, public));
    }
    let ssh_pub: BTreeMap<&str, String> = fx.ssh.iter().map(|(k, v)| (*k, v.1.clone())).collect();
    let pk = |n: &str| ssh_pub[n].clone();
    let line = |principals: &str, opts: &str, n: &str| {
        if opts.is_empty() {
            format!("{principals} {}", pk(n))
        } else {
            format!("{principals} {opts} {}", pk(n))
        }
    };
    let ssh_lines: Vec<String> = vec![
        line("alice@example.com", "", "alice"),
        line("bob@example.com", "", "bob"),
        line("carol@example.com", "", "carol"),
        line("dave@example.com", "", "dave"),
        line("erin@example.com", "", "erin"),
        line("bob@x.example,frank@example.com", "", "frank"),
        line("*@glob.example.com", "", "glob"),
        line("gina@example.com", "namespaces=\"git\"", "gina"),
        line("hank@example.com", "namespaces=\"file,git\"", "hank"),
        line("ivan@example.com", "namespaces=\"file\"", "ivan"),
        line(
            "judy@example.com",
            "valid-after=\"20250101\",valid-before=\"20260101\"",
            "judy",
        ),
        line("ken@example.com", "valid-before=\"20250101\"", "ken"),
        line("leo@example.com", "valid-after=\"20260101\"", "leo"),
        line("*@example.com,!mia@example.com", "", "mia"),
        line("nina@example.com", "valid-before=\"20240101\"", "nina"),
        line(
            "oscar@example.com",
            "valid-before=\"202506010600Z\"",
            "oscar",
        ),
    ];
    let without_alice: Vec<String> = ssh_lines[1..].to_vec();

    // --- OpenPGP keys ---------------------------------------------------------------------------
    let pa = fx.gpg_new_key(
        "Pat Alice <pa@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    fx.gpg(
        &["--quick-add-uid", &pa, "Pat Work <Pat@Work.Example>"],
        None,
    );
    let prsa = fx.gpg_new_key(
        "Rsa Person <prsa@example.com>",
        "rsa2048",
        "sign",
        "never",
        None,
    );
    // Certify-only primary with three signing subkeys.
    let psub = fx.gpg_new_key(
        "Sub Person <psub@example.com>",
        "ed25519",
        "cert",
        "never",
        None,
    );
    for _ in 0..3 {
        fx.gpg(
            &[
                "--passphrase",
                "",
                "--quick-add-key",
                &psub,
                "ed25519",
                "sign",
                "never",
            ],
            None,
        );
    }
    let pexp = fx.gpg_new_key(
        "Exp Person <pexp@example.com>",
        "ed25519",
        "sign",
        "1y",
        Some("20230101T000000!"),
    );
    let prev = fx.gpg_new_key(
        "Rev Person <prev@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    let puid = fx.gpg_new_key(
        "Uid Person <puid@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    fx.gpg(
        &["--quick-add-uid", &puid, "Old Person <old@example.com>"],
        None,
    );
    let pfut = fx.gpg_new_key(
        "Late Person <pfut@example.com>",
        "ed25519",
        "sign",
        "never",
        Some("20250101T000000!"),
    );
    let psubexp = fx.gpg_new_key(
        "Subexp Person <psubexp@example.com>",
        "ed25519",
        "cert",
        "never",
        Some("20230101T000000!"),
    );
    fx.gpg(
        &[
            "--passphrase",
            "",
            "--faked-system-time",
            "20230101T000000!",
            "--quick-add-key",
            &psubexp,
            "ed25519",
            "sign",
            "1y",
        ],
        None,
    );
    let pstr = fx.gpg_new_key(
        "Stranger <pstr@example.com>",
        "ed25519",
        "sign",
        "never",
        None,
    );
    for (name, fpr) in [
        ("pa", &pa),
        ("prsa", &prsa),
        ("psub", &psub),
        ("pexp", &pexp),
        ("prev", &prev),
        ("puid", &puid),
        ("pfut", &pfut),
        ("psubexp", &psubexp),
        ("pstr", &pstr),
    ] {
        let mut fprs = fx.gpg_fprs(fpr);
        let primary = fprs.remove(0);
        fx.gpg.insert(
            name,
            GpgKey {
                fpr: primary,
                subkeys: fprs,
            },
        );
    }
    let psub_s = fx.gpg["psub"].subkeys.clone();
    let psubexp_s = fx.gpg["psubexp"].subkeys[0].clone();

    // --- Trees ----------------------------------------------------------------------------------
    let t0 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a0\n"),
        ("clusters/b/app.yaml", "b0\n"),
    ]);
    let t1 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a1\n"),
        ("clusters/b/app.yaml", "b0\n"),
    ]);
    let t2 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a1\n"),
        ("clusters/b/app.yaml", "b1\n"),
    ]);
    let t3 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a2\n"),
        ("clusters/b/app.yaml", "b0\n"),
    ]);
    let t12 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a2\n"),
        ("clusters/b/app.yaml", "b1\n"),
    ]);
    let t_b1 = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "a0\n"),
        ("clusters/b/app.yaml", "b1\n"),
    ]);
    let t_noa = fx.tree(&[("README", "r\n"), ("clusters/b/app.yaml", "b0\n")]);
    let t_evil = fx.tree(&[
        ("README", "r\n"),
        ("clusters/a/app.yaml", "EVIL\n"),
        ("clusters/b/app.yaml", "b1\n"),
    ]);

    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: &'static str, policy: &str, target: &str, expect: Expect| {
        cases.push(Case {
            name,
            policy: policy.to_string(),
            base: None,
            target: target.to_string(),
            path: None,
            mode: Mode::Head,
            expect,
        });
    };
    use Expect::{Accept, Reject};

    // --- SSH: signed by git commit-tree ---------------------------------------------------------
    let root_a = fx.commit(
        &t0,
        &[],
        "root",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    add("ssh-ed25519", "ssh", &root_a, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "carol",
        who("carol@example.com"),
        Sign::Ssh("carol"),
    );
    add("ssh-ecdsa-p256", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "dave",
        who("dave@example.com"),
        Sign::Ssh("dave"),
    );
    add("ssh-ecdsa-p384", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "erin",
        who("erin@example.com"),
        Sign::Ssh("erin"),
    );
    add("ssh-rsa-sha512", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "frank",
        who("frank@example.com"),
        Sign::Ssh("frank"),
    );
    add("ssh-principal-in-comma-list", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "glob",
        who("zoe@glob.example.com"),
        Sign::Ssh("glob"),
    );
    add("ssh-principal-glob", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "glob",
        who("Zoe@GLOB.example.com"),
        Sign::Ssh("glob"),
    );
    add("ssh-principal-case-insensitive", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "gina",
        who("gina@example.com"),
        Sign::Ssh("gina"),
    );
    add("ssh-namespaces-git", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "hank",
        who("hank@example.com"),
        Sign::Ssh("hank"),
    );
    add("ssh-namespaces-list-with-git", "ssh", &c, Accept);
    let c = fx.commit(
        &t1,
        &[&root_a],
        "judy",
        who("judy@example.com"),
        Sign::Ssh("judy"),
    );
    add("ssh-within-validity-window", "ssh", &c, Accept);
    let mismatch = fx.commit(
        &t1,
        &[&root_a],
        "bob as zed",
        who("zed@example.com"),
        Sign::Ssh("bob"),
    );
    add(
        "ssh-signer-mismatch-allowed-by-policy",
        "ssh-nomatch",
        &mismatch,
        Accept,
    );
    let c = fx.commit_with(
        &t1,
        &[&root_a],
        "latin1",
        who("alice@example.com"),
        who("alice@example.com"),
        Sign::Ssh("alice"),
        &["i18n.commitEncoding=ISO-8859-1"],
    );
    assert!(String::from_utf8_lossy(&fx.raw(&c)).contains("\nencoding ISO-8859-1\n"));
    add("ssh-with-encoding-header", "ssh", &c, Accept);
    let c = fx.commit(
        &t_noa,
        &[&root_a],
        "remove a",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    add("ssh-signed-deletion", "ssh", &c, Accept);

    add(
        "ssh-unsigned",
        "ssh",
        &fx.commit(&t1, &[&root_a], "u", who("alice@example.com"), Sign::No),
        Reject(Reason::Unsigned),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "mallory",
        who("mallory@example.com"),
        Sign::Ssh("mallory"),
    );
    add("ssh-unknown-key", "ssh", &c, Reject(Reason::UnknownKey));
    add(
        "ssh-key-removed-from-policy",
        "ssh-without-alice",
        &root_a,
        Reject(Reason::UnknownKey),
    );
    add(
        "ssh-signer-not-committer",
        "ssh",
        &mismatch,
        Reject(Reason::SignerMismatch),
    );
    let c = fx.commit_with(
        &t1,
        &[&root_a],
        "alice authored, bob committed",
        who("alice@example.com"),
        who("bob@example.com"),
        Sign::Ssh("alice"),
        &[],
    );
    add(
        "ssh-signer-is-author-not-committer",
        "ssh",
        &c,
        Reject(Reason::SignerMismatch),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "mia",
        who("mia@example.com"),
        Sign::Ssh("mia"),
    );
    add(
        "ssh-principal-negated",
        "ssh",
        &c,
        Reject(Reason::SignerMismatch),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "ivan",
        who("ivan@example.com"),
        Sign::Ssh("ivan"),
    );
    add(
        "ssh-namespaces-exclude-git",
        "ssh",
        &c,
        Reject(Reason::NamespaceNotAllowed),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "ken",
        who("ken@example.com"),
        Sign::Ssh("ken"),
    );
    add(
        "ssh-valid-before-passed",
        "ssh",
        &c,
        Reject(Reason::KeyExpired),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "leo",
        who("leo@example.com"),
        Sign::Ssh("leo"),
    );
    add(
        "ssh-valid-after-not-reached",
        "ssh",
        &c,
        Reject(Reason::KeyNotYetValid),
    );
    let c = fx.commit(
        &t1,
        &[&root_a],
        "nina",
        who("nina@example.com"),
        Sign::Ssh("nina"),
    );
    add(
        "ssh-key-expired-long-ago",
        "ssh",
        &c,
        Reject(Reason::KeyExpired),
    );
    let c = fx.commit_with(
        &t1,
        &[&root_a],
        "oscar",
        Who {
            date: "1748736000 +0000",
            ..who("oscar@example.com")
        },
        who("oscar@example.com"),
        Sign::Ssh("oscar"),
        &[],
    );
    add(
        "ssh-validity-judged-at-committer-time",
        "ssh",
        &c,
        Reject(Reason::KeyExpired),
    );
    add(
        "ssh-signature-untrusted-kind",
        "pgp",
        &root_a,
        Reject(Reason::UntrustedSignatureKind),
    );

    // --- SSH: crafted signatures and tampered objects -------------------------------------------
    let alice_head = person("alice@example.com");
    let hdr = format!("author {alice_head}\ncommitter {alice_head}\n");
    let p = payload(&t1, &[&root_a], &hdr, "crafted\n");
    let crafted = fx.write_raw(&with_sig(&p, &fx.ssh_sign("alice", "git", &p, &[])));
    add("ssh-crafted-control", "ssh", &crafted, Accept);
    let c = fx.write_raw(&with_sig(
        &p,
        &fx.ssh_sign("alice", "git", &p, &["-O", "hashalg=sha256"]),
    ));
    add("ssh-hashalg-sha256", "ssh", &c, Accept);
    let c = fx.write_raw(&with_sig(&p, &fx.ssh_sign("alice", "file", &p, &[])));
    add(
        "ssh-wrong-namespace",
        "ssh",
        &c,
        Reject(Reason::WrongNamespace),
    );
    // mergetag header inside the signed payload.
    let tag_body = format!(
        "object {root_a}\ntype commit\ntag v1\ntagger {alice_head}\n\nrelease\n{}",
        fx.ssh_sign("alice", "git", b"tag payload", &[])
    );
    let side = fx.commit(
        &t2,
        &[&root_a],
        "side",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    let p_merge = with_header(
        &payload(&t2, &[&root_a, &side], &hdr, "merge tag v1\n"),
        "mergetag",
        &tag_body,
    );
    let c = fx.write_raw(&with_sig(
        &p_merge,
        &fx.ssh_sign("alice", "git", &p_merge, &[]),
    ));
    add("ssh-signed-merge-with-mergetag", "ssh", &c, Accept);

    let signed = fx.raw(&root_a);
    let (signed_payload, signed_sig) = split_sig(&signed);
    let msg_edit = fx.write_raw(&replace_once(&signed, "\n\nroot\n", "\n\nRoot\n"));
    add(
        "fudged-message",
        "ssh",
        &msg_edit,
        Reject(Reason::BadSignature),
    );
    let c = fx.write_raw(&replace_once(
        &signed,
        &format!("tree {t0}"),
        &format!("tree {t_evil}"),
    ));
    add("fudged-tree", "ssh", &c, Reject(Reason::BadSignature));
    let child = fx.raw(&fx.commit(
        &t1,
        &[&root_a],
        "child",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    ));
    let c = fx.write_raw(&replace_once(
        &child,
        &format!("parent {root_a}"),
        &format!("parent {side}"),
    ));
    add("fudged-parent", "ssh", &c, Reject(Reason::BadSignature));
    let c = fx.write_raw(&replace_once(
        &signed,
        "committer Fixture Person",
        "committer Fixture Persoo",
    ));
    add(
        "fudged-committer-name",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    let c = fx.write_raw(&replace_once(
        &signed,
        "> 1748779200 +0000\ngpgsig",
        "> 1748779201 +0000\ngpgsig",
    ));
    add(
        "fudged-committer-date",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    let c = fx.write_raw(&replace_once(
        &signed,
        "author Fixture Person <alice@",
        "author Fixture Person <bob@",
    ));
    add(
        "fudged-author-email",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    let c = fx.write_raw(&[signed.as_slice(), b"trailing line\n"].concat());
    add(
        "fudged-appended-message-line",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    // Flip the last byte of the signature blob.
    let blob_b64: String = signed_sig
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(&blob_b64)
        .unwrap();
    // The blob ends with the raw Ed25519 signature R || S; altering R keeps it decodable.
    let r = blob.len() - 64;
    blob[r] ^= 1;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(70)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let flipped = format!(
        "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n",
        wrapped.join("\n")
    );
    let c = fx.write_raw(&with_sig(&signed_payload, &flipped));
    add(
        "signature-bytes-flipped",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    let garbled = "-----BEGIN SSH SIGNATURE-----\nAAAAAAAAAAAA\n-----END SSH SIGNATURE-----\n";
    let c = fx.write_raw(&with_sig(&signed_payload, garbled));
    add(
        "signature-garbled",
        "ssh",
        &c,
        Reject(Reason::MalformedSignature),
    );
    let truncated: String = signed_sig
        .lines()
        .filter(|l| !l.starts_with("-----END"))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = fx.write_raw(&with_sig(&signed_payload, &truncated));
    add(
        "signature-truncated",
        "ssh",
        &c,
        Reject(Reason::MalformedSignature),
    );
    let (_, child_sig) = split_sig(&child);
    let c = fx.write_raw(&with_sig(&signed_payload, &child_sig));
    add(
        "signature-transplanted",
        "ssh",
        &c,
        Reject(Reason::BadSignature),
    );
    let c = fx.write_raw(&with_sig(
        &signed_payload,
        &signed_sig.replace("SSH SIGNATURE", "FOO SIGNATURE"),
    ));
    add(
        "unknown-signature-format",
        "ssh",
        &c,
        Reject(Reason::UnknownSignatureFormat),
    );
    let c = fx.write_raw(&with_sig(&signed_payload, "-----BEGIN SIGNED MESSAGE-----\nMIAGCSqGSIb3DQEHAqCAMIACAQExDTALBglghkgBZQMEAgEwCwYJKoZIhvcNAQcB\n-----END SIGNED MESSAGE-----\n"));
    add(
        "x509-gitsign-untrusted",
        "ssh",
        &c,
        Reject(Reason::UntrustedSignatureKind),
    );
    let c = fx.write_raw(&with_sig(&signed_payload, "\n"));
    add(
        "empty-signature-header",
        "ssh",
        &c,
        Reject(Reason::UnknownSignatureFormat),
    );
    let bob_sig = fx.ssh_sign("bob", "git", &signed_payload, &[]);
    let c = fx.write_raw(&with_sig(&with_sig(&signed_payload, &signed_sig), &bob_sig));
    add(
        "two-gpgsig-headers",
        "ssh",
        &c,
        Reject(Reason::MultipleSignatures),
    );
    let c = fx.write_raw(&with_sig(
        &signed_payload,
        &format!("{signed_sig}{bob_sig}"),
    ));
    add(
        "two-armored-blocks-in-one-header",
        "ssh",
        &c,
        Reject(Reason::MultipleSignatures),
    );
    let c = fx.write_raw(&with_header(&signed, "gpgsig-sha256", &bob_sig));
    add(
        "gpgsig-and-gpgsig-sha256",
        "ssh",
        &c,
        Reject(Reason::MultipleSignatures),
    );
    let c = fx.write_raw(&with_header(&signed, "gpgsigx", "smuggled"));
    add(
        "lookalike-gpgsig-header-added",
        "ssh",
        &c,
        Reject(Reason::MalformedCommit),
    );

    // Objects with bad headers, validly signed over exactly their bytes.
    let signed_over =
        |fx: &Fx, p: Vec<u8>| fx.write_raw(&with_sig(&p, &fx.ssh_sign("alice", "git", &p, &[])));
    let bad_payloads: Vec<(&'static str, Vec<u8>)> = vec![
        ("duplicate-tree", format!("tree {t1}\ntree {t_evil}\nparent {root_a}\n{hdr}\nm\n").into_bytes()),
        ("duplicate-tree-after-committer", format!("tree {t1}\nparent {root_a}\n{hdr}tree {t_evil}\n\nm\n").into_bytes()),
        ("parent-after-author", format!("tree {t1}\nparent {root_a}\nauthor {alice_head}\nparent {side}\ncommitter {alice_head}\n\nm\n").into_bytes()),
        ("parent-after-committer", format!("tree {t1}\nparent {root_a}\n{hdr}parent {side}\n\nm\n").into_bytes()),
        ("duplicate-author", format!("tree {t1}\nparent {root_a}\nauthor {alice_head}\n{hdr}\nm\n").into_bytes()),
        ("duplicate-committer", format!("tree {t1}\nparent {root_a}\nauthor {alice_head}\ncommitter {}\ncommitter {alice_head}\n\nm\n", person("eve@example.com")).into_bytes()),
        ("committer-before-author", format!("tree {t1}\nparent {root_a}\ncommitter {alice_head}\nauthor {alice_head}\n\nm\n").into_bytes()),
        ("missing-author", format!("tree {t1}\nparent {root_a}\ncommitter {alice_head}\n\nm\n").into_bytes()),
        ("committer-with-two-emails", format!("tree {t1}\nparent {root_a}\nauthor {alice_head}\ncommitter Eve <eve@example.com> <alice@example.com> {DATE}\n\nm\n").into_bytes()),
        ("duplicate-encoding", format!("tree {t1}\nparent {root_a}\n{hdr}encoding UTF-8\nencoding ISO-8859-1\n\nm\n").into_bytes()),
        ("nul-in-header", format!("tree {t1}\nparent {root_a}\n{hdr}x-extra a\0b\n\nm\n").into_bytes()),
        ("uppercase-tree-id", format!("tree {}\nparent {root_a}\n{hdr}\nm\n", t1.to_uppercase()).into_bytes()),
    ];
    for (name, p) in bad_payloads {
        let c = signed_over(&fx, p);
        add(name, "ssh", &c, Reject(Reason::MalformedCommit));
    }

    // --- OpenPGP --------------------------------------------------------------------------------
    let gpgc =
        |fx: &Fx, email: &str, sign: Sign<'_>| fx.commit(&t1, &[&root_a], email, who(email), sign);
    let pa_commit = gpgc(&fx, "pa@example.com", Sign::Gpg(&pa));
    add("pgp-ed25519", "pgp", &pa_commit, Accept);
    add(
        "pgp-second-user-id",
        "pgp",
        &gpgc(&fx, "pat@work.example", Sign::Gpg(&pa)),
        Accept,
    );
    add(
        "pgp-rsa",
        "pgp",
        &gpgc(&fx, "prsa@example.com", Sign::Gpg(&prsa)),
        Accept,
    );
    let s1 = format!("{}!", psub_s[0]);
    add(
        "pgp-signing-subkey",
        "pgp",
        &gpgc(&fx, "psub@example.com", Sign::Gpg(&s1)),
        Accept,
    );
    let s2 = format!("{}!", psub_s[1]);
    let by_s2 = gpgc(&fx, "psub@example.com", Sign::Gpg(&s2));
    add("pgp-other-signing-subkey", "pgp", &by_s2, Accept);
    add(
        "pgp-subkey-missing-from-policy",
        "pgp-nosub",
        &by_s2,
        Reject(Reason::UnknownKey),
    );
    let s3 = format!("{}!", psub_s[2]);
    let by_s3 = gpgc(&fx, "psub@example.com", Sign::Gpg(&s3));
    add(
        "pgp-revoked-subkey",
        "pgp",
        &by_s3,
        Reject(Reason::KeyRevoked),
    );
    add(
        "pgp-expired-key",
        "pgp",
        &gpgc(
            &fx,
            "pexp@example.com",
            Sign::GpgAt(&pexp, "20230601T000000!"),
        ),
        Reject(Reason::KeyExpired),
    );
    let subexp = format!("{psubexp_s}!");
    add(
        "pgp-expired-subkey",
        "pgp",
        &gpgc(
            &fx,
            "psubexp@example.com",
            Sign::GpgAt(&subexp, "20230601T000000!"),
        ),
        Reject(Reason::KeyExpired),
    );
    let by_prev = gpgc(&fx, "prev@example.com", Sign::Gpg(&prev));
    add(
        "pgp-revoked-key",
        "pgp",
        &by_prev,
        Reject(Reason::KeyRevoked),
    );
    add(
        "pgp-key-not-yet-valid",
        "pgp",
        &gpgc(
            &fx,
            "pfut@example.com",
            Sign::GpgAt(&pfut, "20240601T000000!"),
        ),
        Reject(Reason::KeyNotYetValid),
    );
    add(
        "pgp-signature-in-future",
        "pgp",
        &gpgc(&fx, "pa@example.com", Sign::GpgAt(&pa, "20350101T000000!")),
        Reject(Reason::SignatureInFuture),
    );
    add(
        "pgp-unknown-key",
        "pgp",
        &gpgc(&fx, "pstr@example.com", Sign::Gpg(&pstr)),
        Reject(Reason::UnknownKey),
    );
    add(
        "pgp-signer-not-committer",
        "pgp",
        &gpgc(&fx, "alice@example.com", Sign::Gpg(&pa)),
        Reject(Reason::SignerMismatch),
    );
    add(
        "pgp-revoked-user-id",
        "pgp",
        &gpgc(&fx, "old@example.com", Sign::Gpg(&puid)),
        Reject(Reason::SignerMismatch),
    );
    add(
        "pgp-signature-untrusted-kind",
        "ssh",
        &pa_commit,
        Reject(Reason::UntrustedSignatureKind),
    );
    add(
        "pgp-key-removed-from-policy",
        "pgp-without-pa",
        &pa_commit,
        Reject(Reason::UnknownKey),
    );
    let pa_raw = fx.raw(&pa_commit);
    add(
        "pgp-fudged-message",
        "pgp",
        &fx.write_raw(&replace_once(
            &pa_raw,
            "\n\npa@example.com",
            "\n\nPA@example.com",
        )),
        Reject(Reason::BadSignature),
    );
    let (pa_payload, pa_sig) = split_sig(&pa_raw);
    add(
        "pgp-message-armor",
        "pgp",
        &fx.write_raw(&with_sig(
            &pa_payload,
            &pa_sig.replace("PGP SIGNATURE", "PGP MESSAGE"),
        )),
        Reject(Reason::UnknownSignatureFormat),
    );
    let sig = fx.gpg_sign(&["-u", &pa, "--textmode"], &pa_payload);
    add(
        "pgp-text-mode-signature",
        "pgp",
        &fx.write_raw(&with_sig(&pa_payload, &sig)),
        Reject(Reason::MalformedSignature),
    );
    let sig = fx.gpg_sign(&["-u", &pa, "--digest-algo", "SHA1"], &pa_payload);
    add(
        "pgp-sha1-signature",
        "pgp",
        &fx.write_raw(&with_sig(&pa_payload, &sig)),
        Reject(Reason::UnsupportedAlgorithm),
    );
    let sig = fx.gpg_sign(&["-u", &pa, "-u", &prsa], &pa_payload);
    add(
        "pgp-two-signatures-in-one-block",
        "pgp",
        &fx.write_raw(&with_sig(&pa_payload, &sig)),
        Reject(Reason::MultipleSignatures),
    );
    // Signatures gpg refuses to make, made with rPGP from the same gpg keys.
    let pa_secret = fx.gpg_export_secret(&pa);
    let p_pa = payload(
        &t1,
        &[&root_a],
        &format!(
            "author {}\ncommitter {}\n",
            person("pa@example.com"),
            person("pa@example.com")
        ),
        "rpgp\n",
    );
    add(
        "pgp-rpgp-control",
        "pgp",
        &fx.write_raw(&with_sig(
            &p_pa,
            &rpgp_sign(&pa_secret, 0, &p_pa, None, None),
        )),
        Accept,
    );
    add(
        "pgp-signature-expired",
        "pgp",
        &fx.write_raw(&with_sig(
            &p_pa,
            &rpgp_sign(&pa_secret, 0, &p_pa, Some(1_748_779_200), Some(86_400)),
        )),
        Reject(Reason::SignatureExpired),
    );
    let p_sub = payload(
        &t1,
        &[&root_a],
        &format!(
            "author {}\ncommitter {}\n",
            person("psub@example.com"),
            person("psub@example.com")
        ),
        "rpgp\n",
    );
    add(
        "pgp-certify-only-primary-signs",
        "pgp",
        &fx.write_raw(&with_sig(
            &p_sub,
            &rpgp_sign(&fx.gpg_export_secret(&psub), 0, &p_sub, None, None),
        )),
        Reject(Reason::KeyCannotSign),
    );
    let p_exp = payload(
        &t1,
        &[&root_a],
        &format!(
            "author {}\ncommitter {}\n",
            person("pexp@example.com"),
            person("pexp@example.com")
        ),
        "rpgp\n",
    );
    add(
        "pgp-signed-after-key-expiry",
        "pgp",
        &fx.write_raw(&with_sig(
            &p_exp,
            &rpgp_sign(
                &fx.gpg_export_secret(&pexp),
                0,
                &p_exp,
                Some(1_717_200_000),
                None,
            ),
        )),
        Reject(Reason::KeyExpired),
    );

    // Revocations happen after signing; the policy holds the keys as exported afterwards.
    let script = b"key 3\nrevkey\ny\n0\n\ny\nsave\n";
    fx.gpg(
        &[
            "--command-fd",
            "0",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--edit-key",
            &psub,
        ],
        Some(script),
    );
    // prev's key as exported before its revocation: a stale export.
    let prerevoke_export = fx.gpg_export(&prev);
    let rev_cert = std::fs::read_to_string(
        fx.gnupg
            .join("openpgp-revocs.d")
            .join(format!("{prev}.rev")),
    )
    .unwrap();
    fx.gpg(
        &["--import"],
        Some(rev_cert.replace(":-----BEGIN", "-----BEGIN").as_bytes()),
    );
    fx.gpg(
        &["--quick-revoke-uid", &puid, "Old Person <old@example.com>"],
        None,
    );

    // --- Both kinds, ranges, merges, tags ---------------------------------------------------------
    let both = fx.commit(
        &t2,
        &[&pa_commit],
        "both",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    cases.push(Case {
        name: "range-ssh-and-pgp",
        policy: "both".into(),
        base: None,
        target: both.clone(),
        path: None,
        mode: Mode::Range,
        expect: Accept,
    });
    cases.push(Case {
        name: "range-ssh-and-pgp-pgp-untrusted",
        policy: "ssh".into(),
        base: None,
        target: both.clone(),
        path: None,
        mode: Mode::Range,
        expect: Reject(Reason::UntrustedSignatureKind),
    });

    let s_root = root_a.clone();
    let s1c = fx.commit(
        &t1,
        &[&s_root],
        "s1",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    let s2c = fx.commit(&t2, &[&s1c], "s2", who("bob@example.com"), Sign::Ssh("bob"));
    let mut range = |name: &'static str,
                     policy: &str,
                     base: Option<&str>,
                     target: &str,
                     path: Option<&'static str>,
                     mode: Mode,
                     expect: Expect| {
        cases.push(Case {
            name,
            policy: policy.into(),
            base: base.map(str::to_string),
            target: target.to_string(),
            path,
            mode,
            expect,
        });
    };
    range(
        "range-all-signed-from-root",
        "ssh",
        None,
        &s2c,
        None,
        Mode::Range,
        Accept,
    );
    let u = fx.commit(
        &t1,
        &[&s_root],
        "unsigned a",
        who("alice@example.com"),
        Sign::No,
    );
    let after_u = fx.commit(
        &t2,
        &[&u],
        "signed b",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    let top = fx.commit(
        &t12,
        &[&after_u],
        "signed a",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    range(
        "range-unsigned-before-base-excluded",
        "ssh",
        Some(&after_u),
        &top,
        None,
        Mode::Range,
        Accept,
    );
    range(
        "range-unsigned-in-range",
        "ssh",
        Some(&s_root),
        &top,
        None,
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    range(
        "range-unsigned-touching-path",
        "ssh",
        Some(&s_root),
        &top,
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    let ub = fx.commit(
        &t2,
        &[&s1c],
        "unsigned b only",
        who("alice@example.com"),
        Sign::No,
    );
    let top_b = fx.commit(
        &t12,
        &[&ub],
        "signed a again",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    range(
        "range-unsigned-outside-path",
        "ssh",
        Some(&s_root),
        &top_b,
        Some("clusters/a"),
        Mode::Range,
        Accept,
    );
    range(
        "range-unsigned-inside-other-path",
        "ssh",
        Some(&s_root),
        &top_b,
        Some("clusters/b"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    range(
        "head-mode-over-unsigned-history",
        "ssh",
        Some(&s_root),
        &top,
        None,
        Mode::Head,
        Accept,
    );
    range(
        "head-mode-unsigned-head",
        "ssh",
        None,
        &u,
        None,
        Mode::Head,
        Reject(Reason::Unsigned),
    );

    // Merges.
    let left = fx.commit(
        &t1,
        &[&s_root],
        "left",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    let right_signed = fx.commit(
        &t2,
        &[&s_root],
        "right",
        who("bob@example.com"),
        Sign::Ssh("bob"),
    );
    let right_unsigned_b = fx.commit(
        &t_b1,
        &[&s_root],
        "right unsigned b",
        who("bob@example.com"),
        Sign::No,
    );
    let right_unsigned_a = fx.commit(
        &t3,
        &[&s_root],
        "right unsigned a",
        who("bob@example.com"),
        Sign::No,
    );
    let m_ok = fx.commit(
        &t2,
        &[&left, &right_signed],
        "merge",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    range(
        "signed-merge-of-signed-branches",
        "ssh",
        Some(&s_root),
        &m_ok,
        None,
        Mode::Range,
        Accept,
    );
    let m_bad = fx.commit(
        &t12,
        &[&left, &right_unsigned_a],
        "merge",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    range(
        "signed-merge-over-unsigned-commit",
        "ssh",
        Some(&s_root),
        &m_bad,
        None,
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    range(
        "signed-merge-over-unsigned-commit-path",
        "ssh",
        Some(&s_root),
        &m_bad,
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    range(
        "signed-merge-over-unsigned-first-parent",
        "ssh",
        Some(&s_root),
        &fx.commit(
            &t12,
            &[&right_unsigned_a, &left],
            "merge",
            who("alice@example.com"),
            Sign::Ssh("alice"),
        ),
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    let m_side_b = fx.commit(
        &t2,
        &[&left, &right_unsigned_b],
        "merge",
        who("alice@example.com"),
        Sign::Ssh("alice"),
    );
    range(
        "signed-merge-unsigned-side-outside-path",
        "ssh",
        Some(&s_root),
        &m_side_b,
        Some("clusters/a"),
        Mode::Range,
        Accept,
    );
    range(
        "signed-merge-unsigned-side-inside-path",
        "ssh",
        Some(&s_root),
        &m_side_b,
        Some("clusters/b"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    let m_unsigned_same = fx.commit(
        &t2,
        &[&left, &right_signed],
        "unsigned merge",
        who("alice@example.com"),
        Sign::No,
    );
    range(
        "unsigned-merge-changing-nothing-under-path",
        "ssh",
        Some(&s_root),
        &fx.commit(
            &t2,
            &[&m_unsigned_same],
            "on top",
            who("alice@example.com"),
            Sign::Ssh("alice"),
        ),
        Some("clusters/a"),
        Mode::Range,
        Accept,
    );
    range(
        "unsigned-merge-changing-other-path",
        "ssh",
        Some(&s_root),
        &m_unsigned_same,
        Some("clusters/b"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    let evil = fx.commit(
        &t_evil,
        &[&left, &right_signed],
        "evil merge",
        who("alice@example.com"),
        Sign::No,
    );
    range(
        "unsigned-evil-merge",
        "ssh",
        Some(&s_root),
        &fx.commit(
            &t_evil,
            &[&evil],
            "signed on top",
            who("alice@example.com"),
            Sign::Ssh("alice"),
        ),
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::Unsigned),
    );
    let malformed_parent = signed_over(
        &fx,
        format!("tree {t1}\nparent {s_root}\nauthor {alice_head}\n{hdr}\nm\n").into_bytes(),
    );
    range(
        "malformed-commit-in-range",
        "ssh",
        Some(&s_root),
        &fx.commit(
            &t1,
            &[&malformed_parent],
            "child of malformed",
            who("alice@example.com"),
            Sign::Ssh("alice"),
        ),
        Some("clusters/b"),
        Mode::Range,
        Reject(Reason::MalformedCommit),
    );
    // A signed tag does not make its commit trusted.
    let tag_target = fx.commit(
        &t1,
        &[&s_root],
        "tagged",
        who("alice@example.com"),
        Sign::No,
    );
    let key = fx.ssh["alice"].0.display().to_string();
    let mut tag = fx.git_cmd();
    tag.env("GIT_COMMITTER_NAME", "Fixture Person")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .args([
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={key}"),
        ])
        .args(["tag", "-s", "-m", "signed tag", "signed-tag", &tag_target]);
    ok(&mut tag, None);
    range(
        "signed-tag-over-unsigned-commit",
        "ssh",
        None,
        "signed-tag",
        None,
        Mode::Head,
        Reject(Reason::Unsigned),
    );

    // --- Backdating: whoever commits chooses the committer date, and SSH validity is judged at it -------
    // ken's key ended on 2025-01-01 (valid-before). A commit it signs, dated 2024-06-01 (inside its validity),
    // on top of history from 2025-06-01: git accepts it; range mode refuses a commit older than its parent.
    const BACKDATED: &str = "1717200000 +0000";
    let backdated = fx.commit(
        &t1,
        &[&root_a],
        "ken, backdated",
        Who {
            date: BACKDATED,
            ..who("ken@example.com")
        },
        Sign::Ssh("ken"),
    );
    range(
        "ssh-retired-key-backdated-on-newer-parent",
        "ssh",
        None,
        &backdated,
        None,
        Mode::Range,
        Reject(Reason::CommitBeforeParent),
    );
    range(
        "ssh-retired-key-backdated-on-newer-base",
        "ssh",
        Some(&root_a),
        &backdated,
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::CommitBeforeParent),
    );
    // The same, with the date lowered first by an unsigned commit outside the path: the signed commit is then
    // not older than its own parent, but the unsigned one is (every commit of the range is held to it).
    let hop = fx.commit(
        &t_b1,
        &[&root_a],
        "unsigned, outside the path, backdated",
        Who {
            date: BACKDATED,
            ..who("mallory@example.com")
        },
        Sign::No,
    );
    let over_hop = fx.commit(
        &t2,
        &[&hop],
        "ken, backdated over the hop",
        Who {
            date: "1717200060 +0000",
            ..who("ken@example.com")
        },
        Sign::Ssh("ken"),
    );
    range(
        "ssh-retired-key-backdated-through-a-commit-outside-the-path",
        "ssh",
        Some(&root_a),
        &over_hop,
        Some("clusters/a"),
        Mode::Range,
        Reject(Reason::CommitBeforeParent),
    );

    // --- Policies -------------------------------------------------------------------------------
    let exported: BTreeMap<&str, String> = fx
        .gpg
        .iter()
        .filter(|(n, _)| **n != "pstr")
        .map(|(n, k)| (*n, fx.gpg_export(&k.fpr)))
        .collect();
    let all_pgp: Vec<&String> = exported.values().collect();
    let without_pa: Vec<&String> = exported
        .iter()
        .filter(|(n, _)| **n != "pa")
        .map(|(_, k)| k)
        .collect();
    let nosub_key = without_subkey(&exported["psub"], &psub_s[1]);
    let nosub: Vec<&String> = exported
        .iter()
        .map(|(n, k)| if *n == "psub" { &nosub_key } else { k })
        .collect();
    let mut policies = BTreeMap::new();
    policies.insert("ssh".to_string(), policy_yaml(&ssh_lines, &[], ""));
    policies.insert(
        "ssh-nomatch".to_string(),
        policy_yaml(&ssh_lines, &[], "requireCommitterMatch: false\n"),
    );
    policies.insert(
        "ssh-without-alice".to_string(),
        policy_yaml(&without_alice, &[], ""),
    );
    policies.insert("pgp".to_string(), policy_yaml(&[], &all_pgp, ""));
    policies.insert(
        "pgp-without-pa".to_string(),
        policy_yaml(&[], &without_pa, ""),
    );
    policies.insert("pgp-nosub".to_string(), policy_yaml(&[], &nosub, ""));
    policies.insert(
        "both".to_string(),
        policy_yaml(&ssh_lines, &all_pgp, "mode: range\n"),
    );

    // Policy files that must not load: nothing is accepted under them.
    let a = &ssh_lines[0];
    let bad_policies: Vec<(&'static str, String, &'static str)> = vec![
        (
            "policy-unknown-field",
            format!("sshAllowedSigners: |\n  {a}\nallowUnsigned: true\n"),
            "allowUnsigned",
        ),
        (
            "policy-gitsign-fields-not-yet-known",
            format!("sshAllowedSigners: |\n  {a}\nsigstoreTrustedRoot: x\n"),
            "sigstoreTrustedRoot",
        ),
        (
            "policy-bad-mode",
            format!("mode: tail\nsshAllowedSigners: |\n  {a}\n"),
            "mode",
        ),
        (
            "policy-require-match-not-bool",
            format!("requireCommitterMatch: sometimes\nsshAllowedSigners: |\n  {a}\n"),
            "requireCommitterMatch",
        ),
        (
            "policy-ssh-not-a-string",
            "sshAllowedSigners:\n  - x\n".to_string(),
            "sshAllowedSigners",
        ),
        (
            "policy-cert-authority",
            format!(
                "sshAllowedSigners: |\n  {a}\n  *@example.com cert-authority {}\n",
                pk("bob")
            ),
            "cert-authority",
        ),
        (
            "policy-bad-valid-after",
            format!(
                "sshAllowedSigners: |\n  x@y valid-after=\"2024-01-01\" {}\n",
                pk("bob")
            ),
            "line 1",
        ),
        (
            "policy-unknown-ssh-option",
            format!(
                "sshAllowedSigners: |\n  x@y no-touch-required {}\n",
                pk("bob")
            ),
            "unknown option",
        ),
        (
            "policy-bad-ssh-key",
            "sshAllowedSigners: |\n  x@y ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n".to_string(),
            "line 1",
        ),
        (
            "policy-garbage-openpgp-key",
            "openpgpKeys:\n  - not a key\n".to_string(),
            "openpgpKeys[0]",
        ),
        (
            "policy-no-keys",
            "mode: range\n".to_string(),
            "trusts no key",
        ),
        (
            "policy-require-match-yaml11-no",
            format!("requireCommitterMatch: no\nsshAllowedSigners: |\n  {a}\n"),
            "requireCommitterMatch: invalid type: string \"no\", expected a boolean",
        ),
        // One key, one entry: a key on a second line, under other principals, would stay trusted after
        // its first line is removed.
        (
            "policy-ssh-key-on-two-lines",
            format!(
                "sshAllowedSigners: |\n  {a}\n  {}\n  other@example.com {}\n",
                line("bob@example.com", "", "bob"),
                pk("alice")
            ),
            "line 3: key SHA256:",
        ),
        (
            "policy-openpgp-key-exported-twice",
            format!(
                "openpgpKeys:\n{}{}",
                yaml_list_item(&exported["pa"]),
                yaml_list_item(&exported["pa"])
            ),
            "openpgpKeys[1]: primary key",
        ),
        (
            "policy-openpgp-key-stale-and-revoked-exports",
            format!(
                "openpgpKeys:\n{}{}",
                yaml_list_item(&prerevoke_export),
                yaml_list_item(&exported["prev"])
            ),
            "is already in openpgpKeys[0]",
        ),
        (
            "policy-yaml-syntax",
            "sshAllowedSigners: [\n".to_string(),
            "invalid YAML",
        ),
    ];
    for (name, yaml, want) in bad_policies {
        policies.insert(name.to_string(), yaml);
        cases.push(Case {
            name,
            policy: name.to_string(),
            base: None,
            target: root_a.clone(),
            path: None,
            mode: Mode::Head,
            expect: Expect::PolicyError(want),
        });
    }

    // All signing is done: stop the agent of the signing keyring.
    let mut kill = Command::new("gpgconf");
    fx.env(&mut kill);
    let _ = run(kill.args(["--kill", "gpg-agent"]), None);

    fx.policies = policies;
    fx.cases = cases;
    fx
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// The tests

struct Outcome {
    /// Policy load error, if any.
    policy_error: Option<String>,
    /// (sha, ok, reason) per checked commit.
    verdicts: Vec<(String, bool, Option<Reason>)>,
}

fn evaluate(fx: &Fx, case: &Case) -> Outcome {
    let policy = match TrustPolicy::from_yaml(&fx.policies[&case.policy]) {
        Ok(p) => p,
        Err(e) => {
            return Outcome {
                policy_error: Some(e.to_string()),
                verdicts: Vec::new(),
            };
        }
    };
    let repo = Repo::open(&fx.repo).unwrap();
    let base = case
        .base
        .as_deref()
        .map(|b| repo.resolve_commit(b).unwrap());
    let target = repo.resolve_commit(&case.target).unwrap();
    let report = Verifier::new(&repo, &policy)
        .range(base, target, case.path, case.mode)
        .unwrap();
    Outcome {
        policy_error: None,
        verdicts: report
            .verdicts
            .iter()
            .map(|v| (v.sha.clone(), v.ok, v.reason.as_ref().map(|r| r.reason)))
            .collect(),
    }
}

#[test]
fn tamper_corpus() {
    let fx = fixture();
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    let (mut accepted_controls, mut rejected_tampers, mut policy_errors) = (0, 0, 0);
    for case in &fx.cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        let out = evaluate(fx, case);
        let all_ok = out.policy_error.is_none()
            && !out.verdicts.is_empty()
            && out.verdicts.iter().all(|v| v.1);
        match &case.expect {
            Expect::Accept => {
                if all_ok {
                    accepted_controls += 1;
                } else {
                    failures.push(format!(
                        "{}: expected to be accepted, got {:?} {:?}",
                        case.name, out.policy_error, out.verdicts
                    ));
                }
            }
            Expect::Reject(reason) => {
                let reasons: Vec<Reason> = out.verdicts.iter().filter_map(|v| v.2).collect();
                if all_ok {
                    failures.push(format!("{}: ACCEPTED, expected {reason:?}", case.name));
                } else if out.policy_error.is_some() || !reasons.contains(reason) {
                    failures.push(format!(
                        "{}: rejected with {reasons:?} {:?}, expected {reason:?}",
                        case.name, out.policy_error
                    ));
                } else {
                    rejected_tampers += 1;
                }
            }
            Expect::PolicyError(want) => match &out.policy_error {
                Some(e) if e.contains(want) => policy_errors += 1,
                other => failures.push(format!(
                    "{}: expected a policy error mentioning {want:?}, got {other:?} {:?}",
                    case.name, out.verdicts
                )),
            },
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
    let tampers = fx
        .cases
        .iter()
        .filter(|c| !matches!(c.expect, Expect::Accept))
        .count();
    assert!(tampers >= 60, "only {tampers} tamper cases");
    assert_eq!(rejected_tampers + policy_errors, tampers);
    eprintln!(
        "corpus: {accepted_controls} controls accepted, {rejected_tampers} tampered cases rejected, {policy_errors} bad policies refused"
    );
}

/// Cases where we reject and `git verify-commit` accepts, because our rule is stricter
/// (docs/trust-policy.md, "Where we are stricter than git").
const STRICTER_THAN_GIT: &[&str] = &[
    // The signer must be the committer; git does not bind the signer to any identity in the commit.
    "ssh-signer-not-committer",
    "ssh-signer-is-author-not-committer",
    "ssh-principal-negated",
    "pgp-signer-not-committer",
    "pgp-revoked-user-id",
    // git judges SSH validity at the committer date, which the signer chose.
    "ssh-retired-key-backdated-on-newer-parent",
    "ssh-retired-key-backdated-on-newer-base",
    // Strict object layout; git verifies whatever bytes remain after removing the signature header.
    "duplicate-tree",
    "duplicate-tree-after-committer",
    "parent-after-author",
    "parent-after-committer",
    "duplicate-author",
    "duplicate-committer",
    "committer-before-author",
    "missing-author",
    "committer-with-two-emails",
    "duplicate-encoding",
    "nul-in-header",
    "uppercase-tree-id",
    "malformed-commit-in-range",
    // Headers git silently drops from the signed payload.
    "gpgsig-and-gpgsig-sha256",
    "lookalike-gpgsig-header-added",
    // One signature, one armor, one kind of OpenPGP signature.
    "two-gpgsig-headers",
    "two-armored-blocks-in-one-header",
    "pgp-message-armor",
    "pgp-text-mode-signature",
    "pgp-sha1-signature",
    "pgp-signature-in-future",
];

/// Where git is stricter than us (we accept, git rejects), with the reason documented.
const GIT_STRICTER: &[&str] = &[];

fn git_verify(
    fx: &Fx,
    homes: &mut BTreeMap<String, (PathBuf, PathBuf)>,
    policy: &str,
    sha: &str,
) -> bool {
    let (allowed, gnupg) = homes
        .entry(policy.to_string())
        .or_insert_with(|| {
            let dir = fx.root.join(format!("git-verify-{policy}"));
            let gnupg = dir.join("gnupg");
            std::fs::create_dir_all(&gnupg).unwrap();
            set_mode(&gnupg, 0o700);
            let raw: serde_json::Value = serde_saphyr::from_str(&fx.policies[policy]).unwrap();
            let allowed = dir.join("allowed_signers");
            let lines = raw
                .get("sshAllowedSigners")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            std::fs::write(&allowed, lines).unwrap();
            if let Some(keys) = raw.get("openpgpKeys").and_then(|k| k.as_array()) {
                for k in keys {
                    let mut cmd = Command::new("gpg");
                    fx.env(&mut cmd);
                    cmd.env("GNUPGHOME", &gnupg)
                        .args(["--batch", "--quiet", "--import"]);
                    ok(&mut cmd, Some(k.as_str().unwrap().as_bytes()));
                }
            }
            (allowed, gnupg)
        })
        .clone();
    let mut cmd = fx.git_cmd();
    cmd.env("GNUPGHOME", &gnupg)
        .arg("-c")
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", sha]);
    run(&mut cmd, None).status.success()
}

#[test]
fn differential_against_git() {
    let fx = fixture();
    let mut homes = BTreeMap::new();
    let mut disagreements = BTreeMap::new();
    let mut compared = 0;
    for case in &fx.cases {
        let out = evaluate(fx, case);
        if out.policy_error.is_some() {
            continue;
        }
        for (sha, ours, _) in &out.verdicts {
            let git = git_verify(fx, &mut homes, &case.policy, sha);
            compared += 1;
            if *ours != git {
                disagreements.insert(case.name, (*ours, git));
            }
        }
    }
    for (policy, (_, gnupg)) in &homes {
        if Path::new(gnupg).exists() {
            let mut kill = Command::new("gpgconf");
            fx.env(&mut kill);
            let _ = run(
                kill.env("GNUPGHOME", gnupg).args(["--kill", "gpg-agent"]),
                None,
            );
        }
        let _ = policy;
    }
    let mut problems = Vec::new();
    for (name, (ours, git)) in &disagreements {
        let listed = if *ours {
            GIT_STRICTER.contains(name)
        } else {
            STRICTER_THAN_GIT.contains(name)
        };
        if !listed {
            problems.push(format!(
                "{name}: ours={ours} git={git} (not a documented difference)"
            ));
        }
    }
    for name in STRICTER_THAN_GIT.iter().chain(GIT_STRICTER) {
        if !disagreements.contains_key(name) {
            problems.push(format!(
                "{name}: listed as a difference, but we agree with git"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "differential problems:\n{}",
        problems.join("\n")
    );
    eprintln!(
        "differential: {compared} commit checks compared with git verify-commit, {} documented differences",
        disagreements.len()
    );
}

#[test]
fn cli() {
    let fx = fixture();
    let bin = env!("CARGO_BIN_EXE_vworkspace-operator");
    let policy_file = |name: &str| {
        let p = fx.root.join(format!("policy-{name}.yaml"));
        std::fs::write(&p, &fx.policies[name]).unwrap();
        p
    };
    let cli = |args: &[&str]| {
        let out = run(Command::new(bin).args(args), None);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let repo = fx.repo.to_str().unwrap();
    let ssh = policy_file("ssh");
    let ssh = ssh.to_str().unwrap();
    let case = |name: &str| fx.cases.iter().find(|c| c.name == name).unwrap().clone();

    // Accepted: one line per commit, exit 0.
    let all_signed = case("range-all-signed-from-root");
    let (code, out, _) = cli(&[
        "verify",
        "--repo",
        repo,
        "--policy",
        ssh,
        &all_signed.target,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains(" verified kind=ssh signer=") && l.contains(" key=SHA256:")),
        "{out}"
    );

    // JSON, range with a path, a rejection: exit 1.
    let c = case("range-unsigned-touching-path");
    let spec = format!("{}..{}", c.base.as_deref().unwrap(), c.target);
    let (code, out, _) = cli(&[
        "verify",
        "--repo",
        repo,
        "--policy",
        ssh,
        "--path",
        "clusters/a",
        "--output",
        "json",
        &spec,
    ]);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let unsigned: Vec<_> = lines
        .iter()
        .filter(|l| l["verdict"] == "rejected")
        .collect();
    assert_eq!(unsigned.len(), 1, "{out}");
    assert_eq!(unsigned[0]["reason"], "Unsigned");
    assert!(
        unsigned[0]["message"]
            .as_str()
            .unwrap()
            .contains("not signed")
    );
    assert!(lines.iter().any(|l| l["verdict"] == "verified"
        && l["signer"] == "alice@example.com"
        && l["kind"] == "ssh"));

    // --mode head overrides the policy's range mode.
    let (code, out, _) = cli(&[
        "verify", "--repo", repo, "--policy", ssh, "--mode", "head", &spec,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 1);

    // Rejection in text form names the reason.
    let c = case("ssh-valid-before-passed");
    let (code, out, _) = cli(&["verify", "--repo", repo, "--policy", ssh, &c.target]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains(" rejected kind=ssh key=SHA256:") && out.contains("reason=KeyExpired:"),
        "{out}"
    );

    // Usage errors and unreadable policies: exit 2.
    let bad = policy_file("policy-unknown-field");
    let (code, _, err) = cli(&[
        "verify",
        "--repo",
        repo,
        "--policy",
        bad.to_str().unwrap(),
        "HEAD",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("allowUnsigned"), "{err}");
    let (code, _, err) = cli(&[
        "verify",
        "--repo",
        repo,
        "--policy",
        "/nonexistent/policy.yaml",
        &c.target,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/policy.yaml"), "{err}");
    let (code, _, _) = cli(&[
        "verify",
        "--repo",
        repo,
        "--policy",
        ssh,
        "no-such-revision",
    ]);
    assert_eq!(code, Some(2));
    let (code, _, _) = cli(&["verify", "--repo", repo, "--policy", ssh, "a...b"]);
    assert_eq!(code, Some(2));
    let (code, _, _) = cli(&[
        "verify", "--repo", repo, "--policy", ssh, "--mode", "sideways", &c.target,
    ]);
    assert_eq!(code, Some(2));
    let (code, _, _) = cli(&[
        "verify",
        "--repo",
        "/nonexistent/repo",
        "--policy",
        ssh,
        "HEAD",
    ]);
    assert_eq!(code, Some(2));
}

/// The operator judges SSH key validity up to the time it first saw a commit (`Verifier::first_seen`, its
/// record in the state directory): the holder of a retired key cannot sign anything new by dating it inside the
/// key's validity, and what the key signed before its end, seen then, keeps verifying.
#[test]
fn ssh_validity_is_judged_up_to_when_a_commit_was_first_seen() {
    use std::collections::HashMap;
    let fx = fixture();
    let policy = TrustPolicy::from_yaml(&fx.policies["ssh"]).unwrap();
    // History from 2024-01-01 by alice (no end), then a commit by ken (whose key ended on 2025-01-01) dated
    // 2024-06-01: not older than its parent, so the date alone gives nothing away.
    let t_root = fx.tree(&[("clusters/a/app.yaml", "first seen 1\n")]);
    let root = fx.commit(
        &t_root,
        &[],
        "root",
        Who {
            date: "1704067200 +0000",
            ..who("alice@example.com")
        },
        Sign::Ssh("alice"),
    );
    let t_ken = fx.tree(&[("clusters/a/app.yaml", "first seen 2\n")]);
    let by_ken = fx.commit(
        &t_ken,
        &[&root],
        "ken",
        Who {
            date: "1717200000 +0000",
            ..who("ken@example.com")
        },
        Sign::Ssh("ken"),
    );
    let repo = Repo::open(&fx.repo).unwrap();
    let root = repo.resolve_commit(&root).unwrap();
    let by_ken = repo.resolve_commit(&by_ken).unwrap();
    let ken_hex = by_ken.to_string();
    let judge = |seen: Option<&HashMap<gix::ObjectId, i64>>| {
        let verifier = Verifier::new(&repo, &policy);
        let mut verifier = match seen {
            Some(seen) => verifier.first_seen(seen),
            None => verifier,
        };
        let report = verifier.range(None, by_ken, None, Mode::Range).unwrap();
        assert_eq!(report.verdicts.len(), 2);
        report
            .verdicts
            .into_iter()
            .find(|v| v.sha == ken_hex)
            .unwrap()
    };
    // Offline, as git: judged at the committer date.
    assert!(judge(None).ok);
    // Fetched on 2024-07-01, before the key ended: still trusted now that it has.
    let before = HashMap::from([(root, 1_704_067_200), (by_ken, 1_719_792_000)]);
    assert!(judge(Some(&before)).ok);
    // First seen on 2026-01-01, after the key ended, whatever date it claims: refused.
    let after = HashMap::from([(root, 1_704_067_200), (by_ken, 1_767_225_600)]);
    let v = judge(Some(&after));
    let failure = v.reason.expect("refused");
    assert_eq!(failure.reason, Reason::KeyExpired);
    assert!(
        failure
            .message
            .contains("commit dated 2024-06-01T00:00:00Z but first seen at 2026-01-01T00:00:00Z"),
        "{}",
        failure.message
    );
    // Not in the record at all: first seen now.
    let unrecorded = HashMap::from([(root, 1_704_067_200)]);
    assert_eq!(
        judge(Some(&unrecorded)).reason.map(|f| f.reason),
        Some(Reason::KeyExpired)
    );
}

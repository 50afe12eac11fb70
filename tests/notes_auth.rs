//! The audit trail attacked at the edges: records written by someone with push access but without the
//! operator's notes key. A forgery of a genuine record (same id, other content), a record published first to
//! suppress a genuine one, and plausible appended records are each shown for what they are by the library
//! (`judge::read_judged`), by `notes show` and `notes log` (text and JSON), and never stop the writer from
//! delivering the genuine record. Real git: a bare remote, plain-git attackers, the operator's writer.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gix::ObjectId;
use serde_json::Value;
use support::gitfix::{GitRemote, ed25519_key};
use vworkspace_operator::git::notes::auth::{NotesSigner, NotesTrust};
use vworkspace_operator::git::notes::judge::{JudgedRecord, Status, read_judged};
use vworkspace_operator::git::notes::{NewRecord, NoteEntry, NotesWriter, OutcomeRecord};
use vworkspace_operator::git::remote::{self, Credentials};

const REF: &str = "refs/notes/vworkspace/c1";

struct Bed {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: GitRemote,
    commit: ObjectId,
    /// The operator's notes key: private key file, public key file.
    key: PathBuf,
    signer: std::sync::Arc<NotesSigner>,
}

impl Bed {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let remote = GitRemote::new(&root);
        remote.write("clusters/c1/app.yaml", "kind: ApplicationInstance\n");
        let commit = remote.commit("intent", None, "alice@example.org");
        let key = root.join("notes_key");
        ed25519_key(&key);
        let signer = std::sync::Arc::new(NotesSigner::load(&key).unwrap());
        Self {
            _tmp: tmp,
            root,
            remote,
            commit: ObjectId::from_hex(commit.as_bytes()).unwrap(),
            key,
            signer,
        }
    }

    fn trust(&self) -> NotesTrust {
        NotesTrust::new(vec![self.signer.trusted("operator")])
    }

    /// The operator's writer (signing) on its own bare cache.
    fn writer(&self, name: &str) -> NotesWriter {
        let cache = self.root.join(name);
        remote::open_or_init_cache(&cache).unwrap();
        NotesWriter::new(
            &cache,
            self.remote.url(),
            "c1",
            self.root.join(format!("{name}-state")),
        )
        .unwrap()
        .with_signer(self.signer.clone())
    }

    /// Someone with push access and plain git: append `line` to the note on the intent commit and push.
    fn attacker_appends(&self, line: &str) {
        let dir = self.root.join(format!("attacker-{}", fastrand::u32(..)));
        let r = &self.remote;
        r.git(
            &self.root,
            &["clone", "-q", &r.url(), dir.to_str().unwrap()],
        );
        let _ = r.try_git(
            &dir,
            &["fetch", "-q", "origin", "+refs/notes/*:refs/notes/*"],
        );
        r.git(
            &dir,
            &[
                "-c",
                "user.name=mallory",
                "-c",
                "user.email=m@example.org",
                "notes",
                "--ref",
                REF,
                "append",
                "-m",
                line,
                &self.commit.to_string(),
            ],
        );
        r.git(&dir, &["push", "-q", "origin", REF]);
    }

    /// A plain-git reader with the notes fetched.
    fn reader(&self) -> PathBuf {
        let dir = self.root.join(format!("reader-{}", fastrand::u32(..)));
        let r = &self.remote;
        r.git(
            &self.root,
            &["clone", "-q", &r.url(), dir.to_str().unwrap()],
        );
        r.git(
            &dir,
            &["fetch", "-q", "origin", "+refs/notes/*:refs/notes/*"],
        );
        dir
    }

    fn judged(&self, reader: &Path, trust: &NotesTrust) -> Vec<JudgedRecord> {
        let repo = gix::open(reader).unwrap();
        let notes = read_judged(&repo, &[REF.to_string()], self.commit, trust).unwrap();
        assert_eq!(notes.len(), 1);
        notes.into_iter().next().unwrap().records
    }

    fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// `notes show` (text, then JSON) with the operator's public key file.
    fn show(&self, reader: &Path) -> (String, Value) {
        let pubkey = format!("{}.pub", self.key.display());
        let base = [
            "notes",
            "show",
            "--repo",
            reader.to_str().unwrap(),
            "--notes-key",
            &pubkey,
        ];
        let (code, text) = self.cli(&[&base[..], &[self.commit.to_string().as_str()]].concat());
        assert_eq!(code, 0, "{text}");
        let c = self.commit.to_string();
        let (code, json) = self.cli(&[&base[..], &["--output", "json", c.as_str()]].concat());
        assert_eq!(code, 0, "{json}");
        (text, serde_json::from_str(&json).unwrap())
    }

    /// `notes log --output json` with the trust policy's `notesKeys`.
    fn log_json(&self, reader: &Path) -> Value {
        let public = std::fs::read_to_string(format!("{}.pub", self.key.display())).unwrap();
        let policy = self.root.join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "sshAllowedSigners: |\n  alice@example.org {}\nnotesKeys:\n  - name: operator\n    key: {}\n",
                public.trim(),
                public.trim()
            ),
        )
        .unwrap();
        let (code, out) = self.cli(&[
            "notes",
            "log",
            "--repo",
            reader.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{out}");
        let first = out.lines().next().unwrap();
        serde_json::from_str(first).unwrap()
    }
}

fn rejected() -> OutcomeRecord {
    OutcomeRecord::new(NewRecord {
        cluster: "c1".into(),
        kind: "ApplicationInstance".into(),
        namespace: "team-a".into(),
        name: "wiki".into(),
        uid: "u-1".into(),
        generation: 3,
        outcome: "Rejected".into(),
        reason: "UnsignedCommit".into(),
        message: "the intent commit is not signed".into(),
        child_refs: BTreeMap::new(),
        time: None,
    })
    .unwrap()
}

/// The forger's version of a genuine record: the same id, the refusal turned into success.
fn forged_from(genuine: &OutcomeRecord) -> OutcomeRecord {
    let mut f = genuine.clone();
    f.outcome = "Rendered".into();
    f.reason = "CommitVerified".into();
    f.message = "rendered 4 objects".into();
    f
}

fn deliver(w: &mut NotesWriter, commit: ObjectId, record: OutcomeRecord) {
    w.enqueue([NoteEntry { commit, record }]).unwrap();
    let report = w.flush().unwrap();
    assert_eq!((report.delivered, report.pending), (1, 0), "{report:?}");
}

fn status_of<'a>(records: &'a [JudgedRecord], outcome: &str) -> Vec<&'a JudgedRecord> {
    records
        .iter()
        .filter(|r| r.record.outcome == outcome)
        .collect()
}

fn json_records(v: &Value) -> Vec<Value> {
    v["notes"][0]["records"].as_array().unwrap().clone()
}

#[test]
fn a_forged_record_with_a_genuine_id_is_flagged_and_hides_nothing() {
    let bed = Bed::new();
    let mut w = bed.writer("op");
    deliver(&mut w, bed.commit, rejected());
    let genuine = bed.judged(&bed.reader(), &bed.trust());
    assert_eq!(genuine.len(), 1);
    let genuine = genuine[0].record.clone();
    // Variants: the outcome changed under the genuine id (unsigned); the same, carrying the genuine key and
    // signature; the genuine record with only its message changed, still signed.
    let plain = forged_from(&genuine);
    let mut unsigned = plain.clone();
    unsigned.key = None;
    unsigned.signature = None;
    let mut same_outcome = genuine.clone();
    same_outcome.message = "ok after all".into();
    for f in [&unsigned, &plain, &same_outcome] {
        bed.attacker_appends(&f.to_line());
    }

    let reader = bed.reader();
    let records = bed.judged(&reader, &bed.trust());
    assert_eq!(records.len(), 4, "nothing dropped: {records:#?}");
    let g: Vec<_> = records.iter().filter(|r| r.record == genuine).collect();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].verification.status, Status::Genuine);
    assert!(
        g[0].verification.conflict,
        "the genuine record is flagged as in conflict"
    );
    for r in records.iter().filter(|r| r.record != genuine) {
        assert_eq!(r.verification.status, Status::Conflicting, "{r:#?}");
        assert!(r.verification.conflict);
        assert_eq!(r.record.id, genuine.id);
    }
    let problems: Vec<String> = records
        .iter()
        .filter_map(|r| r.verification.problem.clone())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("is not the id of its cluster")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("does not verify")),
        "{problems:?}"
    );

    let (text, json) = bed.show(&reader);
    assert!(
        text.lines()
            .any(|l| l.contains("genuine") && l.contains("Rejected/UnsignedCommit")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("conflicting") && l.contains("Rendered/CommitVerified"))
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("CONFLICT"), "{text}");
    assert!(
        text.contains("1 genuine, 0 unverified, 3 conflicting"),
        "{text}"
    );
    let recs = json_records(&json);
    assert_eq!(recs.len(), 4);
    let statuses: Vec<&str> = recs
        .iter()
        .map(|r| r["verification"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["genuine", "conflicting", "conflicting", "conflicting"],
        "{json:#}"
    );
    assert_eq!(recs[0]["outcome"], "Rejected");
    assert_eq!(recs[0]["verification"]["signer"], "notes-key-1");
    assert!(recs.iter().all(|r| r["verification"]["conflict"] == true));
    let log = bed.log_json(&reader);
    let log_records = json_records(&log);
    let statuses: Vec<&str> = log_records
        .iter()
        .map(|r| r["verification"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["genuine", "conflicting", "conflicting", "conflicting"]
    );
    assert_eq!(json_records(&log)[0]["verification"]["signer"], "operator");
}

#[test]
fn a_record_published_first_under_a_genuine_id_does_not_suppress_the_genuine_one() {
    let bed = Bed::new();
    // The id is predictable: sha256 of cluster, uid, generation and outcome. The attacker publishes a
    // "Rendered" record under the id of the Rejected record before the operator writes it, unsigned; and
    // a genuine record of another commit, copied onto this one.
    let genuine = rejected();
    bed.attacker_appends(&forged_from(&genuine).to_line());
    let elsewhere = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
    let mut replayed = genuine.clone();
    bed.signer.sign(&elsewhere, &mut replayed);
    bed.attacker_appends(&replayed.to_line());

    // The operator's writer does not take either for its own record: it writes the genuine one.
    let mut w = bed.writer("op");
    w.enqueue([NoteEntry {
        commit: bed.commit,
        record: genuine.clone(),
    }])
    .unwrap();
    let report = w.flush().unwrap();
    assert_eq!((report.delivered, report.pending), (1, 0), "{report:?}");
    assert!(
        report.attempts >= 1,
        "the genuine record was pushed: {report:?}"
    );
    // Writing it again is a no-op: the genuine copy is recognised.
    let tip = bed.remote.git(&bed.remote.bare, &["rev-parse", REF]);
    deliver(&mut w, bed.commit, genuine.clone());
    assert_eq!(bed.remote.git(&bed.remote.bare, &["rev-parse", REF]), tip);

    let reader = bed.reader();
    let records = bed.judged(&reader, &bed.trust());
    assert_eq!(records.len(), 3, "{records:#?}");
    let rejected = status_of(&records, "Rejected");
    assert_eq!(rejected.len(), 2);
    let genuine_rejected: Vec<_> = rejected
        .iter()
        .filter(|r| r.verification.status == Status::Genuine)
        .collect();
    assert_eq!(genuine_rejected.len(), 1, "{records:#?}");
    assert!(
        records
            .iter()
            .filter(|r| r.verification.status != Status::Genuine)
            .all(|r| { r.verification.status == Status::Conflicting })
    );
    assert!(records.iter().any(|r| {
        r.verification
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("copied from another commit"))
    }));
    let (text, json) = bed.show(&reader);
    assert!(
        text.lines()
            .any(|l| l.contains("genuine") && l.contains("Rejected/UnsignedCommit")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("conflicting") && l.contains("Rendered/CommitVerified")),
        "{text}"
    );
    let recs = json_records(&json);
    assert_eq!(
        recs.iter()
            .filter(|r| r["verification"]["status"] == "genuine" && r["outcome"] == "Rejected")
            .count(),
        1,
        "{json:#}"
    );
    let log = bed.log_json(&reader);
    assert_eq!(
        json_records(&log)
            .iter()
            .filter(|r| r["verification"]["status"] == "genuine")
            .count(),
        1
    );
}

#[test]
fn records_appended_without_the_key_and_legacy_records_are_unverified() {
    let bed = Bed::new();
    let mut w = bed.writer("op");
    deliver(&mut w, bed.commit, rejected());
    // A plausible record with a new, correctly computed id: unsigned, and signed by the attacker's own key.
    let mut ready = rejected();
    ready = OutcomeRecord::new(NewRecord {
        cluster: ready.cluster,
        kind: ready.kind,
        namespace: ready.namespace,
        name: ready.name,
        uid: ready.uid,
        generation: 4,
        outcome: "Ready".into(),
        reason: "HelmReleaseReady".into(),
        message: "installed".into(),
        child_refs: BTreeMap::new(),
        time: None,
    })
    .unwrap();
    bed.attacker_appends(&ready.to_line());
    let mut own = ready.clone();
    own.generation = 5;
    own.id = vworkspace_operator::git::notes::record_id("c1", &own.uid, 5, "Ready");
    NotesSigner::from_bytes(&[3; 32]).sign(&bed.commit, &mut own);
    bed.attacker_appends(&own.to_line());
    // An older operator (no key) wrote a legacy record.
    let cache = bed.root.join("legacy");
    remote::open_or_init_cache(&cache).unwrap();
    let mut legacy = NotesWriter::new(
        &cache,
        bed.remote.url(),
        "c1",
        bed.root.join("legacy-state"),
    )
    .unwrap()
    .with_credentials(Credentials::None);
    let mut old = rejected();
    old.generation = 1;
    old.id = vworkspace_operator::git::notes::record_id("c1", &old.uid, 1, "Rejected");
    deliver(&mut legacy, bed.commit, old);

    let reader = bed.reader();
    let records = bed.judged(&reader, &bed.trust());
    assert_eq!(records.len(), 4, "{records:#?}");
    let by_gen = |g: i64| records.iter().find(|r| r.record.generation == g).unwrap();
    assert_eq!(by_gen(3).verification.status, Status::Genuine);
    for g in [1, 4, 5] {
        assert_eq!(by_gen(g).verification.status, Status::Unverified, "gen {g}");
        assert!(!by_gen(g).verification.conflict);
    }
    assert!(
        by_gen(4)
            .verification
            .problem
            .as_deref()
            .unwrap()
            .contains("unsigned")
    );
    assert!(
        by_gen(1)
            .verification
            .problem
            .as_deref()
            .unwrap()
            .contains("legacy")
    );
    assert!(
        by_gen(5)
            .verification
            .problem
            .as_deref()
            .unwrap()
            .contains("not a trusted notes key")
    );
    // Without any trusted key nothing is genuine.
    let none = bed.judged(&reader, &NotesTrust::default());
    assert!(
        none.iter()
            .all(|r| r.verification.status == Status::Unverified),
        "{none:#?}"
    );

    let (text, json) = bed.show(&reader);
    assert!(
        text.contains("1 genuine, 3 unverified, 0 conflicting"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("unverified") && l.contains("gen 4  Ready")),
        "{text}"
    );
    let statuses: Vec<String> = json_records(&json)
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["generation"],
                r["verification"]["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        statuses,
        ["3:genuine", "4:unverified", "5:unverified", "1:unverified"]
    );
    let log = bed.log_json(&reader);
    assert_eq!(
        json_records(&log)
            .iter()
            .filter(|r| r["verification"]["status"] == "unverified")
            .count(),
        3
    );
    let (code, plain) = bed.cli(&["notes", "show", "--repo", reader.to_str().unwrap(), "HEAD"]);
    assert_eq!(code, 0);
    assert!(plain.contains("0 genuine, 4 unverified"), "{plain}");
}

/// `--notes-key` names a key or a key file; anything else is refused by name before it is read whole: a device
/// (`/dev/zero` would never end), a FIFO, or a file past the bound.
#[test]
fn a_notes_key_that_is_not_a_small_regular_file_is_refused() {
    let bed = Bed::new();
    let big = bed.root.join("big.pub");
    std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
    let commit = bed.commit.to_string();
    let repo = bed.remote.bare.display().to_string();
    for key in ["/dev/zero", big.to_str().unwrap()] {
        let (code, text) = bed.cli(&[
            "notes",
            "show",
            "--repo",
            &repo,
            "--notes-key",
            key,
            &commit,
        ]);
        assert_ne!(code, 0, "{key}: {text}");
        assert!(
            text.contains("--notes-key") && text.contains(key),
            "{key}: {text}"
        );
    }
}

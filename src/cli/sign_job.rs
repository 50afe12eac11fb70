//! `sign-job`: sign Pull-mode jobs with a control-plane key (docs/pull.md#signed-jobs): what the control-plane
//! side, the tests and the demo use.
//!
//! `sign-job --key FILE --cluster-id ID [JOBS.json]` reads one job object or a `{"jobs": [...]}` response (from
//! the file, or standard input) and prints it with each job's `signature` set.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::EXIT_OK;
use crate::source::pull::{job, signing};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane's private key: an unencrypted OpenSSH Ed25519 key (`ssh-keygen -t ed25519 -N ''`).
    #[arg(long)]
    pub key: PathBuf,
    /// The cluster the jobs are for (signed in: a job signed for one cluster does not verify on another).
    #[arg(long)]
    pub cluster_id: String,
    /// The job or job list; standard input when absent or `-`.
    pub input: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let key_text = read_key(&args.key)?;
    let key = signing::parse_private_key(&key_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let mut text = Vec::new();
    match args.input.as_deref() {
        None => std::io::stdin().read_to_end(&mut text)?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut text)?,
        Some(p) => {
            text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            text.len()
        }
    };
    // The rules the agent reads jobs by (I-JSON, docs/pull.md#signed-jobs): nothing is signed that it refuses.
    let value: Value = crate::source::pull::ijson::document(&text)
        .map_err(|e| anyhow::anyhow!("the input: {e}"))?;
    let signed = sign_value(&key, &args.cluster_id, value)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &signed)?;
    writeln!(out)?;
    Ok(EXIT_OK)
}

/// Sign one job object, or every job of a `{"jobs": [...]}` list.
pub fn sign_value(
    key: &ed25519_dalek::SigningKey,
    cluster_id: &str,
    value: Value,
) -> anyhow::Result<Value> {
    let sign_one = |v: Value| -> anyhow::Result<Value> {
        let mut j = job::parse_job(v)?;
        j.signature = Some(signing::sign(key, cluster_id, &j)?);
        Ok(j.to_json())
    };
    match value {
        Value::Object(mut m) if m.contains_key("jobs") => {
            let jobs = match m.remove("jobs") {
                Some(Value::Array(jobs)) => jobs,
                _ => anyhow::bail!("jobs: not an array"),
            };
            let signed = jobs
                .into_iter()
                .map(sign_one)
                .collect::<anyhow::Result<Vec<_>>>()?;
            m.insert("jobs".into(), Value::Array(signed));
            Ok(Value::Object(m))
        }
        v => sign_one(v),
    }
}

/// `sign-intent --key FILE --cluster-id ID [OBJECT]`: Push mode's signature annotation (docs/operator.md#push-mode)
/// on an ApplicationInstance or Operation (JSON or YAML, from the file or standard input), printed as JSON.
#[derive(Debug, clap::Args)]
pub struct IntentArgs {
    /// The control plane's private key: an unencrypted OpenSSH Ed25519 key.
    #[arg(long)]
    pub key: PathBuf,
    /// The cluster the intent is for.
    #[arg(long)]
    pub cluster_id: String,
    /// The intent; standard input when absent or `-`.
    pub input: Option<PathBuf>,
}

pub fn run_intent(args: IntentArgs) -> anyhow::Result<u8> {
    let key_text = read_key(&args.key)?;
    let key = signing::parse_private_key(&key_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let mut text = String::new();
    match args.input.as_deref() {
        None => std::io::stdin().read_to_string(&mut text)?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_string(&mut text)?,
        Some(p) => {
            text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            text.len()
        }
    };
    let mut obj: Value = serde_saphyr::from_str(&text).context("the input is not YAML or JSON")?;
    let annotation = crate::source::push::sign_intent(&key, &args.cluster_id, &obj)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow::anyhow!("metadata: missing or not a mapping"))?;
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    annotations
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("metadata.annotations: not a mapping"))?
        .insert(
            crate::source::push::SIGNATURE_ANNOTATION.into(),
            Value::String(annotation),
        );
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &obj)?;
    writeln!(out)?;
    Ok(EXIT_OK)
}

/// Largest private key file read, in bytes.
const MAX_KEY_BYTES: u64 = 64 << 10;

/// Read a private key file: a regular file (a FIFO would block) of bounded size.
fn read_key(path: &std::path::Path) -> anyhow::Result<String> {
    crate::git::bounded::read_to_string(path, MAX_KEY_BYTES)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
}

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
use crate::pull::{job, signing};

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
    let key_text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
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
    let value: Value = serde_json::from_slice(&text).context("the input is not JSON")?;
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

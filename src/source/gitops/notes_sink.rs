//! GitOps outcomes: each is a note record on the intent's commit, deduplicated in memory, persisted in the
//! pending store, and pushed in batches (compare-and-swap on the notes ref).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gix::ObjectId;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::git::notes::{NoteEntry, NotesWriter, OutcomeRecord};
use crate::git::remote::Credentials;
use crate::source::{Outcome, OutcomeSink};

/// Outcomes go to git notes: deduplicated in memory, persisted in the pending store, pushed in batches.
pub struct NotesSink {
    /// What was offered already, by object uid: the newest generation and its records (`commit/id`). A filter
    /// only (the writer skips a record already pending or on the remote): a reconcile of a settled object offers
    /// its outcome again, and is dropped here. Older generations are not kept (a reconcile works on the current
    /// one), so this holds one entry per object, not one per outcome ever recorded (it grew with every update).
    seen: Mutex<HashMap<String, (i64, Vec<String>)>>,
    tx: mpsc::UnboundedSender<NoteEntry>,
    /// Records sent to the worker so far, and (from the worker) how many it has put in the pending store.
    sent: std::sync::atomic::AtomicU64,
    stored: tokio::sync::watch::Receiver<u64>,
}

/// The notes worker: persists new records in the pending store as they arrive and pushes them in batches
/// (at most one push per batching window while records keep coming), retrying on an interval until every
/// record is on the remote. Undelivered records stay in the pending store across restarts.
pub struct NotesWorker {
    writer: Arc<Mutex<NotesWriter>>,
    rx: mpsc::UnboundedReceiver<NoteEntry>,
    interval: Duration,
    batch_window: Duration,
    /// The window in force: the configured one, widened after a push that rewrote a large note.
    window: Duration,
    metrics: Option<crate::metrics::Metrics>,
    /// Records taken from the channel and handed to the writer (stored, or pending in memory when the store
    /// cannot be written).
    stored: tokio::sync::watch::Sender<u64>,
}

/// How the notes worker paces its pushes.
#[derive(Debug, Clone, Copy)]
pub struct NotesTiming {
    /// How often undelivered records are retried.
    pub retry_interval: Duration,
    /// After a new record arrives, how long the worker keeps collecting before it pushes: a burst of outcomes
    /// (a thousand instances turning Ready) becomes a few pushes instead of one per record. Records are in the
    /// pending store from the moment they arrive, so the window delays delivery, never durability.
    pub batch_window: Duration,
}

impl NotesTiming {
    /// Retry every `retry_interval`; the default batching window of 2 s.
    pub fn new(retry_interval: Duration) -> Self {
        Self {
            retry_interval,
            batch_window: DEFAULT_BATCH_WINDOW,
        }
    }
}

/// How the notes writer reaches the remote and signs its records.
pub struct NotesAccess {
    pub credentials: Credentials,
    /// The operator's notes key; `None`: records are written unsigned (readers show them as unverified).
    pub signer: Option<Arc<crate::git::notes::auth::NotesSigner>>,
}

/// The default notes batching window.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_secs(2);

/// The longest the window grows to for large notes: how late a record may reach the remote in a long burst.
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(30);

/// The batching window after a push whose largest note held `largest_note` records: 2 ms a record (2 s per
/// 1,000), never below the configured window, never above [`MAX_BATCH_WINDOW`] (nor below the configured
/// window if that is longer). A commit's note holds a record for every intent the commit changed and each push
/// rewrites it whole; with a fixed window, a commit of N intents costs N pushes of a growing note, quadratic
/// in N. Spacing pushes in proportion to the note makes the pushes of one burst grow as a geometric series:
/// their total work is linear in N, and a small cluster (a thousand intents or fewer) keeps the 2 s window.
pub fn batch_window(configured: Duration, largest_note: usize) -> Duration {
    let by_size = Duration::from_millis(2u64.saturating_mul(largest_note as u64));
    by_size.min(MAX_BATCH_WINDOW).max(configured)
}

impl NotesSink {
    /// A sink and its worker. `local_repo` is a bare repository the notes are built in (created if needed).
    pub fn new(
        cluster_id: &str,
        local_repo: PathBuf,
        remote_url: &str,
        access: NotesAccess,
        state_dir: PathBuf,
        timing: NotesTiming,
        metrics: Option<crate::metrics::Metrics>,
    ) -> anyhow::Result<(Arc<Self>, NotesWorker)> {
        crate::git::remote::open_or_init_cache(&local_repo)?;
        let mut writer = NotesWriter::new(local_repo, remote_url, cluster_id, state_dir)?
            .with_credentials(access.credentials);
        if let Some(signer) = access.signer {
            writer = writer.with_signer(signer);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (stored_tx, stored) = tokio::sync::watch::channel(0);
        Ok((
            Arc::new(Self {
                seen: Mutex::default(),
                tx,
                sent: Default::default(),
                stored,
            }),
            NotesWorker {
                writer: Arc::new(Mutex::new(writer)),
                rx,
                interval: timing.retry_interval,
                batch_window: timing.batch_window,
                window: timing.batch_window,
                metrics,
                stored: stored_tx,
            },
        ))
    }
}

/// Objects the filter remembers at most; beyond, it starts again empty (objects deleted long ago are not kept).
const SEEN_OBJECTS: usize = 1 << 16;

/// Whether a record (`key`: `commit/id`) of an object's generation is offered for the first time; remembers it.
fn first_offer(
    seen: &Mutex<HashMap<String, (i64, Vec<String>)>>,
    uid: &str,
    generation: i64,
    key: String,
) -> bool {
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.len() >= SEEN_OBJECTS && !seen.contains_key(uid) {
        seen.clear();
    }
    let (newest, keys) = seen
        .entry(uid.to_string())
        .or_insert((generation, Vec::new()));
    if generation < *newest {
        return true; // an older generation's outcome (a stale copy): the writer decides
    }
    if generation > *newest {
        *newest = generation;
        keys.clear();
    }
    if keys.contains(&key) {
        return false;
    }
    keys.push(key);
    true
}

impl OutcomeSink for NotesSink {
    fn record(&self, o: Outcome) {
        let r = o.record;
        let Ok(commit) = ObjectId::from_hex(o.intent_commit.as_bytes()) else {
            warn!(object = %format!("{}/{}/{}", r.kind, r.namespace, r.name), "outcome without an intent commit is not recorded");
            return;
        };
        let id = crate::git::notes::record_id(&r.cluster, &r.uid, r.generation, &r.outcome);
        if !first_offer(&self.seen, &r.uid, r.generation, format!("{commit}/{id}")) {
            return;
        }
        match OutcomeRecord::new(r) {
            Ok(record) => {
                if self.tx.send(NoteEntry { commit, record }).is_ok() {
                    self.sent.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
            }
            Err(e) => warn!(error = %e, "outcome record refused"),
        }
    }

    fn settled(&self) -> futures::future::BoxFuture<'_, ()> {
        let target = self.sent.load(std::sync::atomic::Ordering::Acquire);
        let mut stored = self.stored.clone();
        Box::pin(async move {
            // An error means the worker is gone (the operator is stopping): nothing more to wait for.
            let _ = stored.wait_for(|n| *n >= target).await;
        })
    }
}

impl NotesWorker {
    /// Run until `stop` turns true; a last flush is attempted on the way out.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let mut batch = Vec::new();
            let mut stopping = tokio::select! {
                _ = stop.changed() => true,
                _ = tokio::time::sleep(self.interval) => false,
                Some(entry) = self.rx.recv() => { batch.push(entry); false }
            };
            if !batch.is_empty() && !stopping {
                // Collect the rest of the burst, persisting as it comes, then push once.
                let window = tokio::time::sleep(self.window);
                tokio::pin!(window);
                loop {
                    while let Ok(entry) = self.rx.try_recv() {
                        batch.push(entry);
                    }
                    self.persist(std::mem::take(&mut batch)).await;
                    tokio::select! {
                        _ = &mut window => break,
                        _ = stop.changed() => { stopping = true; break }
                        Some(entry) = self.rx.recv() => batch.push(entry),
                    }
                }
            }
            while let Ok(entry) = self.rx.try_recv() {
                batch.push(entry);
            }
            self.persist(batch).await;
            let writer = self.writer.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut w = writer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if w.pending().is_empty() {
                    return Ok(None);
                }
                // When each record was observed: a flush delivers all of them or none.
                let observed: Vec<String> =
                    w.pending().iter().map(|e| e.record.time.clone()).collect();
                w.flush().map(|report| Some((report, observed)))
            })
            .await;
            match result {
                Ok(Ok(Some((report, observed)))) => {
                    self.window = batch_window(self.batch_window, report.largest_note);
                    info!(
                        delivered = report.delivered,
                        pending = report.pending,
                        largest_note = report.largest_note,
                        next_window_ms = self.window.as_millis() as u64,
                        "notes flushed"
                    );
                    if let Some(m) = &self.metrics {
                        m.set_outcomes_pending(report.pending);
                        if report.delivered > 0 {
                            m.outcomes_delivered(
                                crate::metrics::Channel::Notes,
                                observed.iter().map(String::as_str),
                            );
                        }
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "notes not delivered yet; kept in the pending store")
                }
                Err(e) => warn!(error = %e, "notes worker task failed"),
            }
            if stopping || *stop.borrow() {
                return;
            }
        }
    }

    /// Add records to the pending store (durable before they are pushed). A failure to write the store is
    /// logged and the records stay in memory for the flush.
    async fn persist(&self, batch: Vec<NoteEntry>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let writer = self.writer.clone();
        let result = tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .enqueue(batch)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "notes: writing the pending store failed"),
            Err(e) => warn!(error = %e, "notes worker task failed"),
        }
        self.stored.send_modify(|n| *n += count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window stays as configured for notes of a thousand records or fewer, grows 2 ms a record beyond,
    /// and stops at the cap (unless the configured window is longer).
    #[test]
    fn the_window_grows_with_the_largest_note_pushed_up_to_the_cap() {
        let two = Duration::from_secs(2);
        assert_eq!(batch_window(two, 0), two);
        assert_eq!(batch_window(two, 1_000), two);
        assert_eq!(batch_window(two, 5_000), Duration::from_secs(10));
        assert_eq!(batch_window(two, 10_000), Duration::from_secs(20));
        assert_eq!(batch_window(two, 1_000_000), MAX_BATCH_WINDOW);
        assert_eq!(batch_window(two, usize::MAX), MAX_BATCH_WINDOW);
        let long = Duration::from_secs(60);
        assert_eq!(batch_window(long, 1_000_000), long);
        let short = Duration::from_millis(200);
        assert_eq!(batch_window(short, 50), short);
        assert_eq!(batch_window(short, 500), Duration::from_secs(1));
    }

    #[test]
    fn the_filter_drops_repeats_and_keeps_one_generation_per_object() {
        let seen = Mutex::default();
        assert!(first_offer(&seen, "u1", 1, "c1/ready".into()));
        assert!(!first_offer(&seen, "u1", 1, "c1/ready".into()), "a repeat");
        assert!(first_offer(&seen, "u1", 1, "c1/degraded".into()));
        assert!(!first_offer(&seen, "u1", 1, "c1/degraded".into()));
        assert!(
            first_offer(&seen, "u2", 1, "c1/ready".into()),
            "another object"
        );
        // A new generation replaces the old one's records.
        assert!(first_offer(&seen, "u1", 2, "c2/ready".into()));
        assert!(!first_offer(&seen, "u1", 2, "c2/ready".into()));
        assert_eq!(
            seen.lock().unwrap()["u1"],
            (2, vec!["c2/ready".to_string()])
        );
        // An older generation's outcome is passed on (the writer skips what it already has), not remembered.
        assert!(first_offer(&seen, "u1", 1, "c1/ready".into()));
        assert_eq!(seen.lock().unwrap()["u1"].0, 2);
        // Ten thousand updates of one object hold one entry.
        for g in 3..10_000 {
            assert!(first_offer(&seen, "u1", g, format!("c{g}/ready")));
        }
        assert_eq!(seen.lock().unwrap()["u1"].1.len(), 1);
        // The number of objects is bounded.
        for i in 0..SEEN_OBJECTS + 10 {
            first_offer(&seen, &format!("o{i}"), 1, "c/ready".into());
        }
        assert!(seen.lock().unwrap().len() <= SEEN_OBJECTS);
    }
}

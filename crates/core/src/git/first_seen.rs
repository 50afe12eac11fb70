//! When the operator first saw each commit of its branch, kept beside its clone.
//!
//! A commit's committer date is chosen by whoever commits. Judged at that date alone, a key that expired
//! (`valid-before`) long ago still signs: its holder dates the commit before the expiry. The operator
//! therefore judges SSH key validity over the span from the committer date to the time it **first saw** the
//! commit ([`super::sigcheck::Span`]): a commit signed before the key's end and fetched before it keeps verifying
//! after the key expired, and one that appears after the end does not, whatever date it claims.
//!
//! The record is one line per commit, `<id> <seconds since the epoch>`, appended and never rewritten; a line
//! that does not parse is skipped (that commit counts as first seen at the next sync: later, so stricter).
//! The first sync of an empty record has nothing to go by: the history present then is recorded at its
//! committer dates (never later than now), the trust an operator starts from; the commits that arrive after
//! are recorded when they are fetched.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gix::ObjectId;

/// The first-seen record of one branch clone.
#[derive(Debug)]
pub struct FirstSeen {
    path: PathBuf,
    seen: HashMap<ObjectId, i64>,
    /// The record did not exist (or was empty) when opened.
    fresh: bool,
}

impl FirstSeen {
    /// Load the record at `path` (missing: empty and fresh).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut seen = HashMap::new();
        for line in text.lines() {
            let Some((id, time)) = line.split_once(' ') else {
                continue;
            };
            let (Ok(id), Ok(time)) = (ObjectId::from_hex(id.as_bytes()), time.parse::<i64>())
            else {
                continue;
            };
            seen.entry(id).or_insert(time);
        }
        Ok(Self {
            path: path.to_path_buf(),
            fresh: seen.is_empty(),
            seen,
        })
    }

    /// The times recorded, by commit.
    pub fn times(&self) -> &HashMap<ObjectId, i64> {
        &self.seen
    }

    /// Record the `commits` not recorded yet (id and committer time) as first seen at `now`, or, when the
    /// record was fresh, at their committer time (at most `now`). Appended to the file.
    pub fn record(
        &mut self,
        commits: impl IntoIterator<Item = (ObjectId, i64)>,
        now: i64,
    ) -> std::io::Result<()> {
        let mut lines = String::new();
        for (id, committed) in commits {
            if self.seen.contains_key(&id) {
                continue;
            }
            let at = if self.fresh { committed.min(now) } else { now };
            self.seen.insert(id, at);
            lines.push_str(&format!("{id} {at}\n"));
        }
        self.fresh = self.fresh && self.seen.is_empty();
        if lines.is_empty() {
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(lines.as_bytes())?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn the_first_sync_records_committer_times_and_later_ones_the_time_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("first-seen");
        let mut fs = FirstSeen::open(&path).unwrap();
        // The history present at the first sync: its dates, never later than now.
        fs.record([(oid(1), 100), (oid(2), 5_000)], 1_000).unwrap();
        assert_eq!(fs.times()[&oid(1)], 100);
        assert_eq!(fs.times()[&oid(2)], 1_000);
        // Then: when seen, whatever the commit claims; a commit already recorded keeps its time.
        fs.record([(oid(3), 50), (oid(1), 7)], 2_000).unwrap();
        assert_eq!(fs.times()[&oid(3)], 2_000);
        assert_eq!(fs.times()[&oid(1)], 100);
        // Kept across restarts; a damaged line is skipped.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"garbage\n").unwrap();
        let mut fs = FirstSeen::open(&path).unwrap();
        assert_eq!(fs.times().len(), 3);
        assert_eq!(fs.times()[&oid(3)], 2_000);
        fs.record([(oid(4), 10)], 3_000).unwrap();
        assert_eq!(fs.times()[&oid(4)], 3_000);
    }
}

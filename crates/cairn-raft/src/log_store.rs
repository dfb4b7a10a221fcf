//! The Raft log and vote in RocksDB.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, StorageIOError, Vote};
use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

use crate::{decode, encode, Entry, LogId, NodeId, StorageError, TypeConfig};

const COLUMN_FAMILIES: &[&str] = &[CF_LOG, CF_META];
pub(crate) const CF_LOG: &str = "raft_log";
const CF_META: &str = "raft_meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
/// One replication message carries at most this many bytes of entries (and at least one
/// entry), well under the peer listener's body limit.
const MAX_READ_BYTES: usize = 8 << 20;

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The log's memtables: each flush frees the WAL files behind it for reuse.
const WRITE_BUFFER_BYTES: usize = 8 << 20;
/// WAL files kept for reuse. A sync of a reused file overwrites blocks the file already
/// has, so it writes no file size or extent change: on this project's test machine one
/// `fdatasync` of 8 KiB took 150 µs instead of 215-270 µs when appending, and 25% less CPU.
const RECYCLED_WAL_FILES: usize = 4;

/// Opens (creating if needed) the Raft log's RocksDB: the log entries and the vote,
/// committed id and purge mark. Every write uses the WAL, which reuses its files.
pub(crate) fn open_log_db(path: &std::path::Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_recycle_log_file_num(RECYCLED_WAL_FILES);
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts.set_max_total_wal_size((RECYCLED_WAL_FILES * WRITE_BUFFER_BYTES) as u64);
    // Both columns flush together, so a WAL file is free as soon as one flush is done: the
    // meta column takes a write with almost every append.
    opts.set_atomic_flush(true);
    // Appends are written without a sync and then synced together by `flush_wal(true)`:
    // their WAL records wait in memory until then, one write call per append.
    opts.set_manual_wal_flush(true);
    let cfs = COLUMN_FAMILIES.iter().map(|name| rocksdb::ColumnFamilyDescriptor::new(*name, opts.clone()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?))
}

/// Most entries, and most encoded bytes, kept in [`Recent`].
const RECENT_ENTRIES: usize = 4096;
const RECENT_BYTES: usize = 64 << 20;

/// The newest entries, as appended. Every entry is read back right after it is written,
/// by each replication stream and by apply; serving those reads from memory saves a
/// RocksDB seek and a decode per entry and reader. Always a contiguous suffix of the log
/// (possibly empty): append extends it, truncate and purge cut it.
#[derive(Default)]
struct Recent {
    /// Entries with their encoded size, in index order.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn push(&mut self, entry: Entry, size: usize) {
        let follows = self.entries.back().is_none_or(|(last, _)| last.log_id.index + 1 == entry.log_id.index);
        if !follows {
            self.clear();
        }
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > RECENT_ENTRIES || (self.bytes > RECENT_BYTES && self.entries.len() > 1) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops entries from `index` on.
    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.log_id.index >= index) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// Drops entries up to `index`.
    fn purge(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    /// The entries from `start` within `range` (up to `max_bytes`, at least one), if this
    /// holds all of them: it does when `start` is cached, being a suffix of the log.
    fn read(&self, start: u64, range: &impl RangeBounds<u64>, max_bytes: usize) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        if start < first {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for (entry, size) in self.entries.iter().skip(skip) {
            if !range.contains(&entry.log_id.index) || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            bytes += size;
            out.push(entry.clone());
        }
        Some(out)
    }
}

/// Log store handle; clones share the database, the recent entries and the committed id.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    /// The state machine, persisted before applied entries are purged.
    state: Arc<cairn_store::Store>,
    recent: Arc<Mutex<Recent>>,
    /// The newest committed log id openraft reported, not yet written: it rides along with
    /// the next append's batch instead of costing a write of its own per commit. Any
    /// committed id is a correct value to find at start-up (openraft re-applies up to it),
    /// so a crash that loses the newest only means applying more after the election.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, state: Arc<cairn_store::Store>) -> Self {
        LogStore { db, state, recent: Arc::default(), committed: Arc::default() }
    }

    fn committed(&self) -> MutexGuard<'_, Option<Option<LogId>>> {
        self.committed.lock().unwrap_or_else(|poisoned| {
            self.committed.clear_poison();
            poisoned.into_inner()
        })
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        // A panic while holding it may have left it half-updated: start empty.
        self.recent.lock().unwrap_or_else(|poisoned| {
            let mut recent = poisoned.into_inner();
            recent.clear();
            self.recent.clear_poison();
            recent
        })
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StorageError> {
        self.db.cf_handle(name).ok_or_else(|| {
            io_err(
                ErrorSubject::Store,
                ErrorVerb::Read,
                std::io::Error::other(format!("column family {name} missing")),
            )
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        let raw = self
            .db
            .get_cf(self.cf(CF_META)?, key)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, e))?;
        raw.map(|b| decode(&b).map_err(|e| io_err(subject, ErrorVerb::Read, *e))).transpose()
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, *e))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, key, bytes);
        self.db.write_opt(batch, &opts).map_err(|e| io_err(subject, ErrorVerb::Write, e))
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(LAST_PURGED, ErrorSubject::Logs)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range, usize::MAX)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.read_range(start..end, MAX_READ_BYTES)
    }
}

impl LogStore {
    fn read_range(&self, range: impl RangeBounds<u64>, max_bytes: usize) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        if let Some(entries) = self.recent().read(start, &range, max_bytes) {
            return Ok(entries);
        }
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LOG)?);
        it.seek(index_key(start));
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let index = u64::from_be_bytes(key.try_into().map_err(|_| {
                io_err(ErrorSubject::Logs, ErrorVerb::Read, std::io::Error::other("bad log key"))
            })?);
            if !range.contains(&index) || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            bytes += value.len();
            let entry: Entry =
                decode(value).map_err(|e| io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, *e))?;
            out.push(entry);
            it.next();
        }
        it.status().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.last_purged()?;
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LOG)?);
        it.seek_to_last();
        let last = match it.value() {
            Some(v) => Some(
                *decode::<Entry>(v)
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, *e))?
                    .get_log_id(),
            ),
            None => None,
        };
        it.status().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote, true, ErrorSubject::Vote)
    }

    /// The vote as saved, but never as a granted leadership.
    ///
    /// openraft 0.9 restarts a member whose saved vote made it leader as leader of the same
    /// term, with the term's first entry as its read index floor; its commit index comes
    /// back from `save_committed`, which may trail what it acknowledged before the crash
    /// (we write it with the next append). Its first linearizable reads could then miss
    /// acknowledged writes (seen as such in `tests/tests/cluster.rs`). As an uncommitted
    /// vote the member restarts as a follower that voted for itself in that term, the same
    /// promise to the others, and leads again only through an election, whose blank entry
    /// covers everything committed before; a restart costs an election, as in etcd.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        let vote: Option<Vote<NodeId>> = self.get_meta(VOTE, ErrorSubject::Vote)?;
        Ok(vote.map(|v| Vote { committed: false, ..v }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        *self.committed() = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(pending) = *self.committed() {
            return Ok(pending);
        }
        Ok(self.get_meta::<Option<LogId>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    /// Writes the entries (readable at once), then syncs the WAL and only then reports them
    /// durable. One sync covers every entry of the call.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut appended = Vec::new();
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, *e))?;
            batch.put_cf(cf, index_key(entry.log_id.index), &bytes);
            appended.push((entry, bytes.len()));
        }
        let committed = self.committed().take();
        if let Some(committed) = committed {
            let bytes = encode(&committed).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, *e))?;
            batch.put_cf(self.cf(CF_META)?, COMMITTED, bytes);
        }
        if let Err(e) = self.db.write(batch) {
            self.recent().clear();
            return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e));
        }
        let mut recent = self.recent();
        for (entry, size) in appended {
            recent.push(entry, size);
        }
        drop(recent);
        // Synced right here, blocking Raft's thread for the fsync. openraft 0.9 waits for this
        // sync before it does anything else with the entries, and Raft has a runtime of its
        // own (see cairn-server's `node::Consensus`), so little else could run meanwhile; a
        // sync on the blocking pool cost two thread wake-ups per append on Raft's critical
        // path. Inline, puts rose 7-17% at 64 clients and 4-14% at 256 in paired runs.
        let result = self.db.flush_wal(true).map_err(std::io::Error::other);
        callback.log_io_completed(result);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent().truncate(log_id.index);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_LOG)?, index_key(log_id.index), index_key(u64::MAX));
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    /// Purged entries are applied, but applies skip the WAL: the state machine reaches disk
    /// first, or a crash could leave it behind a log that no longer holds what it lacks.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.persist())
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        self.recent().purge(log_id.index);
        let bytes = encode(&log_id).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, *e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, LAST_PURGED, bytes);
        batch.delete_range_cf(self.cf(CF_LOG)?, index_key(0), index_key(log_id.index + 1));
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    fn filled(range: std::ops::Range<u64>) -> Recent {
        let mut recent = Recent::default();
        for i in range {
            recent.push(entry(i), 10);
        }
        recent
    }

    #[test]
    fn recent_serves_only_ranges_it_holds_whole() {
        let recent = filled(5..10);
        assert_eq!(recent.read(4, &(4..8), usize::MAX), None, "5 is its first: 4 is on disk only");
        assert_eq!(indexes(&recent.read(6, &(6..8), usize::MAX).unwrap()), [6, 7]);
        assert_eq!(indexes(&recent.read(7, &(7..), usize::MAX).unwrap()), [7, 8, 9]);
        assert_eq!(indexes(&recent.read(10, &(10..12), usize::MAX).unwrap()), Vec::<u64>::new());
        // A byte budget stops the read, but never before one entry.
        assert_eq!(indexes(&recent.read(5, &(5..10), 25).unwrap()), [5, 6, 7]);
        assert_eq!(indexes(&recent.read(5, &(5..10), 1).unwrap()), [5]);
    }

    #[test]
    fn recent_stays_a_suffix_of_the_log() {
        let mut recent = filled(1..6);
        recent.truncate(4);
        assert_eq!(indexes(&recent.read(1, &(1..), usize::MAX).unwrap()), [1, 2, 3]);
        recent.push(entry(4), 10);
        recent.purge(2);
        assert_eq!(recent.read(2, &(2..), usize::MAX), None);
        assert_eq!(indexes(&recent.read(3, &(3..), usize::MAX).unwrap()), [3, 4]);
        assert_eq!(recent.bytes, 20);
        // A gap (which append never makes) starts it afresh rather than mislead.
        recent.push(entry(9), 10);
        assert_eq!(recent.read(4, &(4..), usize::MAX), None);
        assert_eq!(indexes(&recent.read(9, &(9..), usize::MAX).unwrap()), [9]);
    }

    #[test]
    fn recent_is_bounded() {
        let recent = filled(0..RECENT_ENTRIES as u64 + 10);
        assert_eq!(recent.entries.len(), RECENT_ENTRIES);
        assert_eq!(recent.first_index(), Some(10));
        let mut big = Recent::default();
        for i in 0..4 {
            big.push(entry(i), RECENT_BYTES / 2);
        }
        assert_eq!(big.entries.len(), 2);
        assert_eq!(big.bytes, RECENT_BYTES);
    }
}

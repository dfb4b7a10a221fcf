//! The Raft log and vote in RocksDB.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, StorageIOError, Vote};
use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

use crate::{decode, encode, Entry, LogId, NodeId, StorageError, TypeConfig};

pub(crate) const COLUMN_FAMILIES: &[&str] = &[CF_LOG, CF_META];
const CF_LOG: &str = "raft_log";
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

/// Log store handle; clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        LogStore { db }
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

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_meta(COMMITTED, &committed, false, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    /// Writes the entries (readable at once), then syncs the WAL off the async runtime and
    /// only then reports them durable. One sync covers every entry of the call.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, *e))?;
            batch.put_cf(cf, index_key(entry.log_id.index), bytes);
        }
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let result = db.flush_wal(true).map_err(std::io::Error::other);
            callback.log_io_completed(result);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_LOG)?, index_key(log_id.index), index_key(u64::MAX));
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = encode(&log_id).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, *e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, LAST_PURGED, bytes);
        batch.delete_range_cf(self.cf(CF_LOG)?, index_key(0), index_key(log_id.index + 1));
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

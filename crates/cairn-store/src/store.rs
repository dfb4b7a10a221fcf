use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_api::{ApiError, Node, Stat};
use rocksdb::{ColumnFamily, SnapshotWithThreadMode, WriteBatch, DB};

use crate::keys::{self, meta};
use crate::kv::{Cf, Cursor, DbCursor, KvRead, Layer, Merged, ALL_CFS, CF_COUNT};
use crate::latest::LatestCache;
use crate::{Apply, ReadView};

/// Column families of the state machine's database.
pub const COLUMN_FAMILIES: &[&str] = &CF_NAMES;
const CF_NAMES: [&str; CF_COUNT] = ["sm_stat", "sm_data", "sm_events", "sm_meta", "sm_leases", "sm_live"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt state-machine data: {0}")]
    Corrupt(String),
    #[error("column family {0} is missing: open the database with cairn_store::COLUMN_FAMILIES")]
    MissingColumnFamily(&'static str),
    #[error(
        "the state was written with key layout {found}, and this Cairn reads layout {ours}: start \
         this member with an empty data directory (it catches up from the others), or run the \
         Cairn that wrote it"
    )]
    Layout { found: u64, ours: u64 },
    #[error("an apply panicked part way, so the state in memory is unsure: restart this member (it applies its log again)")]
    Interrupted,
}

impl From<bincode::Error> for StoreError {
    fn from(e: bincode::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(format!("storage error: {e}"))
    }
}

/// The state machine. One apply at a time; reads of the newest state in memory run beside
/// it, and read views wait for it (see [`Store::read`]).
pub struct Store {
    db: Arc<DB>,
    revision: AtomicU64,
    compact_revision: AtomicU64,
    /// Newest committed stats and values, for apply only.
    latest: Mutex<LatestCache>,
    /// Applied writes not yet in RocksDB. An apply holds it from start to commit.
    pending: Mutex<Pending>,
}

/// Writes of committed applies that RocksDB has not been given yet (see [`PENDING_BYTES`]).
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) layers: [Layer; CF_COUNT],
    /// Keys and values added since the last hand-over; an estimate (overwrites count twice,
    /// and so do writes an apply took back).
    pub(crate) bytes: usize,
}

/// Applies reach RocksDB in batches of about this many bytes, not one by one. Every put
/// writes a stat version under its path, which lands at a random place in the stat column's
/// memtable: a skiplist search missing the cache at every level, the largest single cost of
/// a put on followers (10-12% of their CPU at 256 clients). Handed over sorted and by the
/// thousand, each key goes in right after the one before it. RocksDB only ever holds the
/// state after some apply, marker included, so a crash loses nothing the log cannot replay.
/// 1 MiB (about 1,700 puts) measured best: 256 KiB gave 0.91x and 4 MiB 0.93x the puts at
/// 256 clients (four alternating pairs each).
pub(crate) const PENDING_BYTES: usize = 1 << 20;

pub(crate) fn read_u64(bytes: Option<Vec<u8>>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => Ok(u64::from_be_bytes(
            b.as_slice().try_into().map_err(|_| StoreError::Corrupt("bad u64 in meta".into()))?,
        )),
    }
}

impl Store {
    /// Opens the state machine over a database that has [`COLUMN_FAMILIES`].
    pub fn open(db: Arc<DB>) -> Result<Self, StoreError> {
        for name in CF_NAMES {
            if db.cf_handle(name).is_none() {
                return Err(StoreError::MissingColumnFamily(name));
            }
        }
        let store = Store {
            db,
            revision: AtomicU64::new(0),
            compact_revision: AtomicU64::new(0),
            latest: Mutex::default(),
            pending: Mutex::default(),
        };
        store.reload()?;
        store.check_layout()?;
        store.ensure_root()?;
        Ok(store)
    }

    /// Refuses state written with another key layout, which this code would misread; brings
    /// layout 2 (no live column) up to date; marks a new state with its own.
    pub(crate) fn check_layout(&self) -> Result<(), StoreError> {
        let live = self.live();
        match live.get(Cf::Meta, meta::LAYOUT)? {
            Some(bytes) => match read_u64(Some(bytes))? {
                keys::LAYOUT => Ok(()),
                2 => self.build_live_column(),
                other => Err(StoreError::Layout { found: other, ours: keys::LAYOUT }),
            },
            None if self.revision() > 0 => Err(StoreError::Layout { found: 1, ours: keys::LAYOUT }),
            None => {
                self.db.put_cf(self.cf(Cf::Meta)?, meta::LAYOUT, keys::LAYOUT.to_be_bytes())?;
                Ok(())
            }
        }
    }

    /// Fills the live column from the stat column: a path exists now if its newest version
    /// (the first of its keys) is not a deletion. Then marks the state with this layout.
    /// One pass over the stat column, in batches; only for a state written by layout 2.
    fn build_live_column(&self) -> Result<(), StoreError> {
        let live_cf = self.cf(Cf::Live)?;
        let mut batch = WriteBatch::default();
        let mut previous: Option<Vec<u8>> = None;
        let view = self.live();
        let mut c = view.cursor(Cf::Stat);
        c.seek(b"");
        while c.valid() {
            let Some((path, _)) = keys::split_version_key(c.key()) else {
                return Err(StoreError::Corrupt("bad stat key".into()));
            };
            if previous.as_deref() != Some(path) {
                if path != b"/" && bincode::deserialize::<Option<Stat>>(c.value())?.is_some() {
                    batch.put_cf(live_cf, path, b"");
                }
                previous = Some(path.to_vec());
                if batch.size_in_bytes() >= 1 << 20 {
                    self.db.write_opt(std::mem::take(&mut batch), &unlogged())?;
                }
            }
            c.next();
        }
        c.status()?;
        batch.put_cf(self.cf(Cf::Meta)?, meta::LAYOUT, keys::LAYOUT.to_be_bytes());
        self.db.write_opt(batch, &unlogged())?;
        // Unlogged like applies: flushed now, so the layout mark never outlives the column.
        flush_columns(&self.db)
    }

    /// The root always exists; it is written at revision 0 on every member alike.
    fn ensure_root(&self) -> Result<(), StoreError> {
        let live = self.live();
        let mut batch = WriteBatch::default();
        if live.get(Cf::Stat, &keys::version_key("/", 0))?.is_none() {
            let root: Option<Stat> = Some(Stat::default());
            batch.put_cf(self.cf(Cf::Stat)?, keys::version_key("/", 0), bincode::serialize(&root)?);
        }
        if live.get(Cf::Data, &keys::data_key("/", 0))?.is_none() {
            batch.put_cf(self.cf(Cf::Data)?, keys::data_key("/", 0), b"");
        }
        if !batch.is_empty() {
            self.db.write(batch)?;
        }
        Ok(())
    }

    /// Reloads the cached counters from disk (after open or a snapshot install).
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let mut latest = self.latest();
        latest.clear();
        let live = self.live();
        self.revision.store(read_u64(live.get(Cf::Meta, meta::REVISION)?)?, Ordering::SeqCst);
        self.compact_revision.store(read_u64(live.get(Cf::Meta, meta::COMPACT_REVISION)?)?, Ordering::SeqCst);
        Ok(())
    }

    /// The newest committed version of `path` and the revision it is current at, from
    /// memory; `None` when it is not kept there (read it from disk then), whether or not it
    /// exists.
    pub fn newest_in_memory(&self, path: &str) -> Option<(Node, u64)> {
        let latest = self.latest();
        let (stat, value) = latest.node(path)?;
        // Apply moves the revision only while it holds the cache, so the two agree.
        let revision = self.revision();
        drop(latest);
        Some((Node { path: path.to_owned(), value, stat }, revision))
    }

    /// The in-memory newest state: apply keeps it, and reads of the newest state use it.
    pub(crate) fn latest(&self) -> MutexGuard<'_, LatestCache> {
        self.latest.lock().unwrap_or_else(|poisoned| {
            // A panic mid-update may have left entries stale: start empty.
            let mut cache = poisoned.into_inner();
            cache.clear();
            self.latest.clear_poison();
            cache
        })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    pub(crate) fn cf(&self, cf: Cf) -> Result<&ColumnFamily, StoreError> {
        cf_handle(&self.db, cf)
    }

    /// The revision of the last applied write.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    /// Revisions below this one are no longer readable.
    pub fn compact_revision(&self) -> u64 {
        self.compact_revision.load(Ordering::SeqCst)
    }

    pub(crate) fn set_counters(&self, revision: u64, compact_revision: u64) {
        self.revision.store(revision, Ordering::SeqCst);
        self.compact_revision.store(compact_revision, Ordering::SeqCst);
    }

    /// The Raft layer's opaque last-applied record, as of the last commit.
    pub fn applied(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Committed::new(&self.live(), &*self.pending()?).get(Cf::Meta, meta::APPLIED)
    }

    /// True when a snapshot install was interrupted: the caller must install one again.
    pub fn install_interrupted(&self) -> Result<bool, StoreError> {
        Ok(self.live().get(Cf::Meta, meta::INSTALLING)?.is_some())
    }

    /// A consistent read view of the current state. Hands pending writes to RocksDB first,
    /// so it waits for an apply in progress.
    pub fn read(&self) -> Result<ReadView<'_>, StoreError> {
        let snap = {
            let mut pending = self.pending()?;
            self.hand_over(&mut pending)?;
            self.db.snapshot()
        };
        ReadView::new(SnapView { store: self, snap })
    }

    /// The writes of committed applies that RocksDB lacks; an apply holds them until it
    /// commits.
    pub(crate) fn pending(&self) -> Result<MutexGuard<'_, Pending>, StoreError> {
        // A panic mid-commit may have left half an apply in it: nothing may use it any more.
        self.pending.lock().map_err(|_| StoreError::Interrupted)
    }

    /// Writes every pending write to RocksDB in one batch, column by column in key order.
    pub(crate) fn hand_over(&self, pending: &mut Pending) -> Result<(), StoreError> {
        if pending.layers.iter().all(Layer::is_empty) {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for cf in ALL_CFS {
            let handle = self.cf(cf)?;
            for (k, v) in pending.layers[cf as usize].iter() {
                match v {
                    Some(v) => batch.put_cf(handle, k, v),
                    None => batch.delete_cf(handle, k),
                }
            }
        }
        self.db.write_opt(batch, &unlogged())?;
        pending.layers.iter_mut().for_each(Layer::clear);
        pending.bytes = 0;
        Ok(())
    }

    /// Hands the pending writes to RocksDB once no apply is in progress.
    pub(crate) fn hand_over_pending(&self) -> Result<(), StoreError> {
        self.hand_over(&mut *self.pending()?)
    }

    /// Writes the pending writes to RocksDB and flushes every column, together, and waits:
    /// afterwards no log entry applied so far is needed again. Call it before purging
    /// applied log entries.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.hand_over_pending()?;
        flush_columns(&self.db)
    }

    /// Starts applying log entries; nothing is visible until [`Apply::commit`].
    pub fn begin_apply(&self) -> Result<Apply<'_>, StoreError> {
        Apply::new(self)
    }

    pub(crate) fn live(&self) -> LiveView<'_> {
        LiveView { store: self }
    }

    /// Physically removes what compaction made unreachable: events below the compact
    /// revision and versions superseded at or before it. Runs beside applies: it only
    /// deletes keys at or below the compact revision, which applies never write again.
    /// Returns the number of keys removed.
    pub fn purge_compacted(&self) -> Result<u64, StoreError> {
        let compact = self.compact_revision();
        if compact == 0 {
            return Ok(0);
        }
        self.hand_over_pending()?;
        let mut removed = 0u64;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(Cf::Events)?, keys::event_key(0), keys::event_key(compact));
        let stat_cf = self.cf(Cf::Stat)?;
        let data_cf = self.cf(Cf::Data)?;
        let snap = self.db.snapshot();
        let mut it = snap.raw_iterator_cf(stat_cf);
        it.seek_to_first();
        // Walk each path's versions (newest first); the first at or below `compact` is the one
        // a read at `compact` sees: keep it if live, drop everything older.
        let mut current: Option<Vec<u8>> = None;
        let mut kept: Option<Option<u64>> = None; // Some(Some(mod_rev)) live kept, Some(None) dropped
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else { break };
            let Some((path, rev)) = keys::split_version_key(key) else {
                return Err(StoreError::Corrupt("bad stat key".into()));
            };
            if current.as_deref() != Some(path) {
                current = Some(path.to_vec());
                kept = None;
            }
            if rev <= compact {
                let stat: Option<Stat> = bincode::deserialize(value)?;
                let path_str = std::str::from_utf8(path).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                match kept {
                    None if stat.is_some() => {
                        kept = Some(stat.as_ref().map(|s| s.mod_revision));
                    }
                    None => {
                        // Newest visible version is a delete: it and all older go.
                        kept = Some(None);
                        batch.delete_cf(stat_cf, key);
                        removed += 1;
                    }
                    Some(kept_mod) => {
                        batch.delete_cf(stat_cf, key);
                        removed += 1;
                        if let Some(s) = stat {
                            if Some(s.mod_revision) != kept_mod {
                                batch.delete_cf(data_cf, keys::data_key(path_str, s.mod_revision));
                            }
                        }
                    }
                }
            }
            if batch.len() >= 10_000 {
                self.db.write_opt(std::mem::take(&mut batch), &unlogged())?;
            }
            it.next();
        }
        it.status()?;
        self.db.write_opt(batch, &unlogged())?;
        Ok(removed)
    }
}

/// A store closed in order hands its pending writes to RocksDB, which flushes them as it
/// closes: the next start need not apply them again. (After a crash they are applied again
/// from the log.)
impl Drop for Store {
    fn drop(&mut self) {
        // Skipped when an apply panicked part way (see [`Store::pending`]).
        if let Ok(mut pending) = self.pending() {
            if let Err(e) = self.hand_over(&mut pending) {
                tracing::warn!("could not write the last applies at close (the log replays them): {e}");
            }
        }
    }
}

/// The state earlier applies committed: RocksDB with the pending writes on top (what apply
/// reads beneath its own writes, and where the newest applied marker is).
#[derive(Clone, Copy)]
pub(crate) struct Committed<'b> {
    base: &'b LiveView<'b>,
    pending: &'b Pending,
}

impl<'b> Committed<'b> {
    pub(crate) fn new(base: &'b LiveView<'b>, pending: &'b Pending) -> Self {
        Committed { base, pending }
    }

    /// A cursor that outlives this view (it borrows what the view borrows).
    pub(crate) fn into_cursor(self, cf: Cf) -> Box<dyn Cursor + 'b> {
        Box::new(Merged::new(self.base.cursor(cf), &self.pending.layers[cf as usize]))
    }
}

impl KvRead for Committed<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.layers[cf as usize].get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(cf, key),
        }
    }

    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        (*self).into_cursor(cf)
    }
}

/// Reads of the latest committed state (used by apply, which is the only writer).
pub(crate) struct LiveView<'a> {
    store: &'a Store,
}

impl KvRead for LiveView<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.db.get_cf(self.store.cf(cf)?, key)?)
    }
    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        match self.store.cf(cf) {
            Ok(h) => Box::new(DbCursor(self.store.db.raw_iterator_cf(h))),
            Err(_) => Box::new(crate::kv::EmptyCursor),
        }
    }
}

/// Reads of one RocksDB snapshot: a listing spread over many seeks stays consistent.
pub(crate) struct SnapView<'a> {
    store: &'a Store,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl KvRead for SnapView<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snap.get_cf(self.store.cf(cf)?, key)?)
    }
    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_> {
        match self.store.cf(cf) {
            Ok(h) => Box::new(DbCursor(self.snap.raw_iterator_cf(h))),
            Err(_) => Box::new(crate::kv::EmptyCursor),
        }
    }
}

/// Memtable size of the column written in path order, i.e. at random (stat). Every put
/// inserts into it, and a skiplist insert is a cache-missing search: at the default 64 MiB
/// those searches were the biggest cost of a put on every member. 8 MiB measured best
/// (puts at 256 clients: 14.1k/s at 64 MiB, 17.0k at 16, 18.2k at 8 and 4); the data and
/// events columns are written in order and keep the default.
const RANDOM_WRITE_BUFFER_BYTES: usize = 8 << 20;
const BLOCK_CACHE_BYTES: usize = 128 << 20;

/// The handle of one of the state machine's columns in `db`.
pub(crate) fn cf_handle(db: &DB, cf: Cf) -> Result<&ColumnFamily, StoreError> {
    let name = CF_NAMES[cf as usize];
    db.cf_handle(name).ok_or(StoreError::MissingColumnFamily(name))
}

/// Options for the state machine's own writes (applies and history purges): they skip the
/// WAL. The Raft log makes them durable, since a restart applies again whatever it holds
/// past the last applied marker, and the WAL would otherwise hold every value twice (once
/// in the log entry, once in the data column), doubling what each log fsync writes. With
/// `atomic_flush` every column reaches disk at the same point, so what survives a crash is
/// always some prefix of the applies, marker included; [`Store::persist`] makes the prefix
/// whole before the log it came from is purged.
pub(crate) fn unlogged() -> rocksdb::WriteOptions {
    let mut opts = rocksdb::WriteOptions::default();
    opts.disable_wal(true);
    opts
}

/// Flushes the state machine's columns to disk, together, and waits.
fn flush_columns(db: &DB) -> Result<(), StoreError> {
    let cfs = ALL_CFS.iter().map(|&cf| cf_handle(db, cf)).collect::<Result<Vec<_>, _>>()?;
    let mut opts = rocksdb::FlushOptions::default();
    opts.set_wait(true);
    db.flush_cfs_opt(&cfs, &opts)?;
    Ok(())
}

/// Opens (creating if needed) the state machine's RocksDB. It is a database of its own, not
/// shared with the Raft log: the log's WAL recycles its files, which RocksDB allows only in
/// a database whose writes all use the WAL, and the state machine's applies skip it.
pub fn open_db(path: &std::path::Path) -> Result<Arc<DB>, StoreError> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Applies skip the WAL (see [`unlogged`]): flush every column at once.
    opts.set_atomic_flush(true);
    // One block cache for every column, so reads of flushed versions stay in memory.
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let cfs = CF_NAMES.iter().map(|name| {
        let mut cf_opts = opts.clone();
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        if *name == CF_NAMES[Cf::Data as usize] {
            // Values are read by exact key: a bloom filter skips files that lack it.
            table.set_bloom_filter(10.0, false);
        }
        cf_opts.set_block_based_table_factory(&table);
        if *name == CF_NAMES[Cf::Stat as usize] {
            cf_opts.set_write_buffer_size(RANDOM_WRITE_BUFFER_BYTES);
        }
        rocksdb::ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    let db = DB::open_cf_descriptors(&opts, path, cfs)?;
    Ok(Arc::new(db))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Command, Output, Request};
    use cairn_api::{ErrorCode, Op, OpResult, Txn};

    fn put(store: &Store, path: &str, value: &str) {
        let op =
            Op::Put { path: path.into(), value: value.into(), lease: None, parents: false, expect: None };
        let mut apply = store.begin_apply().unwrap();
        apply.apply_request(&Request::new(1_000, vec![Command::Op(op)])).unwrap().pop().unwrap().unwrap();
        apply.set_applied(b"marker".to_vec());
        apply.commit().unwrap();
    }

    fn on_disk(store: &Store) -> u64 {
        read_u64(store.live().get(Cf::Meta, meta::REVISION).unwrap()).unwrap()
    }

    #[test]
    fn applies_reach_rocksdb_whole_and_a_crash_loses_only_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(open_db(dir.path()).unwrap()).unwrap();
            put(&store, "/a", "1");
            assert_eq!((store.revision(), on_disk(&store)), (1, 0), "small applies wait in memory");
            assert_eq!(store.applied().unwrap().as_deref(), Some(&b"marker"[..]));
            assert_eq!(store.read().unwrap().revision(), 1, "a read view hands them over first");
            assert_eq!(on_disk(&store), 1);
            put(&store, "/b", "2");
            put(&store, "/a", "3");
            assert_eq!(on_disk(&store), 1);
            // A crash: what was pending is gone, RocksDB keeps the state after revision 1.
            *store.pending().unwrap() = Pending::default();
        }
        let store = Store::open(open_db(dir.path()).unwrap()).unwrap();
        assert_eq!(store.revision(), 1);
        let view = store.read().unwrap();
        assert_eq!(view.get("/a", None).unwrap().value, b"1");
        assert_eq!(view.get("/b", None).unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn writes_of_a_failed_command_or_an_uncommitted_apply_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(open_db(dir.path()).unwrap()).unwrap();
        put(&store, "/a", "1");
        let before: Vec<Layer> = store.pending().unwrap().layers.to_vec();
        let put_op = |path: &str, value: &str| Op::Put {
            path: path.into(),
            value: value.into(),
            lease: None,
            parents: false,
            expect: None,
        };
        {
            let mut apply = store.begin_apply().unwrap();
            // The transaction writes /b, then fails on /b/c/d (no parent /b/c).
            let txn = Txn {
                compare: vec![],
                success: vec![put_op("/b", "x"), put_op("/b/c/d", "y")],
                failure: vec![],
            };
            let results = apply
                .apply_request(&Request::new(
                    2_000,
                    vec![
                        Command::Op(put_op("/a", "2")),
                        Command::Txn(txn),
                        Command::Op(Op::Get { path: "/b".into() }),
                    ],
                ))
                .unwrap();
            assert!(results[0].is_ok());
            assert_eq!(results[1].as_ref().unwrap_err().code, ErrorCode::NotFound);
            let got = results[2].as_ref().unwrap();
            assert!(
                matches!(got.output, Output::Op(OpResult::Got { node: None })),
                "the failed command's write is gone: {got:?}"
            );
            // Overwrites the marker the first put left pending.
            apply.set_applied(b"other".to_vec());
            // Dropped without a commit, as when a later entry fails on the disk.
        }
        assert_eq!(store.pending().unwrap().layers.to_vec(), before, "the pending writes are as they were");
        assert_eq!(store.revision(), 1);
        let view = store.read().unwrap();
        assert_eq!(view.get("/a", None).unwrap().value, b"1");
        assert_eq!(view.get("/b", None).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(store.applied().unwrap().as_deref(), Some(&b"marker"[..]));
    }

    #[test]
    fn big_applies_are_handed_over_at_commit_and_the_rest_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let value = "v".repeat(PENDING_BYTES / 4);
        {
            let store = Store::open(open_db(dir.path()).unwrap()).unwrap();
            for i in 0..4 {
                put(&store, &format!("/k{i}"), &value);
            }
            assert_eq!(on_disk(&store), 4, "the fourth value fills the pending writes");
            put(&store, "/last", "x");
            assert_eq!(on_disk(&store), 4);
            store.persist().unwrap();
            assert_eq!(on_disk(&store), 5);
            put(&store, "/after", "y");
        }
        // Closed in order: the last apply was handed over at close.
        let store = Store::open(open_db(dir.path()).unwrap()).unwrap();
        assert_eq!(store.revision(), 6);
        assert_eq!(store.read().unwrap().get("/after", None).unwrap().value, b"y");
    }
}

//! State-machine images: a self-contained stream of every key, for Raft snapshots and backups.
//!
//! Format: `CAIRNSM1`, then records `cf:u8 key_len:u32 key value_len:u32 value` (big-endian
//! lengths), then a single `0xFF`. The image is written from one RocksDB snapshot, so it is
//! consistent while applies go on, and it is streamed: neither side holds it in memory.

use std::io::{Read, Write};
use std::path::Path;

use rocksdb::{WriteBatch, DB};

use crate::keys::meta;
use crate::kv::Cf;
use crate::store::cf_handle;
use crate::{Store, StoreError, COLUMN_FAMILIES};

const MAGIC: &[u8; 8] = b"CAIRNSM1";
const END: u8 = 0xFF;
const ALL: [Cf; crate::kv::CF_COUNT] = crate::kv::ALL_CFS;
/// Above every key the state machine writes (paths are UTF-8, which never has 0xFF).
const KEY_CEILING: [u8; 16] = [0xFF; 16];
const LOAD_BATCH_BYTES: usize = 4 << 20;

fn cf_of(tag: u8) -> Result<Cf, StoreError> {
    ALL.into_iter()
        .find(|cf| *cf as u8 == tag)
        .ok_or_else(|| StoreError::Corrupt(format!("snapshot names unknown column {tag}")))
}

fn read_chunk(input: &mut impl Read) -> Result<Vec<u8>, StoreError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(truncated)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut buf).map_err(truncated)?;
    Ok(buf)
}

fn truncated(e: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("snapshot is truncated or unreadable: {e}"))
}

impl Store {
    /// Writes an image of the current state; returns the applied record it holds.
    pub fn write_snapshot(&self, out: &mut impl Write) -> Result<Option<Vec<u8>>, StoreError> {
        self.hand_over_pending()?;
        write_image(self.db(), out)
    }

    /// Freezes the current state in `dir` (which must not exist yet) as a RocksDB
    /// checkpoint: a flush, then hard links to the table files, so it costs the same
    /// whatever the size of the state and history. [`write_checkpoint_image`] turns it
    /// into an image when one is needed. Returns the applied record it holds.
    pub fn checkpoint(&self, dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        // RocksDB holds the state after some apply, the last one handed over or a later one.
        self.hand_over_pending()?;
        rocksdb::checkpoint::Checkpoint::new(self.db())?.create_checkpoint(dir)?;
        let frozen = open_checkpoint(dir)?;
        Ok(frozen.get_cf(cf_handle(&frozen, Cf::Meta)?, meta::APPLIED)?)
    }
}

/// Writes the image of a checkpoint made by [`Store::checkpoint`]; returns the applied
/// record it holds.
pub fn write_checkpoint_image(dir: &Path, out: &mut impl Write) -> Result<Option<Vec<u8>>, StoreError> {
    write_image(&open_checkpoint(dir)?, out)
}

fn open_checkpoint(dir: &Path) -> Result<DB, StoreError> {
    Ok(DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, COLUMN_FAMILIES, false)?)
}

/// Streams every state-machine key of one consistent view of `db`.
fn write_image(db: &DB, out: &mut impl Write) -> Result<Option<Vec<u8>>, StoreError> {
    let snap = db.snapshot();
    out.write_all(MAGIC)?;
    let mut applied = None;
    for cf in ALL {
        let mut it = snap.raw_iterator_cf(cf_handle(db, cf)?);
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            if cf == Cf::Meta && key == meta::APPLIED {
                applied = Some(value.to_vec());
            }
            let too_big = || StoreError::Corrupt("key or value over 4 GiB".into());
            out.write_all(&[cf as u8])?;
            out.write_all(&u32::try_from(key.len()).map_err(|_| too_big())?.to_be_bytes())?;
            out.write_all(key)?;
            out.write_all(&u32::try_from(value.len()).map_err(|_| too_big())?.to_be_bytes())?;
            out.write_all(value)?;
            it.next();
        }
        it.status()?;
    }
    out.write_all(&[END])?;
    out.flush()?;
    Ok(applied)
}

impl Store {
    /// Replaces the whole state with an image; returns the applied record it holds.
    ///
    /// Crash-safe in this sense: the state is marked "installing" in the same batch that
    /// clears it and unmarked in the batch that ends the load, so a member that dies halfway
    /// finds the mark at start-up ([`Store::install_interrupted`]) and installs again.
    pub fn install_snapshot(&self, input: &mut impl Read) -> Result<Option<Vec<u8>>, StoreError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(truncated)?;
        if &magic != MAGIC {
            return Err(StoreError::Corrupt("not a Cairn state-machine snapshot".into()));
        }
        // The state is replaced: pending writes of the old one must never reach the new one,
        // so hold them (and readers, who would hand them over) until the load is done.
        let mut pending = self.pending()?;
        *pending = Default::default();
        let mut batch = WriteBatch::default();
        for cf in ALL {
            batch.delete_range_cf(self.cf(cf)?, &[][..], &KEY_CEILING[..]);
        }
        batch.put_cf(self.cf(Cf::Meta)?, meta::INSTALLING, b"1");
        self.db().write(batch)?;

        let mut applied = None;
        let mut batch = WriteBatch::default();
        loop {
            let mut tag = [0u8; 1];
            input.read_exact(&mut tag).map_err(truncated)?;
            if tag[0] == END {
                break;
            }
            let cf = cf_of(tag[0])?;
            let key = read_chunk(input)?;
            let value = read_chunk(input)?;
            if cf == Cf::Meta && key == meta::INSTALLING {
                continue;
            }
            if cf == Cf::Meta && key == meta::APPLIED {
                applied = Some(value.clone());
            }
            batch.put_cf(self.cf(cf)?, key, value);
            if batch.size_in_bytes() >= LOAD_BATCH_BYTES {
                self.db().write(std::mem::take(&mut batch))?;
            }
        }
        batch.delete_cf(self.cf(Cf::Meta)?, meta::INSTALLING);
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.db().write_opt(batch, &sync)?;
        self.reload()?;
        self.check_layout()?;
        drop(pending);
        Ok(applied)
    }
}

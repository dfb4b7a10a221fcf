//! The openraft state-machine adapter over cairn-store, with file snapshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_store::Store;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{decode, encode, Entry, LogId, Node, NodeId, Response, StorageError, TypeConfig};

type Membership = StoredMembership<NodeId, Node>;
type Meta = SnapshotMeta<NodeId, Node>;

/// What the state machine stores with every apply so that a restart knows where it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedRecord {
    last_applied: Option<LogId>,
    membership: Membership,
}

/// `current.json` in the snapshot folder: the newest snapshot and its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: Meta,
    file: String,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::error(e.to_string())).into()
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, openraft::AnyError::error(e.to_string())).into()
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    dir: PathBuf,
    receiving: Option<PathBuf>,
    applied_tx: Arc<watch::Sender<u64>>,
    /// The record as the last apply wrote it (apply is the only writer, so it saves a read
    /// and a decode per apply); `None` after a snapshot replaced the state.
    record: Option<AppliedRecord>,
}

impl StateMachine {
    pub(crate) async fn open(store: Arc<Store>, dir: PathBuf) -> Result<Self, StorageError> {
        let (applied_tx, _) = watch::channel(store.revision());
        let sm = StateMachine { store, dir, receiving: None, applied_tx: Arc::new(applied_tx), record: None };
        if sm.store.install_interrupted().map_err(|e| sm_err(ErrorVerb::Read, e))? {
            let current = sm.read_current()?.ok_or_else(|| {
                sm_err(
                    ErrorVerb::Read,
                    "a snapshot install was interrupted and its file is gone: remove this member's \
                     data directory and add it to the cluster again",
                )
            })?;
            tracing::warn!("resuming an interrupted snapshot install");
            sm.load_file(&sm.dir.join(&current.file)).await?;
        }
        sm.clean_files(None);
        Ok(sm)
    }

    /// The store revision after each apply, for readers that wait on it.
    pub fn applied_revision(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn applied(&self) -> Result<AppliedRecord, StorageError> {
        match self.store.applied().map_err(|e| sm_err(ErrorVerb::Read, e))? {
            None => Ok(AppliedRecord::default()),
            Some(bytes) => decode(&bytes).map_err(|e| sm_err(ErrorVerb::Read, e)),
        }
    }

    fn read_current(&self) -> Result<Option<CurrentSnapshot>, StorageError> {
        match std::fs::read(self.dir.join("current.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| snap_err(ErrorVerb::Read, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }

    /// Makes `file` the current snapshot: durable pointer written by rename.
    fn set_current(&self, meta: &Meta, file: &str) -> Result<(), StorageError> {
        let current = CurrentSnapshot { meta: meta.clone(), file: file.to_owned() };
        let bytes = serde_json::to_vec(&current).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let tmp = self.dir.join("current.json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        std::fs::rename(&tmp, self.dir.join("current.json")).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.clean_files(Some(file));
        Ok(())
    }

    /// Removes snapshot files other than the current one and one being received.
    fn clean_files(&self, keep: Option<&str>) {
        let current = self.read_current().ok().flatten().map(|c| c.file);
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_snapshot = name.starts_with("snap-") || name.starts_with("build-");
            let keep = Some(name.as_str()) == keep
                || Some(&name) == current.as_ref()
                || self.receiving.as_deref().and_then(Path::file_name).map(|f| f.to_string_lossy() == name)
                    == Some(true);
            if is_snapshot && !keep {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    async fn load_file(&self, path: &Path) -> Result<(), StorageError> {
        let store = self.store.clone();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let file = std::fs::File::open(&path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
            store
                .install_snapshot(&mut std::io::BufReader::with_capacity(1 << 20, file))
                .map_err(|e| snap_err(ErrorVerb::Write, e))?;
            Ok(())
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        self.applied_tx.send_replace(self.store.revision());
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Streams an image from a RocksDB snapshot into a file, off the async runtime; applies
    /// go on meanwhile.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let store = self.store.clone();
        let name = format!("build-{}", now_nanos());
        let path = self.dir.join(&name);
        let build_path = path.clone();
        let applied = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, StorageError> {
            let file = std::fs::File::create(&build_path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let applied = store.write_snapshot(&mut out).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let file = out.into_inner().map_err(|e| snap_err(ErrorVerb::Write, e.error()))?;
            file.sync_all().map_err(|e| snap_err(ErrorVerb::Write, e))?;
            Ok(applied)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        let record: AppliedRecord = match applied {
            Some(b) => decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => AppliedRecord::default(),
        };
        let snapshot_id = match record.last_applied {
            Some(l) => format!("{}-{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index, now_nanos()),
            None => format!("empty-{}", now_nanos()),
        };
        let meta = Meta { last_log_id: record.last_applied, last_membership: record.membership, snapshot_id };
        let file_name = format!("snap-{}", meta.snapshot_id);
        std::fs::rename(&path, self.dir.join(&file_name)).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.set_current(&meta, &file_name)?;
        let file = tokio::fs::File::open(self.dir.join(&file_name))
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        tracing::info!(id = %meta.snapshot_id, "built snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let record = self.applied()?;
        Ok((record.last_applied, record.membership))
    }

    /// One batch for all entries: data, last-applied and membership land together.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut record = match self.record.take() {
            Some(r) => r,
            None => self.applied()?,
        };
        let mut apply = self.store.begin_apply().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut responses = Vec::new();
        for entry in entries {
            record.last_applied = Some(entry.log_id);
            responses.push(match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(request) => Response(apply.apply_request(&request).map_err(|e| {
                    StorageError::from(StorageIOError::apply(
                        entry.log_id,
                        openraft::AnyError::error(e.to_string()),
                    ))
                })?),
                EntryPayload::Membership(m) => {
                    record.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::default()
                }
            });
        }
        apply.set_applied(encode(&record).map_err(|e| sm_err(ErrorVerb::Write, e))?);
        apply.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.record = Some(record);
        self.applied_tx.send_replace(self.store.revision());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.dir.join(format!("snap-recv-{}", now_nanos()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        snapshot.sync_all().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        drop(snapshot);
        let received = self
            .receiving
            .take()
            .ok_or_else(|| snap_err(ErrorVerb::Read, "no snapshot was being received"))?;
        let file_name = format!("snap-{}", meta.snapshot_id);
        std::fs::rename(&received, self.dir.join(&file_name)).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.set_current(meta, &file_name)?;
        self.record = None;
        self.load_file(&self.dir.join(&file_name)).await?;
        tracing::info!(id = %meta.snapshot_id, last = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(current) = self.read_current()? else { return Ok(None) };
        match tokio::fs::File::open(self.dir.join(&current.file)).await {
            Ok(file) => Ok(Some(Snapshot { meta: current.meta, snapshot: Box::new(file) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }
}

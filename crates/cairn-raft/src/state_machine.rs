//! The openraft state-machine adapter over cairn-store, with file snapshots.
//!
//! Building a snapshot only freezes the state as a RocksDB checkpoint (hard links, after a
//! flush): the state already lives on disk, so the Raft log can be purged without copying
//! it. The image file a follower installs is written from that checkpoint the first time
//! one is asked for. Writing the image at every build had cost ~10% of each member's CPU
//! under steady writes, growing with the history kept (etcd likewise sends its backend
//! file rather than copying it at each snapshot).

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

/// `current.json` in the snapshot folder: the newest snapshot, as an image file or as the
/// checkpoint it was built as until an image is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: Meta,
    /// The image file, once written.
    #[serde(default)]
    file: Option<String>,
    /// The checkpoint directory, until the image is written.
    #[serde(default)]
    checkpoint: Option<String>,
}

const CURRENT: &str = "current.json";

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
    /// This member: answers carry values only for the entries it proposed.
    id: NodeId,
    store: Arc<Store>,
    dir: PathBuf,
    receiving: Option<PathBuf>,
    applied_tx: Arc<watch::Sender<u64>>,
    /// The record as the last apply wrote it (apply is the only writer, so it saves a read
    /// and a decode per apply); `None` after a snapshot replaced the state.
    record: Option<AppliedRecord>,
    /// Held while the current snapshot changes; clones (the snapshot builder) share it.
    snapshots: Arc<tokio::sync::Mutex<()>>,
}

impl StateMachine {
    pub(crate) async fn open(id: NodeId, store: Arc<Store>, dir: PathBuf) -> Result<Self, StorageError> {
        let (applied_tx, _) = watch::channel(store.revision());
        let sm = StateMachine {
            id,
            store,
            dir,
            receiving: None,
            applied_tx: Arc::new(applied_tx),
            record: None,
            snapshots: Arc::default(),
        };
        if sm.store.install_interrupted().map_err(|e| sm_err(ErrorVerb::Read, e))? {
            let current = sm.read_current()?.ok_or_else(|| {
                sm_err(
                    ErrorVerb::Read,
                    "a snapshot install was interrupted and its file is gone: remove this member's \
                     data directory and add it to the cluster again",
                )
            })?;
            let file = current.file.ok_or_else(|| {
                sm_err(ErrorVerb::Read, "a snapshot install was interrupted and its image is unknown")
            })?;
            tracing::warn!("resuming an interrupted snapshot install");
            sm.load_file(&sm.dir.join(&file)).await?;
        }
        sm.clean_files();
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
        match std::fs::read(self.dir.join(CURRENT)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| snap_err(ErrorVerb::Read, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }

    /// Makes `current` the current snapshot (a durable pointer, written by rename), then
    /// removes the files of older ones. Call with `snapshots` held.
    fn set_current(&self, current: &CurrentSnapshot) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(current).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let tmp = self.dir.join("current.json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        std::fs::rename(&tmp, self.dir.join(CURRENT)).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.clean_files();
        Ok(())
    }

    /// Removes snapshot images, image builds and checkpoints other than the current
    /// snapshot's and the one being received.
    fn clean_files(&self) {
        let current = self.read_current().ok().flatten();
        let current = current.as_ref();
        let receiving = self.receiving.as_deref().and_then(Path::file_name).map(|f| f.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = ["snap-", "build-", "ckpt-"].iter().any(|p| name.starts_with(p));
            let keep = current
                .is_some_and(|c| c.file.as_ref() == Some(&name) || c.checkpoint.as_ref() == Some(&name))
                || receiving.as_deref() == Some(name.as_str());
            if ours && !keep {
                let path = entry.path();
                let _ =
                    if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
            }
        }
    }

    /// Writes the image of checkpoint `checkpoint` into a file named after the snapshot;
    /// returns the file's name.
    async fn write_image(&self, checkpoint: &str, meta: &Meta) -> Result<String, StorageError> {
        let (source, build) = (self.dir.join(checkpoint), self.dir.join(format!("build-{}", now_nanos())));
        let target = format!("snap-{}", meta.snapshot_id);
        let done = self.dir.join(&target);
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let file = std::fs::File::create(&build).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            cairn_store::write_checkpoint_image(&source, &mut out)
                .map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let file = out.into_inner().map_err(|e| snap_err(ErrorVerb::Write, e.error()))?;
            file.sync_all().map_err(|e| snap_err(ErrorVerb::Write, e))?;
            std::fs::rename(&build, &done).map_err(|e| snap_err(ErrorVerb::Write, e))
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        tracing::info!(id = %meta.snapshot_id, "wrote the snapshot image");
        Ok(target)
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
    /// Freezes the state as a checkpoint, off the async runtime; applies go on meanwhile.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let _current = self.snapshots.lock().await;
        let name = format!("ckpt-{}", now_nanos());
        let (store, path) = (self.store.clone(), self.dir.join(&name));
        let applied = tokio::task::spawn_blocking(move || store.checkpoint(&path))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let record: AppliedRecord = match applied {
            Some(b) => decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => AppliedRecord::default(),
        };
        let snapshot_id = match record.last_applied {
            Some(l) => format!("{}-{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index, now_nanos()),
            None => format!("empty-{}", now_nanos()),
        };
        let meta = Meta { last_log_id: record.last_applied, last_membership: record.membership, snapshot_id };
        self.set_current(&CurrentSnapshot { meta: meta.clone(), file: None, checkpoint: Some(name) })?;
        tracing::info!(id = %meta.snapshot_id, "built snapshot");
        // openraft keeps only the meta of a snapshot it had built (`core/sm/worker.rs`); its
        // data is asked for through `get_current_snapshot`, which writes the image then.
        let unread =
            tokio::fs::File::open(self.dir.join(CURRENT)).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot { meta, snapshot: Box::new(unread) })
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
                EntryPayload::Normal(request) => {
                    // Only the member that proposed an entry has callers waiting for its answers.
                    apply.answer_values(entry.log_id.leader_id.node_id == self.id);
                    Response(apply.apply_request(&request).map_err(|e| {
                        StorageError::from(StorageIOError::apply(
                            entry.log_id,
                            openraft::AnyError::error(e.to_string()),
                        ))
                    })?)
                }
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
        let current = CurrentSnapshot { meta: meta.clone(), file: Some(file_name.clone()), checkpoint: None };
        let _current = self.snapshots.clone().lock_owned().await;
        self.set_current(&current)?;
        self.record = None;
        self.load_file(&self.dir.join(&file_name)).await?;
        tracing::info!(id = %meta.snapshot_id, last = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    /// The current snapshot, its image written first if it is still a checkpoint. Writing
    /// it holds up applies here for as long as it takes, which only a follower too far
    /// behind for the log (or a restart) asks for.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let _current = self.snapshots.lock().await;
        let Some(mut current) = self.read_current()? else { return Ok(None) };
        let file = match (current.file.clone(), current.checkpoint.clone()) {
            (Some(file), _) => file,
            (None, Some(checkpoint)) => {
                let file = self.write_image(&checkpoint, &current.meta).await?;
                current.file = Some(file.clone());
                current.checkpoint = None;
                self.set_current(&current)?;
                file
            }
            (None, None) => return Ok(None),
        };
        match tokio::fs::File::open(self.dir.join(&file)).await {
            Ok(file) => Ok(Some(Snapshot { meta: current.meta, snapshot: Box::new(file) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }
}

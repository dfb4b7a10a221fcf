//! Cairn's Raft layer on openraft 0.9 (storage-v2).
//!
//! Each member keeps two RocksDB databases under its data directory: `log` holds the Raft
//! log and vote, `db` the state machine (cairn-store's). Log appends are written and then
//! made durable with one WAL sync before openraft is told; applies go in one batch without
//! the WAL, with their last-applied marker, since the log already makes them durable. Two
//! databases because the log's WAL reuses its files, which makes each sync cheaper, and
//! RocksDB reuses WAL files only in a database whose writes all use the WAL. Snapshots are
//! files streamed in chunks, never held whole in memory.

// openraft's own `StorageError` is what its traits return; its size is not ours to choose.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod state_machine;

use std::path::Path;
use std::sync::Arc;

use cairn_store::{CommandResult, Request, Store};
use rocksdb::DB;
use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use network::{check_target, parse, peer_routes, reply, PeerNetwork, PostError, Refusal, TARGET_HEADER};
pub use openraft;
pub use state_machine::StateMachine;

/// Node id: stable, given by the operator, persisted by Raft.
pub type NodeId = u64;
/// A member's address for peer traffic (`host:port` of its peer listener).
pub type Node = openraft::BasicNode;

/// The answers to one log entry: one per command of a [`Request`]; empty for entries that
/// carry no commands (blank and membership entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Vec<CommandResult>);

openraft::declare_raft_types!(
    /// Cairn's Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Encoding of everything a member writes to its log or sends to a peer.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    bincode::serialize(value)
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}

/// How many bytes [`encode`] makes of `value`, without encoding it.
pub fn encoded_len<T: Serialize>(value: &T) -> Result<u64, bincode::Error> {
    bincode::serialized_size(value)
}

/// Everything a member stores, opened together.
pub struct Storage {
    pub log: LogStore,
    pub state_machine: StateMachine,
    pub store: Arc<Store>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("state machine: {0}")]
    Store(#[from] cairn_store::StoreError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("raft log: {0}")]
    Log(#[from] rocksdb::Error),
    #[error(
        "{0} holds the Raft log and the state together, as earlier builds of Cairn wrote them; this \
         Cairn keeps the log in a database of its own: start this member with an empty data \
         directory (it catches up from the others), or run the Cairn that wrote it"
    )]
    SharedDatabase(String),
    #[error("i/o on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Opens (or creates) the storage of member `id` under `data_dir`.
pub async fn open_storage(data_dir: &Path, id: NodeId) -> Result<Storage, OpenError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OpenError::Io { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let state_dir = data_dir.join("db");
    if state_dir.exists()
        && DB::list_cf(&rocksdb::Options::default(), &state_dir)?.iter().any(|cf| cf == log_store::CF_LOG)
    {
        return Err(OpenError::SharedDatabase(state_dir.display().to_string()));
    }
    let state = cairn_store::open_db(&state_dir)?;
    let store = Arc::new(Store::open(state)?);
    let log = LogStore::new(log_store::open_log_db(&data_dir.join("log"))?, store.clone());
    let snapshots = data_dir.join("snapshots");
    std::fs::create_dir_all(&snapshots).map_err(io(&snapshots))?;
    let state_machine = StateMachine::open(id, store.clone(), snapshots).await?;
    Ok(Storage { log, state_machine, store })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{EntryPayload, Membership, Vote};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn peer_messages_round_trip_in_binary() {
        let log_id = LogId::new(openraft::CommittedLeaderId::new(3, 1), 7);
        let nodes: BTreeMap<NodeId, Node> = [(1, Node { addr: "127.0.0.1:7380".into() })].into();
        let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
        let entries = vec![
            Entry { log_id, payload: EntryPayload::Blank },
            Entry { log_id, payload: EntryPayload::Membership(membership) },
            Entry {
                log_id,
                payload: EntryPayload::Normal(Request::new(
                    5,
                    vec![cairn_store::Command::Compact { revision: 3 }],
                )),
            },
        ];
        let req = openraft::raft::AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id),
            entries,
            leader_commit: Some(log_id),
        };
        let back: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(&encode(&req).unwrap()).unwrap();
        assert_eq!(format!("{req:?}"), format!("{back:?}"));
        let err: Result<(), openraft::error::RaftError<NodeId>> =
            Err(openraft::error::RaftError::Fatal(openraft::error::Fatal::Stopped));
        let back: Result<(), openraft::error::RaftError<NodeId>> = decode(&encode(&err).unwrap()).unwrap();
        assert_eq!(format!("{err:?}"), format!("{back:?}"));
    }

    /// A member that led before a restart comes back as a follower of no one, so that it
    /// leads again only through an election (see `LogStore::read_vote`).
    #[tokio::test]
    async fn a_saved_leadership_comes_back_as_a_plain_vote() {
        use openraft::storage::RaftLogStorage;
        let dir = tempfile::tempdir().unwrap();
        {
            let mut storage = open_storage(dir.path(), 1).await.unwrap();
            storage.log.save_vote(&Vote::new_committed(4, 2)).await.unwrap();
        }
        let mut storage = open_storage(dir.path(), 1).await.unwrap();
        assert_eq!(storage.log.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
    }

    /// A data directory whose state database also holds the log (as earlier builds wrote
    /// it) is refused with what to do, not opened without its log.
    #[tokio::test]
    async fn a_log_kept_with_the_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        drop(DB::open_cf(&opts, dir.path().join("db"), [log_store::CF_LOG]).unwrap());
        let err = open_storage(dir.path(), 1).await.err().unwrap();
        assert!(matches!(err, OpenError::SharedDatabase(_)), "{err}");
        assert!(err.to_string().contains("empty data directory"), "{err}");
    }
}

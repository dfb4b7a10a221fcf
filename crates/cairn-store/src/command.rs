use cairn_api::{ApiError, Op, OpResult, Stat, Txn, TxnResult};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One Raft log entry's payload: a batch of commands proposed together (group commit) with
/// the leader's wall clock at proposal. The commands are shared, not copied, when the log
/// hands the same entry to replication and to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub time_ms: u64,
    pub commands: Arc<Vec<Command>>,
}

impl Request {
    pub fn new(time_ms: u64, commands: Vec<Command>) -> Request {
        Request { time_ms, commands: Arc::new(commands) }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({} commands @{})", self.commands.len(), self.time_ms)
    }
}

// Commands are moved into the log once; boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// One operation; a write that changes nothing (a failed CAS) takes no revision.
    Op(Op),
    Txn(Txn),
    /// Forget history below `revision`: reads and watches before it answer `compacted`.
    Compact {
        revision: u64,
    },
    /// A new lease; its id is chosen in apply.
    LeaseGrant {
        ttl_ms: u64,
    },
    /// Ends a lease and deletes every node bound to it, in one revision.
    LeaseRevoke {
        id: u64,
    },
}

impl Command {
    /// Bytes of value the command carries: what batching and limits count.
    pub fn value_len(&self) -> usize {
        match self {
            Command::Op(op) => op.value_len(),
            Command::Txn(t) => t.success.iter().chain(&t.failure).map(Op::value_len).sum(),
            Command::Compact { .. } | Command::LeaseGrant { .. } | Command::LeaseRevoke { .. } => 0,
        }
    }
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Op(OpResult),
    Txn(TxnResult),
    Compacted { compact_revision: u64 },
    LeaseGranted { id: u64, ttl_ms: u64 },
    LeaseRevoked { id: u64, deleted: u64 },
}

/// A lease as the state machine keeps it. Its countdown lives on the leader only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: u64,
    pub ttl_ms: u64,
}

/// What one command did and the store revision right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub revision: u64,
    pub output: Output,
}

pub type CommandResult = Result<Applied, ApiError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Create,
    Set,
    Delete,
}

/// A change recorded in the history. Values are not copied here: they stay in the data
/// column under `(path, mod_revision)` until compaction, and are joined in when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub path: String,
    /// After the change; for a delete, the node as it was when deleted.
    pub stat: Stat,
    /// Before the change (set and delete).
    pub prev: Option<Stat>,
}

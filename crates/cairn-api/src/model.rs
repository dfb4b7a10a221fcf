//! The typed model: what the state machine executes and answers.

use serde::{Deserialize, Serialize};

/// A node's metadata (DESIGN §2). Field names are the JSON contract's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub create_revision: u64,
    pub mod_revision: u64,
    /// Data changes since the node was created.
    pub version: u64,
    /// Changes of the child list since the node was created.
    pub cversion: u64,
    pub num_children: u64,
    /// The lease an ephemeral node is bound to.
    pub lease: Option<u64>,
    /// Leader's wall clock at proposal, ms since the epoch.
    pub ctime: u64,
    pub mtime: u64,
    pub data_length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub path: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub stat: Stat,
}

/// A child in a `?children` listing: its name (last segment) and stat, no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub name: String,
    pub stat: Stat,
}

/// Compare-and-set condition on a set or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    Version(u64),
    ModRevision(u64),
}

/// One operation, alone or inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create only: fails if the node exists.
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        sequential: bool,
        lease: Option<u64>,
        parents: bool,
    },
    /// Create or set.
    Put {
        path: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        lease: Option<u64>,
        parents: bool,
        expect: Option<Expect>,
    },
    Delete {
        path: String,
        recursive: bool,
        expect: Option<Expect>,
    },
    Get {
        path: String,
    },
    /// Children (or with `recursive` the whole subtree) of a node, at most `limit` entries.
    List {
        path: String,
        recursive: bool,
        limit: usize,
    },
}

impl Op {
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Put { path, .. }
            | Op::Delete { path, .. }
            | Op::Get { path }
            | Op::List { path, .. } => path,
        }
    }

    pub fn is_write(&self) -> bool {
        matches!(self, Op::Create { .. } | Op::Put { .. } | Op::Delete { .. })
    }

    /// Bytes of value this operation carries.
    pub fn value_len(&self) -> usize {
        match self {
            Op::Create { value, .. } | Op::Put { value, .. } => value.len(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Gt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    Version(u64),
    ModRevision(u64),
    CreateRevision(u64),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub path: String,
    pub target: CompareTarget,
    pub op: CompareOp,
}

impl Compare {
    /// Evaluates the condition against the node's current state (`None` = missing). A missing
    /// node compares as not existing and fails every other target.
    pub fn holds(&self, node: Option<(&Stat, &[u8])>) -> bool {
        fn cmp<T: Ord + ?Sized>(op: CompareOp, a: &T, b: &T) -> bool {
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Lt => a < b,
                CompareOp::Gt => a > b,
            }
        }
        match (&self.target, node) {
            (CompareTarget::Exists(want), node) => cmp(self.op, &node.is_some(), want),
            (_, None) => false,
            (CompareTarget::Value(v), Some((_, value))) => cmp(self.op, value, v.as_slice()),
            (CompareTarget::Version(v), Some((stat, _))) => cmp(self.op, &stat.version, v),
            (CompareTarget::ModRevision(v), Some((stat, _))) => cmp(self.op, &stat.mod_revision, v),
            (CompareTarget::CreateRevision(v), Some((stat, _))) => cmp(self.op, &stat.create_revision, v),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// The outcome of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Created {
        node: Node,
    },
    Put {
        node: Node,
        prev: Option<Node>,
    },
    /// `node` is the node as it was when deleted; `deleted` counts the subtree.
    Deleted {
        node: Node,
        deleted: u64,
    },
    Got {
        node: Option<Node>,
    },
    Listed {
        nodes: Vec<Node>,
        more: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResult {
    pub succeeded: bool,
    pub results: Vec<OpResult>,
}

/// A page of a listing with the cursor that continues it at the same revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub entries: Vec<T>,
    pub revision: u64,
    pub next: Option<String>,
}

/// Response header of every JSON answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub revision: u64,
    pub raft_term: u64,
    pub leader: Option<u64>,
    pub member: u64,
}

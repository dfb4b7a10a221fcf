//! Cairn's wire types, shared by the server, the store and clients.
//!
//! Two families of types live here:
//! - the typed model (`Op`, `Txn`, `Node`, `Stat`, `ApiError`, …) that travels inside the
//!   Raft log and between peers with a compact binary encoding, so it avoids serde features
//!   a non-self-describing format cannot read (untagged enums, flattening, skipped fields);
//! - the JSON shapes of the HTTP contract (`json` module), converted to and from the typed
//!   model at the edge, where values become UTF-8 or base64 strings.

mod error;
pub mod json;
mod model;
mod path;

pub use error::{ApiError, ErrorCode};
pub use model::*;
pub use path::{join_child, parent_of, validate_path, MAX_PATH_BYTES};

/// Largest value a node may hold (DESIGN §2).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default and largest number of operations in one transaction.
pub const DEFAULT_MAX_TXN_OPS: usize = 1024;
/// Default number of entries in one page of a listing.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// Largest `limit` a listing accepts.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// Bytes (paths plus values) one page may carry before it is cut, whatever its `limit`.
pub const PAGE_BYTE_BUDGET: usize = 4 * 1024 * 1024;
/// Shortest lease TTL: longer than an election, so a failover alone cannot end a lease.
pub const MIN_LEASE_TTL_MS: u64 = 2_000;
/// Longest lease TTL (one day).
pub const MAX_LEASE_TTL_MS: u64 = 86_400_000;
/// Width of the counter a sequential create appends.
pub const SEQUENCE_DIGITS: usize = 10;

//! Cairn's deterministic state machine on RocksDB.
//!
//! The namespace is multi-versioned the way etcd's MVCC is: every change of a node writes a
//! new version keyed by `(path, revision)`, so a read at a past revision is one seek per node
//! and the current state is simply the newest version of each path. Every write command gets
//! the next global revision and records its changes as events keyed by that revision, which
//! is what watches stream. Nothing here reads a clock or a random source: the leader stamps
//! time into each [`Request`], so every member that applies the same log holds the same state.

mod apply;
mod command;
mod keys;
mod kv;
mod latest;
mod read;
mod snapshot;
mod store;

pub use apply::Apply;
pub use command::{Applied, Command, CommandResult, Event, EventKind, Lease, Output, Request};
pub use read::ReadView;
pub use snapshot::write_checkpoint_image;
pub use store::{open_db, Store, StoreError, COLUMN_FAMILIES};

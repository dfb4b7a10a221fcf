//! Key layout.
//!
//! - stat column: `path 0x00 !revision` → `Option<Stat>` (None = deleted). The inverted
//!   big-endian revision sorts a path's versions newest first, so seeking to
//!   `path 0x00 !N` lands on the newest version at or before N. Paths never contain 0x00,
//!   so `path 0x00` sorts before any child (`path/…`) and the namespace iterates in path order.
//! - data column: `mod_revision path` → value bytes. A node's stat changes without its
//!   value (children come and go), so values are stored once per data change. Revision
//!   first: values are written in revision order, so storing one appends to the memtable
//!   instead of searching it at random (that search was the costliest part of a put's
//!   apply); values are only ever read by exact key.
//! - events column: `revision` (big-endian) → `Vec<Event>`.
//! - live column: `path` → nothing, for every node that exists now (the root aside). Written
//!   only when a node is created or deleted, so children are listed at the newest revision
//!   without stepping over the versions of children deleted since (a lock's or election's
//!   queue leaves one per turn, until history compaction removes them).
//! - meta column: fixed names → u64 or opaque bytes.

pub const SEP: u8 = 0x00;
/// The key layout this code writes and reads; 2 keys values by revision first, 3 adds the
/// live column (built from the stat column when a state of layout 2 is opened).
pub const LAYOUT: u64 = 3;
/// The byte after `/`: seeking to `prefix name 0x30` skips the subtree of `name`.
pub const AFTER_SLASH: u8 = b'/' + 1;

pub fn version_key(path: &str, revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(path.len() + 9);
    k.extend_from_slice(path.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&(!revision).to_be_bytes());
    k
}

pub fn data_key(path: &str, mod_revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(path.len() + 8);
    k.extend_from_slice(&mod_revision.to_be_bytes());
    k.extend_from_slice(path.as_bytes());
    k
}

/// Splits a stat-column key into `(path bytes, revision)`.
pub fn split_version_key(key: &[u8]) -> Option<(&[u8], u64)> {
    if key.len() < 9 || key[key.len() - 9] != SEP {
        return None;
    }
    let (path, rest) = key.split_at(key.len() - 9);
    let inv = u64::from_be_bytes(rest[1..].try_into().ok()?);
    Some((path, !inv))
}

pub fn event_key(revision: u64) -> [u8; 8] {
    revision.to_be_bytes()
}

/// `bytes` followed by one more byte.
pub fn with_byte(bytes: &[u8], b: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(bytes.len() + 1);
    k.extend_from_slice(bytes);
    k.push(b);
    k
}

/// The prefix every descendant of `path` starts with.
pub fn descendant_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

/// leases column: `L id` → lease record; `N id path` → () for each node bound to it.
pub fn lease_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'L'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn lease_nodes_prefix(id: u64) -> Vec<u8> {
    let mut k = vec![b'N'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn lease_node_key(id: u64, path: &str) -> Vec<u8> {
    let mut k = lease_nodes_prefix(id);
    k.extend_from_slice(path.as_bytes());
    k
}

pub mod meta {
    pub const REVISION: &[u8] = b"revision";
    pub const COMPACT_REVISION: &[u8] = b"compact_revision";
    pub const SM_TIME: &[u8] = b"sm_time";
    /// The last lease id granted (ids are given out in apply, so every member agrees).
    pub const LAST_LEASE_ID: &[u8] = b"last_lease_id";
    /// Opaque to the store: the Raft layer's last-applied log id and membership.
    pub const APPLIED: &[u8] = b"applied";
    /// Set while a snapshot is being installed; found at start-up, the state is unusable.
    pub const INSTALLING: &[u8] = b"installing";
    /// The key layout the state was written with ([`super::LAYOUT`]).
    pub const LAYOUT: &[u8] = b"layout";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_newest_first_and_before_children() {
        let mut keys = [
            version_key("/a", 1),
            version_key("/a", 7),
            version_key("/a/b", 3),
            version_key("/a!", 2),
            version_key("/a", 4),
        ];
        keys.sort();
        let decoded: Vec<_> = keys
            .iter()
            .map(|k| {
                let (p, r) = split_version_key(k).unwrap();
                (std::str::from_utf8(p).unwrap().to_owned(), r)
            })
            .collect();
        let want = [("/a", 7), ("/a", 4), ("/a", 1), ("/a!", 2), ("/a/b", 3)];
        let want: Vec<_> = want.iter().map(|(p, r)| (p.to_string(), *r)).collect();
        assert_eq!(decoded, want);
    }
}

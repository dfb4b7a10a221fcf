//! The newest committed stat, and within a byte budget the value, of nodes that applies
//! have recently read or written, kept in memory for apply and for reads of the newest
//! state (a get then needs neither a RocksDB snapshot nor a seek through the versions).
//!
//! Without it a put costs two memtable searches before it writes anything (the node's
//! newest version, and its value for the `prev` of the answer): profiling a 3-member
//! cluster under puts put them at ~15% of every member's CPU. etcd keeps its key index in
//! memory for the same reason, ZooKeeper its whole tree. Apply is the only writer and the
//! only user, and updates it after each commit, so an entry is always the committed state;
//! a snapshot install empties it.

use std::collections::HashMap;

use cairn_api::Stat;

/// Nodes remembered at most; past it, only nodes already remembered are kept up to date.
const MAX_ENTRIES: usize = 1_000_000;
/// Bytes of values remembered at most; past it, new entries carry their stat only.
const MAX_VALUE_BYTES: usize = 64 << 20;

#[derive(Debug)]
struct Entry {
    stat: Stat,
    /// The value at `stat.mod_revision`, when within the budget.
    value: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub(crate) struct LatestCache {
    nodes: HashMap<String, Entry, foldhash::fast::RandomState>,
    value_bytes: usize,
}

/// A committed change of one node, as the cache takes it after a commit; it borrows the
/// path and value from the apply's pending writes.
pub(crate) struct Change<'a> {
    pub path: &'a str,
    /// `None`: the node was deleted.
    pub stat: Option<Stat>,
    /// The new value, when the change wrote one.
    pub value: Option<&'a [u8]>,
}

impl LatestCache {
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|e| e.stat.clone())
    }

    /// The value of `path` at `mod_revision`, if remembered.
    pub fn value(&self, path: &str, mod_revision: u64) -> Option<Vec<u8>> {
        self.nodes.get(path).filter(|e| e.stat.mod_revision == mod_revision).and_then(|e| e.value.clone())
    }

    /// Remembers a committed stat read from disk, when there is room.
    pub fn remember(&mut self, path: &str, stat: &Stat) {
        if self.nodes.len() < MAX_ENTRIES && !self.nodes.contains_key(path) {
            self.nodes.insert(path.to_owned(), Entry { stat: stat.clone(), value: None });
        }
    }

    /// Remembers a committed value read from disk, when its node is remembered at that
    /// revision and the budget allows.
    pub fn remember_value(&mut self, path: &str, mod_revision: u64, value: &[u8]) {
        if self.value_bytes + value.len() > MAX_VALUE_BYTES {
            return;
        }
        if let Some(e) = self.nodes.get_mut(path) {
            if e.stat.mod_revision == mod_revision && e.value.is_none() {
                self.value_bytes += value.len();
                e.value = Some(value.to_vec());
            }
        }
    }

    /// The stat and value of `path`, when both are here; `None` says nothing about whether
    /// the node exists.
    pub fn node(&self, path: &str) -> Option<(Stat, Vec<u8>)> {
        let e = self.nodes.get(path)?;
        Some((e.stat.clone(), e.value.clone()?))
    }

    /// Takes a commit's changes. Every node the commit changed must pass through here, or
    /// an entry would go stale.
    pub fn commit(&mut self, changes: Vec<Change<'_>>) {
        for Change { path, stat, value } in changes {
            let Some(stat) = stat else {
                let old = self.nodes.remove(path);
                self.release(old);
                continue;
            };
            // A node already kept is updated in place, its value's buffer reused: a put
            // on a known key then allocates nothing here.
            if let Some(entry) = self.nodes.get_mut(path) {
                let old_len = entry.value.as_ref().map_or(0, Vec::len);
                match value {
                    Some(v) if self.value_bytes - old_len + v.len() <= MAX_VALUE_BYTES => {
                        let buf = entry.value.get_or_insert_with(Vec::new);
                        buf.clear();
                        buf.extend_from_slice(v);
                        self.value_bytes = self.value_bytes - old_len + v.len();
                    }
                    // Only the stat changed (a child came or went): the value stays.
                    None if entry.stat.mod_revision == stat.mod_revision => {}
                    _ => {
                        entry.value = None;
                        self.value_bytes -= old_len;
                    }
                }
                entry.stat = stat;
                continue;
            }
            if self.nodes.len() >= MAX_ENTRIES {
                continue;
            }
            let value = value.filter(|v| self.value_bytes + v.len() <= MAX_VALUE_BYTES).map(<[u8]>::to_vec);
            self.value_bytes += value.as_ref().map_or(0, Vec::len);
            self.nodes.insert(path.to_owned(), Entry { stat, value });
        }
    }

    fn release(&mut self, entry: Option<Entry>) {
        if let Some(v) = entry.and_then(|e| e.value) {
            self.value_bytes -= v.len();
        }
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.value_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mod_revision: u64) -> Stat {
        Stat { mod_revision, ..Stat::default() }
    }

    fn change<'a>(path: &'a str, stat: Option<Stat>, value: Option<&'a [u8]>) -> Change<'a> {
        Change { path, stat, value }
    }

    #[test]
    fn follows_commits_and_keeps_the_value_across_stat_only_changes() {
        let mut c = LatestCache::default();
        c.commit(vec![change("/a", Some(stat(2)), Some(b"v2"))]);
        assert_eq!(c.value("/a", 2).as_deref(), Some(&b"v2"[..]));
        assert_eq!(c.node("/a"), Some((stat(2), b"v2".to_vec())));
        let children_changed = Stat { cversion: 1, ..stat(2) };
        c.commit(vec![change("/a", Some(children_changed.clone()), None)]);
        assert_eq!(c.stat("/a"), Some(children_changed));
        assert_eq!(c.value("/a", 2).as_deref(), Some(&b"v2"[..]));
        assert_eq!(c.value("/a", 1), None, "another revision's value is not this one");
        c.commit(vec![change("/a", None, None)]);
        assert_eq!(c.stat("/a"), None);
        assert_eq!(c.value_bytes, 0);
    }

    #[test]
    fn a_new_value_replaces_the_old_one_in_place() {
        let mut c = LatestCache::default();
        c.commit(vec![change("/a", Some(stat(2)), Some(b"v2"))]);
        c.commit(vec![change("/a", Some(stat(3)), Some(b"value 3"))]);
        assert_eq!(c.node("/a"), Some((stat(3), b"value 3".to_vec())));
        assert_eq!(c.value("/a", 2), None);
        assert_eq!(c.value_bytes, 7);
        c.commit(vec![change("/a", Some(stat(4)), Some(b"4"))]);
        assert_eq!(c.value("/a", 4).as_deref(), Some(&b"4"[..]));
        assert_eq!(c.value_bytes, 1);
    }

    #[test]
    fn a_new_revision_without_its_value_forgets_the_old_value() {
        let mut c = LatestCache::default();
        c.commit(vec![change("/a", Some(stat(2)), Some(b"v2"))]);
        c.commit(vec![change("/a", Some(stat(3)), None)]);
        assert_eq!(c.value("/a", 3), None);
        assert_eq!(c.value_bytes, 0);
    }

    #[test]
    fn remembers_reads_only_once_and_values_only_at_their_revision() {
        let mut c = LatestCache::default();
        c.remember("/a", &stat(4));
        c.remember("/a", &stat(9));
        assert_eq!(c.stat("/a"), Some(stat(4)));
        c.remember_value("/a", 3, b"old");
        assert_eq!(c.value("/a", 3), None);
        c.remember_value("/a", 4, b"v4");
        assert_eq!(c.value("/a", 4).as_deref(), Some(&b"v4"[..]));
        assert_eq!(c.value_bytes, 2);
    }

    #[test]
    fn values_beyond_the_budget_are_left_on_disk() {
        let mut c = LatestCache::default();
        let big = vec![0u8; MAX_VALUE_BYTES / 2 + 1];
        c.commit(vec![change("/a", Some(stat(2)), Some(&big)), change("/b", Some(stat(2)), Some(&big))]);
        assert!(c.value("/a", 2).is_some());
        assert_eq!(c.value("/b", 2), None);
        assert_eq!(c.stat("/b"), Some(stat(2)), "the stat is still remembered");
        c.commit(vec![change("/a", None, None)]);
        c.commit(vec![change("/b", Some(stat(3)), Some(&big))]);
        assert!(c.value("/b", 3).is_some(), "deleting /a freed its bytes");
    }
}

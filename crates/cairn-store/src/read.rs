//! Reading the namespace at any revision still in the history window.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cairn_api::{validate_path, ApiError, Child, ErrorCode, Node, Page, Stat, PAGE_BYTE_BUDGET};

use crate::keys::{self, meta, AFTER_SLASH, SEP};
use crate::kv::{Cf, Cursor, KvRead};
use crate::store::{read_u64, SnapView};
use crate::{Event, Lease, StoreError};

/// Rough JSON size of a stat, for the page byte budget.
const STAT_BYTES: usize = 200;

/// The newest version of `path` at or before `at`; `None` if it did not exist then.
pub(crate) fn stat_at(kv: &dyn KvRead, path: &str, at: u64) -> Result<Option<Stat>, StoreError> {
    let mut c = kv.cursor(Cf::Stat);
    c.seek(&keys::version_key(path, at));
    if !c.valid() {
        c.status()?;
        return Ok(None);
    }
    match keys::split_version_key(c.key()) {
        Some((p, _)) if p == path.as_bytes() => Ok(bincode::deserialize(c.value())?),
        _ => Ok(None),
    }
}

pub(crate) fn value_of(kv: &dyn KvRead, path: &str, stat: &Stat) -> Result<Vec<u8>, StoreError> {
    kv.get(Cf::Data, &keys::data_key(path, stat.mod_revision))?
        .ok_or_else(|| StoreError::Corrupt(format!("value of {path} at {} is missing", stat.mod_revision)))
}

pub(crate) fn node_at(kv: &dyn KvRead, path: &str, at: u64) -> Result<Option<Node>, StoreError> {
    match stat_at(kv, path, at)? {
        None => Ok(None),
        Some(stat) => Ok(Some(Node { path: path.to_owned(), value: value_of(kv, path, &stat)?, stat })),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A cursor of the stat or live column on the first key below `path/` that comes after the
/// entry `after` (a name or a relative path, with all its versions); also returns the prefix.
fn cursor_below<'a>(
    kv: &'a dyn KvRead,
    cf: Cf,
    path: &str,
    after: Option<&str>,
) -> (Vec<u8>, Box<dyn Cursor + 'a>) {
    let prefix = keys::descendant_prefix(path).into_bytes();
    let mut c = kv.cursor(cf);
    match after {
        Some(rel) => c.seek(&keys::with_byte(&[prefix.as_slice(), rel.as_bytes()].concat(), 1)),
        None => c.seek(&prefix),
    }
    (prefix, c)
}

/// A page of children being filled, within a count and a byte budget.
#[derive(Default)]
struct ChildPage {
    out: Vec<Child>,
    bytes: usize,
}

impl ChildPage {
    /// Full at `limit` children or past the byte budget (never before one child).
    fn full(&self, limit: usize) -> bool {
        self.out.len() == limit || (self.bytes >= PAGE_BYTE_BUDGET && !self.out.is_empty())
    }

    fn push(&mut self, name: String, stat: Stat) {
        self.bytes += name.len() + STAT_BYTES;
        self.out.push(Child { name, stat });
    }
}

/// Children of `path` at `at`, in name order, after the child named `after`.
///
/// Children are not stored under their parent: they are found by walking the keys below
/// `path/` and seeking past each child's subtree, one seek per child with descendants.
pub(crate) fn children_at(
    kv: &dyn KvRead,
    path: &str,
    at: u64,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Child>, bool), StoreError> {
    let (prefix, mut c) = cursor_below(kv, Cf::Stat, path, after);
    let mut page = ChildPage::default();
    while c.valid() {
        let key = c.key();
        if !key.starts_with(&prefix) {
            break;
        }
        let rest = &key[prefix.len()..];
        let Some(i) = rest.iter().position(|&b| b == b'/' || b == SEP) else {
            return Err(StoreError::Corrupt("stat key without separator".into()));
        };
        let child_path = &key[..prefix.len() + i];
        if rest[i] == b'/' {
            // A grandchild: skip the whole subtree of this child.
            c.seek(&keys::with_byte(child_path, AFTER_SLASH));
            continue;
        }
        if i == 0 {
            // The root's own versions (its descendant prefix is "/").
            c.seek(&keys::with_byte(&prefix, 1));
            continue;
        }
        let Some((_, rev)) = keys::split_version_key(key) else {
            return Err(StoreError::Corrupt("bad stat key".into()));
        };
        if rev > at {
            let child = utf8(child_path)?;
            c.seek(&keys::version_key(&child, at));
            continue;
        }
        if let Some(stat) = bincode::deserialize::<Option<Stat>>(c.value())? {
            if page.full(limit) {
                return Ok((page.out, true));
            }
            page.push(utf8(&rest[..i])?, stat);
        }
        let skip = keys::with_byte(child_path, 1);
        c.seek(&skip);
    }
    c.status()?;
    Ok((page.out, false))
}

/// Children of `path` at the newest revision `at`, as [`children_at`] finds them, but
/// walking the live column: deleted children cost nothing here, while [`children_at`]
/// steps over each one's versions until history compaction removes them.
pub(crate) fn live_children_at(
    kv: &dyn KvRead,
    path: &str,
    at: u64,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Child>, bool), StoreError> {
    let (prefix, mut c) = cursor_below(kv, Cf::Live, path, after);
    let mut page = ChildPage::default();
    while c.valid() {
        let key = c.key();
        if !key.starts_with(&prefix) {
            break;
        }
        let rest = &key[prefix.len()..];
        if let Some(i) = rest.iter().position(|&b| b == b'/') {
            // A grandchild: skip the whole subtree of this child.
            c.seek(&keys::with_byte(&key[..prefix.len() + i], AFTER_SLASH));
            continue;
        }
        let child = utf8(key)?;
        let Some(stat) = stat_at(kv, &child, at)? else {
            return Err(StoreError::Corrupt(format!("{child} is in the live column but has no stat")));
        };
        if page.full(limit) {
            return Ok((page.out, true));
        }
        page.push(child[prefix.len()..].to_owned(), stat);
        c.next();
    }
    c.status()?;
    Ok((page.out, false))
}

/// Every node below `path` (not `path` itself) at `at`, in path order, after the
/// descendant whose path relative to `path/` is `after`.
pub(crate) fn subtree_at(
    kv: &dyn KvRead,
    path: &str,
    at: u64,
    after: Option<&str>,
    limit: usize,
    budget: usize,
    with_values: bool,
) -> Result<(Vec<Node>, bool), StoreError> {
    let (prefix, mut c) = cursor_below(kv, Cf::Stat, path, after);
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    while c.valid() {
        let key = c.key();
        if !key.starts_with(&prefix) {
            break;
        }
        let Some((p, rev)) = keys::split_version_key(key) else {
            return Err(StoreError::Corrupt("bad stat key".into()));
        };
        if p.len() <= path.len() {
            // The root itself, when listing the root's subtree.
            c.seek(&keys::with_byte(p, 1));
            continue;
        }
        let node_path = utf8(p)?;
        if rev > at {
            c.seek(&keys::version_key(&node_path, at));
            continue;
        }
        if let Some(stat) = bincode::deserialize::<Option<Stat>>(c.value())? {
            if out.len() == limit || (bytes >= budget && !out.is_empty()) {
                return Ok((out, true));
            }
            let value = if with_values { value_of(kv, &node_path, &stat)? } else { Vec::new() };
            bytes += node_path.len() + value.len() + STAT_BYTES;
            out.push(Node { path: node_path.clone(), value, stat });
        }
        c.seek(&keys::with_byte(node_path.as_bytes(), 1));
    }
    c.status()?;
    Ok((out, false))
}

/// The opaque continuation of a listing: the revision of its first page and the last entry.
fn encode_cursor(revision: u64, last: &str) -> String {
    let mut raw = revision.to_be_bytes().to_vec();
    raw.extend_from_slice(last.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::invalid_request("cursor is not one this server issued (use `next` as given)");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    if raw.len() < 8 {
        return Err(bad());
    }
    let (rev, last) = raw.split_at(8);
    let rev = u64::from_be_bytes(rev.try_into().map_err(|_| bad())?);
    Ok((rev, String::from_utf8(last.to_vec()).map_err(|_| bad())?))
}

/// A consistent view of the namespace, for one request.
pub struct ReadView<'a> {
    kv: SnapView<'a>,
    revision: u64,
    compact_revision: u64,
}

impl<'a> ReadView<'a> {
    pub(crate) fn new(kv: SnapView<'a>) -> Result<Self, StoreError> {
        let revision = read_u64(kv.get(Cf::Meta, meta::REVISION)?)?;
        let compact_revision = read_u64(kv.get(Cf::Meta, meta::COMPACT_REVISION)?)?;
        Ok(ReadView { kv, revision, compact_revision })
    }

    /// The revision this view sees.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn compact_revision(&self) -> u64 {
        self.compact_revision
    }

    /// The revision a read at `at` (default: now) sees, or why it cannot be read.
    pub fn resolve(&self, at: Option<u64>) -> Result<u64, ApiError> {
        match at {
            None => Ok(self.revision),
            Some(n) if n > self.revision => Err(ApiError::new(
                ErrorCode::FutureRevision,
                format!("revision {n} is ahead of the current revision {}", self.revision),
            )),
            Some(n) if n < self.compact_revision => Err(ApiError::compacted(n, self.compact_revision)),
            Some(n) => Ok(n),
        }
    }

    /// The node at `path` as of `at` (default: now).
    pub fn get(&self, path: &str, at: Option<u64>) -> Result<Node, ApiError> {
        validate_path(path)?;
        let at = self.resolve(at)?;
        node_at(&self.kv, path, at)?.ok_or_else(|| not_found_at(path, at, self.revision))
    }

    /// The node at `path` if it exists, without treating absence as an error.
    pub fn find(&self, path: &str) -> Result<Option<Node>, ApiError> {
        validate_path(path)?;
        Ok(node_at(&self.kv, path, self.revision)?)
    }

    /// Where a listing starts: a cursor pins the revision of its first page.
    fn page_start(&self, at: Option<u64>, cursor: Option<&str>) -> Result<(u64, Option<String>), ApiError> {
        match cursor {
            Some(c) => {
                let (rev, last) = decode_cursor(c)?;
                Ok((self.resolve(Some(rev))?, Some(last)))
            }
            None => Ok((self.resolve(at)?, None)),
        }
    }

    fn require(&self, path: &str, at: u64) -> Result<(), ApiError> {
        match stat_at(&self.kv, path, at)? {
            Some(_) => Ok(()),
            None => Err(not_found_at(path, at, self.revision)),
        }
    }

    /// One page of the children of `path`.
    pub fn children(
        &self,
        path: &str,
        at: Option<u64>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Child>, ApiError> {
        validate_path(path)?;
        let (at, after) = self.page_start(at, cursor)?;
        self.require(path, at)?;
        let (entries, more) = if at == self.revision {
            live_children_at(&self.kv, path, at, after.as_deref(), limit)?
        } else {
            children_at(&self.kv, path, at, after.as_deref(), limit)?
        };
        let next = match (more, entries.last()) {
            (true, Some(last)) => Some(encode_cursor(at, &last.name)),
            _ => None,
        };
        Ok(Page { entries, revision: at, next })
    }

    /// One page of the whole subtree below `path`.
    pub fn subtree(
        &self,
        path: &str,
        at: Option<u64>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Node>, ApiError> {
        validate_path(path)?;
        let (at, after) = self.page_start(at, cursor)?;
        self.require(path, at)?;
        let (entries, more) =
            subtree_at(&self.kv, path, at, after.as_deref(), limit, PAGE_BYTE_BUDGET, true)?;
        let prefix_len = keys::descendant_prefix(path).len();
        let next = match (more, entries.last()) {
            (true, Some(last)) => Some(encode_cursor(at, &last.path[prefix_len..])),
            _ => None,
        };
        Ok(Page { entries, revision: at, next })
    }

    /// The events of revisions `from..=to` still in the history, in order.
    pub fn events(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<Event>)>, StoreError> {
        let mut out = Vec::new();
        let mut c = self.kv.cursor(Cf::Events);
        c.seek(&keys::event_key(from));
        while c.valid() {
            let rev = u64::from_be_bytes(
                c.key().try_into().map_err(|_| StoreError::Corrupt("bad event key".into()))?,
            );
            if rev > to {
                break;
            }
            out.push((rev, bincode::deserialize(c.value())?));
            c.next();
        }
        c.status()?;
        Ok(out)
    }

    /// A lease and the paths of the nodes bound to it.
    pub fn lease(&self, id: u64) -> Result<Option<(Lease, Vec<String>)>, StoreError> {
        let Some(raw) = self.kv.get(Cf::Leases, &keys::lease_key(id))? else { return Ok(None) };
        let lease: Lease = bincode::deserialize(&raw)?;
        let prefix = keys::lease_nodes_prefix(id);
        let mut c = self.kv.cursor(Cf::Leases);
        c.seek(&prefix);
        let mut paths = Vec::new();
        while c.valid() && c.key().starts_with(&prefix) {
            paths.push(utf8(&c.key()[prefix.len()..])?);
            c.next();
        }
        c.status()?;
        Ok(Some((lease, paths)))
    }

    /// Every lease, in id order.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let mut c = self.kv.cursor(Cf::Leases);
        c.seek(b"L");
        let mut out = Vec::new();
        while c.valid() && c.key().first() == Some(&b'L') {
            out.push(bincode::deserialize(c.value())?);
            c.next();
        }
        c.status()?;
        Ok(out)
    }

    /// The value a stat points at, for rendering events.
    pub fn value(&self, path: &str, stat: &Stat) -> Result<Vec<u8>, StoreError> {
        value_of(&self.kv, path, stat)
    }
}

fn not_found_at(path: &str, at: u64, current: u64) -> ApiError {
    if at == current {
        ApiError::not_found(path)
    } else {
        ApiError::new(ErrorCode::NotFound, format!("node {path} did not exist at revision {at}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(42, "a/b");
        assert_eq!(decode_cursor(&c).unwrap(), (42, "a/b".to_owned()));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor("AA").is_err());
    }
}

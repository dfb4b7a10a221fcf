//! A tiny key-value abstraction so the namespace logic runs unchanged over a consistent
//! RocksDB snapshot (reads) and over the pending writes of an apply (reads see their own
//! writes). RocksDB's C++ WriteBatchWithIndex does the latter but the Rust binding does not
//! expose it, hence the ordered overlay and merging cursor below.

use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{DBRawIteratorWithThreadMode, DB};

use crate::StoreError;

/// The column families of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Stat = 0,
    Data = 1,
    Events = 2,
    Meta = 3,
    Leases = 4,
    Live = 5,
}

pub const CF_COUNT: usize = 6;
pub const ALL_CFS: [Cf; CF_COUNT] = [Cf::Stat, Cf::Data, Cf::Events, Cf::Meta, Cf::Leases, Cf::Live];

pub trait Cursor {
    fn seek(&mut self, key: &[u8]);
    fn next(&mut self);
    fn valid(&self) -> bool;
    fn key(&self) -> &[u8];
    fn value(&self) -> &[u8];
    fn status(&self) -> Result<(), StoreError>;
}

pub trait KvRead {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn cursor(&self, cf: Cf) -> Box<dyn Cursor + '_>;
}

pub struct DbCursor<'a>(pub DBRawIteratorWithThreadMode<'a, DB>);

impl Cursor for DbCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.0.seek(key)
    }
    fn next(&mut self) {
        self.0.next()
    }
    fn valid(&self) -> bool {
        self.0.valid()
    }
    fn key(&self) -> &[u8] {
        self.0.key().unwrap_or_default()
    }
    fn value(&self) -> &[u8] {
        self.0.value().unwrap_or_default()
    }
    fn status(&self) -> Result<(), StoreError> {
        Ok(self.0.status()?)
    }
}

/// Pending writes of one column: `None` is a delete.
pub type Layer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A cursor over `base` with `layer` laid on top: layer entries win, layer deletes hide.
pub struct Merged<'a> {
    base: Box<dyn Cursor + 'a>,
    layer: &'a Layer,
    top: Option<(&'a [u8], &'a Option<Vec<u8>>)>,
    on_top: bool,
}

impl<'a> Merged<'a> {
    pub fn new(base: Box<dyn Cursor + 'a>, layer: &'a Layer) -> Self {
        Merged { base, layer, top: None, on_top: false }
    }

    fn layer_from(&self, bound: Bound<&[u8]>) -> Option<(&'a [u8], &'a Option<Vec<u8>>)> {
        self.layer.range::<[u8], _>((bound, Bound::Unbounded)).next().map(|(k, v)| (k.as_slice(), v))
    }

    /// Positions on the smaller of the two heads, skipping deletes and what they hide.
    fn settle(&mut self) {
        loop {
            let Some((tk, tv)) = self.top else {
                self.on_top = false;
                return;
            };
            if self.base.valid() && self.base.key() < tk {
                self.on_top = false;
                return;
            }
            if tv.is_some() {
                self.on_top = true;
                return;
            }
            // A delete in the layer: skip it and the base entry it hides.
            if self.base.valid() && self.base.key() == tk {
                self.base.next();
            }
            self.top = self.layer_from(Bound::Excluded(tk));
        }
    }
}

impl Cursor for Merged<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.base.seek(key);
        self.top = self.layer_from(Bound::Included(key));
        self.settle();
    }
    fn next(&mut self) {
        if self.on_top {
            if let Some((tk, _)) = self.top {
                if self.base.valid() && self.base.key() == tk {
                    self.base.next();
                }
                self.top = self.layer_from(Bound::Excluded(tk));
            }
        } else {
            self.base.next();
        }
        self.settle();
    }
    fn valid(&self) -> bool {
        self.on_top || self.base.valid()
    }
    fn key(&self) -> &[u8] {
        match (self.on_top, self.top) {
            (true, Some((k, _))) => k,
            _ => self.base.key(),
        }
    }
    fn value(&self) -> &[u8] {
        match (self.on_top, self.top) {
            (true, Some((_, Some(v)))) => v,
            _ => self.base.value(),
        }
    }
    fn status(&self) -> Result<(), StoreError> {
        self.base.status()
    }
}

/// Stands in where a column family handle is missing (`Store::open` rules that out).
pub struct EmptyCursor;

impl Cursor for EmptyCursor {
    fn seek(&mut self, _key: &[u8]) {}
    fn next(&mut self) {}
    fn valid(&self) -> bool {
        false
    }
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> &[u8] {
        &[]
    }
    fn status(&self) -> Result<(), StoreError> {
        Err(StoreError::Corrupt("column family missing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cursor over a sorted vector, standing in for RocksDB.
    struct VecCursor<'a>(&'a [(Vec<u8>, Vec<u8>)], usize);
    impl Cursor for VecCursor<'_> {
        fn seek(&mut self, key: &[u8]) {
            self.1 = self.0.partition_point(|(k, _)| k.as_slice() < key);
        }
        fn next(&mut self) {
            self.1 += 1;
        }
        fn valid(&self) -> bool {
            self.1 < self.0.len()
        }
        fn key(&self) -> &[u8] {
            &self.0[self.1].0
        }
        fn value(&self) -> &[u8] {
            &self.0[self.1].1
        }
        fn status(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn merged_cursor_overlays_puts_and_deletes() {
        let base: Vec<(Vec<u8>, Vec<u8>)> =
            ["a", "c", "e", "g"].iter().map(|k| (k.as_bytes().to_vec(), b"base".to_vec())).collect();
        let mut layer = Layer::new();
        layer.insert(b"b".to_vec(), Some(b"top".to_vec()));
        layer.insert(b"c".to_vec(), Some(b"top".to_vec()));
        layer.insert(b"e".to_vec(), None);
        layer.insert(b"f".to_vec(), None);
        layer.insert(b"h".to_vec(), Some(b"top".to_vec()));
        let mut m = Merged::new(Box::new(VecCursor(&base, 0)), &layer);
        m.seek(b"");
        let mut seen = vec![];
        while m.valid() {
            seen.push(format!("{}={}", String::from_utf8_lossy(m.key()), String::from_utf8_lossy(m.value())));
            m.next();
        }
        assert_eq!(seen, ["a=base", "b=top", "c=top", "g=base", "h=top"]);
        m.seek(b"d");
        assert_eq!(m.key(), b"g");
    }
}

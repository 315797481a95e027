//! A plugin's key-value namespace as one call sees it: the committed store, the writes of
//! earlier entries of the batch being applied (`below`), and this call's own writes (`mine`),
//! buffered so a call that fails leaves nothing behind.
//!
//! Owned (no borrow of the caller's transaction) because wasmtime's store data must be
//! `'static`; the caller hands in what it has pending under the namespace and takes `mine`
//! back on success.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::state::{KvStore, StoreError};

pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

pub struct KvView {
    store: Arc<dyn KvStore>,
    /// The namespace's prefix in the store.
    prefix: Vec<u8>,
    /// Pending writes of the enclosing transaction, by full store key.
    below: Writes,
    /// This call's writes, by plugin key.
    mine: Writes,
    /// Bytes (keys + values) the namespace holds, kept up to date with `mine`.
    used: u64,
}

impl KvView {
    pub fn new(store: Arc<dyn KvStore>, prefix: Vec<u8>, below: Writes, used: u64) -> KvView {
        KvView { store, prefix, below, mine: Writes::new(), used }
    }

    /// A view of nothing: what an idle instance holds between calls.
    pub fn detached() -> KvView {
        static EMPTY: std::sync::OnceLock<Arc<dyn KvStore>> = std::sync::OnceLock::new();
        let store = EMPTY.get_or_init(|| Arc::new(crate::state::MemStore::default())).clone();
        KvView::new(store, Vec::new(), Writes::new(), 0)
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.mine.get(key) {
            return Ok(v.clone());
        }
        let full = self.full(key);
        if let Some(v) = self.below.get(&full) {
            return Ok(v.clone());
        }
        self.store.get(&full)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let old = self.get(&key)?.map_or(0, |v| (key.len() + v.len()) as u64);
        self.used = self.used.saturating_sub(old) + (key.len() + value.len()) as u64;
        self.mine.insert(key, Some(value));
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) -> Result<(), StoreError> {
        let old = self.get(&key)?.map_or(0, |v| (key.len() + v.len()) as u64);
        self.used = self.used.saturating_sub(old);
        self.mine.insert(key, None);
        Ok(())
    }

    /// Up to `limit` entries with key >= `start`, in order, all three layers merged.
    pub fn scan(&self, start: &[u8], limit: usize) -> Result<crate::state::Items, StoreError> {
        let from = self.full(start);
        let in_ns = |k: &Vec<u8>| k.starts_with(&self.prefix);
        // Enough from each lower layer that `limit` entries survive the deletions above it.
        let deletions =
            self.mine.values().filter(|v| v.is_none()).count() + self.below.values().filter(|v| v.is_none()).count();
        let want = limit.saturating_add(deletions);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (k, v) in self.store.scan_range_limit(&from, &self.prefix, want)? {
            merged.insert(k, v);
        }
        for (k, v) in self.below.range(from.clone()..).take_while(|(k, _)| in_ns(k)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        let strip = |k: &[u8]| k[self.prefix.len()..].to_vec();
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = merged.into_iter().map(|(k, v)| (strip(&k), v)).collect();
        for (k, v) in self.mine.range(start.to_vec()..) {
            match v {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        Ok(out.into_iter().take(limit).collect())
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// This call's writes, by full store key.
    pub fn into_writes(self) -> Writes {
        let prefix = self.prefix;
        self.mine.into_iter().map(|(k, v)| ([prefix.as_slice(), &k].concat(), v)).collect()
    }
}

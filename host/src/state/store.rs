//! Where the state machine keeps its bytes: sled in production (`sled_store`), a `BTreeMap` in
//! unit tests.
//! One flat key space; `state::tree` and `state::txn` decide the key layout.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::txn::Writes;

#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub trait KvStore: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// The first `limit` keys that are `>= from` and start with `prefix`, in key order.
    fn scan_range_limit(&self, from: &[u8], prefix: &[u8], limit: usize) -> Result<super::Items, StoreError>;
    /// The first `limit` keys starting with `prefix`, in key order.
    fn scan_prefix_limit(&self, prefix: &[u8], limit: usize) -> Result<super::Items, StoreError> {
        self.scan_range_limit(prefix, prefix, limit)
    }
    /// Every key starting with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<super::Items, StoreError> {
        self.scan_prefix_limit(prefix, usize::MAX)
    }
    /// Apply every write atomically.
    fn commit(&self, writes: Writes) -> Result<(), StoreError>;
    fn export(&self) -> Result<super::Items, StoreError> {
        self.scan_prefix(b"")
    }
    /// Drop everything and load `items`.
    fn replace_all(&self, items: super::Items) -> Result<(), StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Default)]
pub struct MemStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KvStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    fn scan_range_limit(&self, from: &[u8], prefix: &[u8], limit: usize) -> Result<super::Items, StoreError> {
        Ok(self
            .map()
            .range(from.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, writes: Writes) -> Result<(), StoreError> {
        let mut map = self.map();
        for (k, v) in writes {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    fn replace_all(&self, items: super::Items) -> Result<(), StoreError> {
        *self.map() = items.into_iter().collect();
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

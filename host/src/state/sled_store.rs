//! The production store: sled behind a write-back buffer.
//!
//! Why the buffer: sled 0.34's `apply_batch` rolls and writes its IO buffer at every batch (to
//! recover the batch atomically), about 20 KB of disk writes and a wake-up of each of its IO
//! threads per call. One batch per applied entry made that about a quarter of the leader's CPU
//! at one client. Here an applied entry's writes go into memory and reach sled every
//! [`WRITE_BACK_EVERY`] (or sooner when [`WRITE_BACK_BYTES`] are pending) as one batch, on a
//! thread of their own that stays while writes keep coming.
//!
//! Why it is safe: the WAL, not sled, makes a write durable. Each batch written back holds
//! every write of the entries it covers, the last applied log id among them, so sled is always
//! the state at some applied id, and after a crash the WAL replays from there. The WAL is
//! purged only behind a snapshot, and taking one calls [`KvStore::flush`], which writes
//! everything back first.
//!
//! Readers see the newest layer first: writes not yet handed to the write-back (`active`), then
//! the batch being written (`frozen`), then sled. `frozen` is dropped only after sled holds it.
//! Point reads of sled go through a [`ReadCache`] of what it holds.

use std::iter::Peekable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::layer::{key_hash, Layer};
use super::read_cache::ReadCache;
use super::store::{KvStore, StoreError};
use super::txn::Writes;

/// How stale sled may get: the replay after a crash is at most about this much of the log.
/// Longer windows fold more writes of one key into one (a node created and deleted within
/// it never reaches sled): 100 ms instead of 20 gave ephemeral x64 +5-8% and write x64 +2-5%;
/// 250 instead of 100 folds each session's record and floor 2.5 times as often (64 sessions
/// rewrite both with every request), and cut the servers' CPU per ephemeral cycle by a median
/// 4% (lower in 8 of 8 rounds of `scripts/ab-together`; write x64 unchanged). A crash replays
/// at most 250 ms of the log, a few thousand entries at the most the ensemble commits.
const WRITE_BACK_EVERY: Duration = Duration::from_millis(250);
/// Start a write-back early once this much is pending.
const WRITE_BACK_BYTES: usize = 4 << 20;
/// Beyond this much pending, an apply waits for the running write-back (memory stays bounded
/// when sled is slower than the log).
const MAX_PENDING_BYTES: usize = 64 << 20;
/// Memory for the read cache: the whole tree of most ensembles, and the hot part of the rest.
const READ_CACHE_BYTES: usize = 32 << 20;

/// When to write back (the constants above; tests make every commit start one).
#[derive(Clone, Copy)]
struct Tuning {
    every: Duration,
    bytes: usize,
    max_bytes: usize,
}

const TUNING: Tuning = Tuning { every: WRITE_BACK_EVERY, bytes: WRITE_BACK_BYTES, max_bytes: MAX_PENDING_BYTES };

#[derive(Default)]
struct Layers {
    active: Layer,
    active_bytes: usize,
    frozen: Option<Arc<Layer>>,
}

struct WriteBack {
    /// When the last write-back thread started (None: never, so the first commit starts one).
    last: Option<Instant>,
    running: Option<JoinHandle<Result<(), sled::Error>>>,
    /// A failed write-back leaves its batch in `frozen`; nothing is written back after it.
    failed: Option<String>,
}

impl WriteBack {
    /// An error if a write-back has failed: nothing is applied after it.
    fn healthy(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(e) => Err(StoreError(format!("writing back to sled failed earlier: {e}"))),
            None => Ok(()),
        }
    }
}

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    layers: Arc<RwLock<Layers>>,
    /// Locked only while `layers` is (read for a lookup, write when a write-back lands), so
    /// what it caches of a key cannot be overtaken by a write-back of that key.
    cache: Arc<Mutex<ReadCache>>,
    write_back: Mutex<WriteBack>,
    /// Whether the running write-back thread may go on to another round.
    linger: Arc<AtomicBool>,
    tuning: Tuning,
}

impl SledStore {
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::open_tuned(path, TUNING)
    }

    fn open_tuned(path: &std::path::Path, tuning: Tuning) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        let tree = db.open_tree("state")?;
        Ok(SledStore {
            db,
            tree,
            layers: Arc::default(),
            cache: Arc::new(Mutex::new(ReadCache::new(READ_CACHE_BYTES))),
            write_back: Mutex::new(WriteBack { last: None, running: None, failed: None }),
            linger: Arc::default(),
            tuning,
        })
    }

    fn layers(&self) -> RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_write_back(&self) -> std::sync::MutexGuard<'_, WriteBack> {
        self.write_back.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the running write-back, if any; an error sticks.
    fn join(&self, wb: &mut WriteBack) -> Result<(), StoreError> {
        if let Some(handle) = wb.running.take() {
            self.linger.store(false, Ordering::SeqCst);
            // Wake it if it is waiting out `tuning.every`: a snapshot's flush (and every apply
            // behind it, held up by the write-back lock) would otherwise wait up to 250 ms.
            handle.thread().unpark();
            let outcome = match handle.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the write-back thread panicked".to_string()),
            };
            if let Err(e) = outcome {
                wb.failed = Some(e);
            }
        }
        wb.healthy()
    }

    /// Hand `active` to a new write-back thread. The caller has joined the previous one.
    ///
    /// The thread stays while writes keep coming, writing back every `tuning.every`: the last
    /// writes of a burst must not wait in memory for a commit that may not come for hours.
    /// It leaves when a round finds nothing new, or when `join` tells it to. (A commit that
    /// lands just as it leaves waits in memory for the next commit: still read, still in the
    /// WAL, only not yet in sled.)
    fn start(&self, wb: &mut WriteBack) -> Result<(), StoreError> {
        let Some(mut batch) = freeze(&mut self.layers.write().unwrap_or_else(|p| p.into_inner())) else {
            return Ok(());
        };
        let (tree, layers, cache, linger, every) =
            (self.tree.clone(), self.layers.clone(), self.cache.clone(), self.linger.clone(), self.tuning.every);
        linger.store(true, Ordering::SeqCst);
        let handle = std::thread::Builder::new()
            .name("state-write-back".into())
            .spawn(move || loop {
                write_batch(&tree, batch.writes(), &cache)?;
                {
                    let mut l = layers.write().unwrap_or_else(|p| p.into_inner());
                    lock(&cache).absorb(batch.writes());
                    l.frozen = None;
                }
                if !linger.load(Ordering::SeqCst) {
                    return Ok(());
                }
                // Until the next round, or until `join` wakes it (an early wake-up only makes
                // an early round).
                std::thread::park_timeout(every);
                let mut l = layers.write().unwrap_or_else(|p| p.into_inner());
                // Ask before freezing: a batch frozen here must be written by this thread, or
                // the next `start` would replace it in `frozen` and the writes would be lost.
                if !linger.load(Ordering::SeqCst) {
                    return Ok(());
                }
                match freeze(&mut l) {
                    Some(next) => batch = next,
                    None => return Ok(()),
                }
            })
            .map_err(|e| StoreError(format!("starting the write-back thread: {e}")))?;
        wb.running = Some(handle);
        wb.last = Some(Instant::now());
        Ok(())
    }

    /// Write everything pending into sled's tree, and wait for it.
    fn write_back_all(&self, wb: &mut WriteBack) -> Result<(), StoreError> {
        self.join(wb)?;
        self.start(wb)?;
        self.join(wb)
    }
}

/// Move `active` to `frozen` (nothing to do if it is empty).
fn freeze(l: &mut Layers) -> Option<Arc<Layer>> {
    if l.active.is_empty() {
        return None;
    }
    let next = Layer::with_capacity(l.active.len());
    let batch = Arc::new(std::mem::replace(&mut l.active, next));
    l.active_bytes = 0;
    l.frozen = Some(batch.clone());
    Some(batch)
}

fn lock(cache: &Mutex<ReadCache>) -> std::sync::MutexGuard<'_, ReadCache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write `writes` into sled. A deletion of a key the read cache knows sled does not hold is
/// left out: an ephemeral sequential node created and deleted within one write-back, and the
/// keys that index it, reach sled only as deletions of keys it never had (in sled each still
/// walks the tree: about 1 µs). The cache cannot be wrong about such a key meanwhile: this
/// thread is sled's only writer, and a key being written back is answered from `frozen`,
/// never looked up in sled and cached.
fn write_batch(tree: &sled::Tree, writes: &Writes, cache: &Mutex<ReadCache>) -> Result<(), sled::Error> {
    let mut batch = sled::Batch::default();
    for (k, v) in writes {
        match v {
            Some(v) => batch.insert(k.as_slice(), v.as_slice()),
            None if lock(cache).known_absent(k) => {}
            None => batch.remove(k.as_slice()),
        }
    }
    tree.apply_batch(batch)
}

type Row = Result<(Vec<u8>, Option<Vec<u8>>), StoreError>;

/// `upper` over `lower`, both in key order: a key in `upper` hides the same key below it
/// (`None` is a deletion, kept so that a layer further up can hide what is below it too).
fn overlay(upper: impl Iterator<Item = Row>, lower: impl Iterator<Item = Row>) -> impl Iterator<Item = Row> {
    let mut upper: Peekable<_> = upper.peekable();
    let mut lower: Peekable<_> = lower.peekable();
    std::iter::from_fn(move || {
        let order = match (upper.peek(), lower.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => std::cmp::Ordering::Less,
            (None, Some(_)) | (_, Some(Err(_))) => std::cmp::Ordering::Greater,
            (Some(Ok((u, _))), Some(Ok((l, _)))) => u.cmp(l),
        };
        match order {
            std::cmp::Ordering::Less => upper.next(),
            std::cmp::Ordering::Greater => lower.next(),
            std::cmp::Ordering::Equal => {
                lower.next();
                upper.next()
            }
        }
    })
}

fn layer_from<'a>(layer: Option<&'a Layer>, from: &[u8]) -> impl Iterator<Item = Row> + 'a {
    let from = from.to_vec();
    layer.into_iter().flat_map(move |l| l.writes().range(from.clone()..)).map(|(k, v)| Ok((k.clone(), v.clone())))
}

impl KvStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let l = self.layers();
        let hash = key_hash(key);
        if let Some(v) = l.active.get(key, hash).or_else(|| l.frozen.as_ref().and_then(|f| f.get(key, hash))) {
            return Ok(v.clone());
        }
        // With `l` held, no write-back of `key` can land before this is cached: a key being
        // written back is in `frozen`, answered above.
        if let Some(v) = lock(&self.cache).get(key) {
            return Ok(v);
        }
        let v = self.tree.get(key)?.map(|v| v.to_vec());
        lock(&self.cache).insert(key.to_vec(), v.clone());
        drop(l);
        Ok(v)
    }

    fn scan_range_limit(&self, from: &[u8], prefix: &[u8], limit: usize) -> Result<super::Items, StoreError> {
        // The read lock keeps `frozen` until the scan is done: sled may hold half of it meanwhile.
        let l = self.layers();
        let stored =
            self.tree.range(from..).map(|r| r.map(|(k, v)| (k.to_vec(), Some(v.to_vec()))).map_err(StoreError::from));
        let below = overlay(layer_from(l.frozen.as_deref(), from), stored);
        overlay(layer_from(Some(&l.active), from), below)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .filter_map(|r| r.map(|(k, v)| v.map(|v| (k, v))).transpose())
            .take(limit)
            .collect()
    }

    fn commit(&self, writes: Writes) -> Result<(), StoreError> {
        let mut wb = self.lock_write_back();
        wb.healthy()?;
        let pending = {
            let mut l = self.layers.write().unwrap_or_else(|p| p.into_inner());
            for (k, v) in writes {
                l.active_bytes += k.len() + v.as_ref().map_or(0, Vec::len);
                l.active.insert(k, v);
            }
            l.active_bytes
        };
        let busy = wb.running.as_ref().is_some_and(|h| !h.is_finished());
        if busy && pending < self.tuning.max_bytes {
            return Ok(());
        }
        if pending >= self.tuning.bytes || wb.last.is_none_or(|t| t.elapsed() >= self.tuning.every) {
            self.join(&mut wb)?;
            self.start(&mut wb)?;
        }
        Ok(())
    }

    fn replace_all(&self, items: super::Items) -> Result<(), StoreError> {
        let mut wb = self.lock_write_back();
        self.join(&mut wb)?;
        // Held throughout: no lookup may cache what sled holds halfway through.
        let mut l = self.layers.write().unwrap_or_else(|p| p.into_inner());
        *l = Layers::default();
        lock(&self.cache).clear();
        // Not atomic in sled; the snapshot file is written first, and on open a state whose
        // applied id is missing or older than that file is reloaded from it.
        self.tree.clear()?;
        let mut batch = sled::Batch::default();
        for (k, v) in items {
            batch.insert(k, v);
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        drop(l);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut wb = self.lock_write_back();
        self.write_back_all(&mut wb)?;
        self.db.flush()?;
        Ok(())
    }
}

impl Drop for SledStore {
    /// A clean stop writes back what is pending, so the next start replays less of the WAL.
    fn drop(&mut self) {
        let mut wb = self.lock_write_back();
        if let Err(e) = self.write_back_all(&mut wb).and_then(|()| Ok(self.db.flush()?)) {
            tracing::warn!(error = %e, "writing the state back to sled at shutdown");
        }
    }
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;

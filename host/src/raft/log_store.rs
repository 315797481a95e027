//! `RaftLogStorage` over the WAL. Entries are kept in memory too (the log is bounded by
//! snapshots and purges), so reads never touch the disk; the WAL is for durability.
//!
//! Each entry is held encoded (the bytes the WAL wrote), and decoded as well until it has been
//! applied ([`LogStore::cool`]): the Raft core reads an entry to apply it and the replication
//! tasks read it to send it, both within moments of its append, so those reads only clone it.
//! Decoded, a group of small writes takes about six times its encoded size (each command's
//! path, data, identity and ACL are allocations of their own): at write x64 the entries since
//! the last snapshot were ~200 MB of a node's heap against 32 MiB encoded. An older entry is
//! read only for a follower that fell behind, and is decoded for it then.
//!
//! `append` returns at once; openraft is told the entries are flushed only from the WAL's
//! callback, after the `fdatasync` that covers them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bincode::Options;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogState, RaftLogReader, StorageIOError, Vote};

use super::{LogId, StorageError, TypeConfig};
use crate::wal::{self, Record, RecordKind, Wal, WalOptions};

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    wal: Wal,
    dir: PathBuf,
    /// Readers (replication tasks) and the single writer (the Raft core) share this. A std
    /// lock: held only for map operations, never across an await.
    mem: RwLock<Mem>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A node that stops cleanly keeps its last commit index; the WAL's own drop, after
        // this, writes what is queued and syncs it.
        let unsaved = self.mem.get_mut().unwrap_or_else(|p| p.into_inner()).committed_unsaved.take();
        if let Some(rec) = unsaved {
            self.wal.submit(&[rec], None);
        }
    }
}

/// An entry: encoded (its size is what the log's memory is bounded by, `raft/log_memory.rs`),
/// and decoded too until it is applied.
struct Held {
    log_id: LogId,
    bytes: Vec<u8>,
    decoded: Option<Entry<TypeConfig>>,
    /// The encoded bytes of every entry held since the log was opened, this one included: the
    /// bytes after an index are one subtraction, not a sum over the log every check.
    upto: u64,
}

impl Held {
    fn entry(&self) -> Result<Entry<TypeConfig>, StorageError> {
        match &self.decoded {
            Some(e) => Ok(e.clone()),
            None => dec(&self.bytes),
        }
    }
}

/// An entry's first field, read without decoding its payload.
#[derive(serde::Deserialize)]
struct Head {
    log_id: LogId,
}

#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Held>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    /// The commit index's record, not yet handed to the WAL (see `save_committed`).
    committed_unsaved: Option<Record>,
    /// Entries through this index are held encoded only.
    cooled_through: u64,
}

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
}

fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    opts().serialize(v).map_err(|e| StorageIOError::write_logs(&e).into())
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StorageError> {
    opts().deserialize(b).map_err(|e| StorageIOError::read_logs(&e).into())
}

impl LogStore {
    /// Open the log in `dir`, replaying the WAL.
    pub fn open(dir: &Path, wal_opts: WalOptions) -> Result<LogStore, StorageError> {
        let started = std::time::Instant::now();
        let (wal, records) = Wal::open(&dir.join("wal"), wal_opts).map_err(|e| StorageIOError::read_logs(&e))?;
        let read = started.elapsed();
        let mut mem = Mem::default();
        // Entries at or before the last purge are dropped below anyway: skip decoding them (a
        // segment holds everything since it was opened, most of it purged, and decoding was
        // the larger part of a restart's replay).
        let purged_through = records.iter().filter(|r| r.kind == RecordKind::PurgeThrough).map(|r| r.index).max();
        for r in records {
            match r.kind {
                RecordKind::Entry if purged_through.is_some_and(|p| r.index <= p) => {}
                RecordKind::Entry => {
                    // Kept encoded: whatever is read of it later decodes it then.
                    let head: Head = opts()
                        .allow_trailing_bytes()
                        .deserialize(&r.payload)
                        .map_err(|e| StorageIOError::read_logs(&e))?;
                    mem.insert(head.log_id, r.payload, None);
                }
                RecordKind::TruncateFrom => mem.truncate(r.index),
                RecordKind::PurgeThrough => {
                    let id: LogId = dec(&r.payload)?;
                    mem.purge(id);
                }
                RecordKind::Meta => mem.committed = dec(&r.payload)?,
            }
        }
        if let Some(p) = mem.last_purged {
            mem.purge(p);
        }
        tracing::info!(
            entries = mem.entries.len(),
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "log opened"
        );
        Ok(LogStore { inner: Arc::new(Inner { wal, dir: dir.to_path_buf(), mem: RwLock::new(mem) }) })
    }

    fn mem(&self) -> std::sync::RwLockReadGuard<'_, Mem> {
        self.inner.mem.read().unwrap_or_else(|p| p.into_inner())
    }

    fn mem_mut(&self) -> std::sync::RwLockWriteGuard<'_, Mem> {
        self.inner.mem.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The encoded bytes of the entries held after `index` (all of them for `None`).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let m = self.mem();
        let (Some((_, first)), Some((_, last))) = (m.entries.first_key_value(), m.entries.last_key_value()) else {
            return 0;
        };
        let through = index.and_then(|i| m.entries.range(..=i).next_back()).map(|(_, h)| h.upto);
        last.upto - through.unwrap_or(first.upto - first.bytes.len() as u64)
    }

    /// Drop the decoded form of the entries through `index` (those applied): they stay held
    /// encoded, and a read of one decodes it.
    pub fn cool(&self, index: u64) {
        let mut m = self.mem_mut();
        let from = m.cooled_through + 1;
        if index < from {
            return;
        }
        for (_, h) in m.entries.range_mut(from..=index) {
            h.decoded = None;
        }
        m.cooled_through = index;
    }

    /// How many entries are held decoded (for tests of [`LogStore::cool`]).
    #[cfg(test)]
    pub fn decoded_count(&self) -> usize {
        self.mem().entries.values().filter(|h| h.decoded.is_some()).count()
    }

    /// The index to purge through so that the entries held up to `through` (those a snapshot
    /// covers) come to at most `keep_bytes`; `None` if they already do.
    pub fn purge_point(&self, through: u64, keep_bytes: u64) -> Option<u64> {
        let m = self.mem();
        let mut kept = 0;
        for (&i, h) in m.entries.range(..=through).rev() {
            kept += h.bytes.len() as u64;
            if kept > keep_bytes {
                return Some(i);
            }
        }
        None
    }
}

impl Mem {
    fn insert(&mut self, log_id: LogId, bytes: Vec<u8>, decoded: Option<Entry<TypeConfig>>) {
        let before = self.entries.last_key_value().map_or(0, |(_, h)| h.upto);
        let upto = before + bytes.len() as u64;
        self.entries.insert(log_id.index, Held { log_id, bytes, decoded, upto });
    }

    /// Drop the entries from `index` on.
    fn truncate(&mut self, index: u64) {
        self.entries.split_off(&index);
        // What is appended in their place is decoded until applied, like any new entry.
        self.cooled_through = self.cooled_through.min(index.saturating_sub(1));
    }

    /// Drop the entries through `id`.
    fn purge(&mut self, id: LogId) {
        self.entries = self.entries.split_off(&(id.index + 1));
        self.last_purged = Some(id);
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.mem().entries.range(range).map(|(_, h)| h.entry()).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let m = self.mem();
        let last = m.entries.values().next_back().map(|h| h.log_id).or(m.last_purged);
        Ok(LogState { last_purged_log_id: m.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let bytes = opts().serialize(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let dir = self.inner.dir.clone();
        tokio::task::spawn_blocking(move || wal::atomic_file::save(&dir, "vote", &bytes))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        match wal::atomic_file::load(&self.inner.dir, "vote").map_err(|e| StorageIOError::read_vote(&e))? {
            Some(b) => Ok(Some(opts().deserialize(&b).map_err(|e| StorageIOError::read_vote(&e))?)),
            None => Ok(None),
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Kept until the next write to the WAL, which carries it: losing it only means
        // re-learning the commit index from the leader (or re-applying less at a restart), and
        // handing it to the WAL thread on its own woke that thread once more per commit on
        // every node (write x1: 2 of its ~5 context switches per write).
        let rec = Record { kind: RecordKind::Meta, index: 0, payload: enc(&committed)? };
        let mut m = self.mem_mut();
        m.committed = committed;
        m.committed_unsaved = Some(rec);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.mem().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        {
            let mut m = self.mem_mut();
            records.extend(m.committed_unsaved.take());
            for e in entries {
                let payload = enc(&e)?;
                records.push(Record { kind: RecordKind::Entry, index: e.log_id.index, payload: payload.clone() });
                m.insert(e.log_id, payload, Some(e));
            }
        }
        self.inner.wal.submit(&records, Some(Box::new(move |res| callback.log_io_completed(res))));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut records = Vec::new();
        {
            let mut m = self.mem_mut();
            m.truncate(log_id.index);
            records.extend(m.committed_unsaved.take());
        }
        records.push(Record { kind: RecordKind::TruncateFrom, index: log_id.index, payload: Vec::new() });
        self.inner.wal.submit(&records, None);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut records = Vec::new();
        {
            let mut m = self.mem_mut();
            m.purge(log_id);
            records.extend(m.committed_unsaved.take());
        }
        records.push(Record { kind: RecordKind::PurgeThrough, index: log_id.index, payload: enc(&log_id)? });
        self.inner.wal.submit(&records, None);
        self.inner.wal.purge_through(log_id.index);
        Ok(())
    }
}

//! `RaftLogStorage` over the WAL. Entries are kept in memory too (the log is bounded by
//! snapshots and purges), so reads never touch the disk; the WAL is for durability.
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

/// An entry, and its encoded size: what the log's memory is bounded by (`raft/log_memory.rs`).
struct Held {
    entry: Entry<TypeConfig>,
    encoded: u64,
}

#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Held>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    /// The commit index's record, not yet handed to the WAL (see `save_committed`).
    committed_unsaved: Option<Record>,
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
                    let e: Entry<TypeConfig> = dec(&r.payload)?;
                    mem.insert(e, r.payload.len());
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
        match index {
            Some(i) => m.entries.range(i + 1..).map(|(_, h)| h.encoded).sum(),
            None => m.entries.values().map(|h| h.encoded).sum(),
        }
    }

    /// The index to purge through so that the entries held up to `through` (those a snapshot
    /// covers) come to at most `keep_bytes`; `None` if they already do.
    pub fn purge_point(&self, through: u64, keep_bytes: u64) -> Option<u64> {
        let m = self.mem();
        let mut kept = 0;
        for (&i, h) in m.entries.range(..=through).rev() {
            kept += h.encoded;
            if kept > keep_bytes {
                return Some(i);
            }
        }
        None
    }
}

impl Mem {
    fn insert(&mut self, e: Entry<TypeConfig>, encoded: usize) {
        self.entries.insert(e.log_id.index, Held { entry: e, encoded: encoded as u64 });
    }

    /// Drop the entries from `index` on.
    fn truncate(&mut self, index: u64) {
        self.entries.split_off(&index);
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
        Ok(self.mem().entries.range(range).map(|(_, h)| h.entry.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let m = self.mem();
        let last = m.entries.values().next_back().map(|h| h.entry.log_id).or(m.last_purged);
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
                let encoded = payload.len();
                records.push(Record { kind: RecordKind::Entry, index: e.log_id.index, payload });
                m.insert(e, encoded);
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

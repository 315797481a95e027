//! The Raft log's write-ahead log: our own, because an acknowledged write must survive power
//! loss on a majority and sled 0.34 does not guarantee that (DESIGN.md §3).
//!
//! The WAL stores opaque [`Record`]s in segment files and knows nothing of Raft. It owns:
//! - segment files, preallocated so an `fdatasync` does not have to update the file size,
//!   and zeroed a megabyte ahead of the records so it need not update the block map either
//!   (`segment::ZERO_AHEAD`);
//! - a CRC32C per record, and torn-tail repair on open (the tail after the last good record of
//!   the newest segment is cut off and zeroed; a bad record in an older segment is corruption
//!   and refuses to open);
//! - group commit: one writer thread takes every submission queued since its last sync, writes
//!   them with one `pwrite`, issues one `fdatasync`, and only then runs their callbacks (a batch
//!   without callbacks is written and left for the next sync);
//! - purge by whole segments once everything in them is covered by a snapshot.
//!
//! It must never call a callback before the bytes it covers are durable.

pub mod atomic_file;
mod record;
mod segment;
mod window;
mod writer;

pub use writer::synced_marker;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

pub use record::{Record, RecordKind};
use segment::Segment;

/// A sync this slow holds every write on this node for that long, and a leader's or a
/// follower's for its heartbeat timeouts: worth a line in the log, so that a stall can be told
/// apart from a network or scheduling one.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

/// Called once the submission it belongs to is durable (or failed to become so).
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// How the WAL treats data that has been written but not yet `fdatasync`ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultMode {
    /// Production: bytes go to the file, then `fdatasync`.
    #[default]
    Off,
    /// Test-only power-loss model: after every `fdatasync` the WAL records, next to each
    /// segment (`<segment>.synced`), how many of its bytes are synced, and it waits
    /// `sync_delay_ms` between writing and syncing. A test that kills the process and then
    /// zeroes every byte past that mark reproduces a power cut, which drops whatever the disk
    /// had not been told to make durable. The WAL itself never reads the marks.
    DropUnsynced { sync_delay_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size each segment is preallocated to; a segment is rolled when the next batch won't fit.
    pub segment_bytes: u64,
    pub fault: FaultMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 64 * 1024 * 1024, fault: FaultMode::Off }
    }
}

enum Op {
    Write {
        bytes: Vec<u8>,
        max_index: u64,
        done: Option<Done>,
    },
    /// Delete every closed segment whose entries all have index <= this.
    PurgeThrough(u64),
}

/// What the writer thread has done (the WAL tests check it).
#[derive(Debug, Default)]
pub struct Stats {
    batches: AtomicU64,
    syncs: AtomicU64,
}

/// Handle to the WAL; the files themselves are owned by the writer thread.
pub struct Wal {
    stats: Arc<Stats>,
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

impl Wal {
    /// Open (or create) the WAL in `dir`, repair a torn tail, and return every record in the
    /// order it was written.
    pub fn open(dir: &Path, opts: WalOptions) -> io::Result<(Wal, Vec<Record>)> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Segment::list(dir)?;
        let mut records = Vec::new();
        let count = segments.len();
        let mut opened = Vec::with_capacity(count);
        for (i, seq) in segments.drain(..).enumerate() {
            let last = i + 1 == count;
            let (seg, mut recs) = Segment::open_existing(dir, seq, &opts, last)?;
            records.append(&mut recs);
            opened.push(seg);
        }
        if opened.is_empty() {
            opened.push(Segment::create(dir, 1, &opts)?);
        }
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread = writer::spawn(dir.to_path_buf(), opts, opened, rx, stats.clone())?;
        Ok((Wal { stats, tx: Some(tx), thread: Some(thread), dir: dir.to_path_buf() }, records))
    }

    /// Batches the writer has taken from the queue so far (written, or failed).
    pub fn batches(&self) -> u64 {
        self.stats.batches.load(Ordering::Relaxed)
    }

    /// `fdatasync`s issued so far.
    pub fn syncs(&self) -> u64 {
        self.stats.syncs.load(Ordering::Relaxed)
    }

    /// Queue `records` to be written; `done` runs once they are durable. Records are written in
    /// submission order.
    pub fn submit(&self, records: &[Record], done: Option<Done>) {
        let mut bytes = Vec::new();
        let mut max_index = 0;
        for r in records {
            r.encode_into(&mut bytes);
            if r.kind == RecordKind::Entry {
                max_index = max_index.max(r.index);
            }
        }
        self.send(Op::Write { bytes, max_index, done });
    }

    /// Submit and wait until durable.
    pub fn submit_sync(&self, records: &[Record]) -> io::Result<()> {
        let (tx, rx) = mpsc::channel();
        self.submit(records, Some(Box::new(move |res| drop(tx.send(res)))));
        rx.recv().unwrap_or_else(|_| Err(io::Error::other("WAL writer stopped")))
    }

    /// Delete closed segments that hold nothing after `index`. Call only after a purge record
    /// saying so has been submitted (it is written first, so replay never resurrects them).
    pub fn purge_through(&self, index: u64) {
        self.send(Op::PurgeThrough(index));
    }

    fn send(&self, op: Op) {
        let sent = self.tx.as_ref().map(|tx| tx.send(op));
        if let Some(Err(mpsc::SendError(Op::Write { done: Some(done), .. }))) = sent {
            done(Err(io::Error::other("WAL writer stopped")));
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued, then exit.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod extents_tests;
#[cfg(test)]
mod tests;

//! The writer thread: group commit. It blocks for one submission, then takes every other one
//! already queued, writes them all, makes them durable with one `fdatasync`, and runs their
//! callbacks. A thread of its own (not a tokio task) because it spends its life in blocking
//! syscalls.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::segment::Segment;
use super::{Done, FaultMode, Op, Stats, WalOptions};

struct Writer {
    dir: PathBuf,
    opts: WalOptions,
    /// Oldest first; the last one is the active segment.
    segments: Vec<Segment>,
    /// After a failed write or sync nothing more is acknowledged: the node must stop.
    failed: Option<String>,
    /// The active segment holds bytes written since its last `fdatasync`.
    unsynced: bool,
    stats: Arc<Stats>,
}

pub(crate) fn spawn(
    dir: PathBuf,
    opts: WalOptions,
    segments: Vec<Segment>,
    rx: Receiver<Op>,
    stats: Arc<Stats>,
) -> io::Result<JoinHandle<()>> {
    let mut w = Writer { dir, opts, segments, failed: None, unsynced: false, stats };
    std::thread::Builder::new().name("corral-wal".into()).spawn(move || w.run(rx))
}

impl Writer {
    fn run(&mut self, rx: Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut bytes = Vec::new();
            let mut max_index = 0;
            let mut dones: Vec<Done> = Vec::new();
            let mut purges = Vec::new();
            for op in batch {
                match op {
                    Op::Write { bytes: b, max_index: m, done } => {
                        bytes.extend_from_slice(&b);
                        max_index = max_index.max(m);
                        dones.extend(done);
                    }
                    Op::PurgeThrough(i) => purges.push(i),
                }
            }
            // Only a waiting callback or a purge needs the batch durable now. A batch nobody
            // waits for (the commit index, a truncation) is written but not synced: the next
            // sync covers it, as `fdatasync` makes the whole file durable, and losing it in a
            // crash is harmless (a stale commit index is learnt again from the leader; an
            // undone truncation is redone by the leader before this node acknowledges
            // anything after it). Syncing it on its own cost every commit a second
            // `fdatasync` on every node, and held up the next batch behind it.
            let sync = !dones.is_empty() || !purges.is_empty();
            let res = self.write(&bytes, max_index, sync);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            for done in dones {
                done(clone_result(&res));
            }
            for i in purges {
                if let Err(e) = self.purge(i) {
                    tracing::warn!(error = %e, "WAL: deleting purged segments failed; will retry at next purge");
                }
            }
        }
        if let Some(seg) = self.segments.last() {
            let _ = seg.file.sync_data();
        }
    }

    fn write(&mut self, bytes: &[u8], max_index: u64, sync: bool) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(why.clone()));
        }
        if bytes.is_empty() && !(sync && self.unsynced) {
            return Ok(());
        }
        let res = self.try_write(bytes, max_index, sync);
        if let Err(e) = &res {
            tracing::error!(error = %e, "WAL write failed; refusing further writes");
            self.failed = Some(format!("WAL failed earlier: {e}"));
        }
        res
    }

    fn try_write(&mut self, bytes: &[u8], max_index: u64, sync: bool) -> io::Result<()> {
        let need = bytes.len() as u64;
        let roll = match self.segments.last() {
            Some(seg) => seg.end + need > seg.capacity && seg.end > 8,
            None => true,
        };
        if roll {
            // The segment being closed may hold written but unsynced batches.
            if self.unsynced {
                if let Some(seg) = self.segments.last() {
                    sync_segment(seg, &self.opts, &self.stats)?;
                }
                self.unsynced = false;
            }
            let next = self.segments.last().map_or(1, |s| s.seq + 1);
            let mut opts = self.opts.clone();
            opts.segment_bytes = opts.segment_bytes.max(need + 8);
            self.segments.push(Segment::create(&self.dir, next, &opts)?);
        }
        let seg = self.segments.last_mut().ok_or_else(|| io::Error::other("no active segment"))?;
        if seg.end + need > seg.capacity {
            // A batch larger than a segment: grow this one.
            seg.capacity = seg.end + need;
        }
        seg.zero_ahead(seg.end + need)?;
        seg.file.write_all_at(bytes, seg.end)?;
        seg.end += need;
        seg.max_index = seg.max_index.max(max_index);
        if !sync {
            self.unsynced = true;
            return Ok(());
        }
        if let FaultMode::DropUnsynced { sync_delay_ms } = self.opts.fault {
            // Widen the written-but-not-synced window a power cut can land in.
            std::thread::sleep(Duration::from_millis(sync_delay_ms));
        }
        sync_segment(seg, &self.opts, &self.stats)?;
        self.unsynced = false;
        Ok(())
    }

    fn purge(&mut self, index: u64) -> io::Result<()> {
        // Only a prefix of closed segments, each holding nothing after `index`.
        let closed = self.segments.len().saturating_sub(1);
        let n = self.segments[..closed].iter().take_while(|s| s.max_index <= index).count();
        for seg in self.segments.drain(..n) {
            std::fs::remove_file(&seg.path)?;
            let _ = std::fs::remove_file(synced_marker(&seg.path));
        }
        Ok(())
    }
}

/// `fdatasync` everything written to `seg`, counted.
fn sync_segment(seg: &Segment, opts: &WalOptions, stats: &Stats) -> io::Result<()> {
    let start = std::time::Instant::now();
    seg.file.sync_data()?;
    let took = start.elapsed();
    if took >= super::SLOW_SYNC {
        tracing::warn!(ms = took.as_millis() as u64, segment = %seg.path.display(), "WAL: slow fdatasync");
    }
    stats.syncs.fetch_add(1, Ordering::Relaxed);
    if matches!(opts.fault, FaultMode::DropUnsynced { .. }) {
        // Tell the test harness how much of this segment a power cut must keep.
        write_marker(&seg.path, seg.end)?;
    }
    Ok(())
}

/// `<segment>.synced`: in `FaultMode::DropUnsynced`, how many bytes of the segment have been
/// fdatasynced. A power-cut simulation zeroes everything after it.
pub fn synced_marker(segment: &std::path::Path) -> PathBuf {
    segment.with_extension("synced")
}

/// One 8-byte `pwrite` into an existing file: a kill cannot leave it half written.
pub(crate) fn write_marker(segment: &std::path::Path, synced: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(synced_marker(segment))?;
    f.write_all_at(&synced.to_le_bytes(), 0)
}

fn clone_result(r: &io::Result<()>) -> io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

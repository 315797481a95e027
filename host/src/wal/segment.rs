//! One segment file: an 8-byte magic, then records, then zeroed preallocated space.
//!
//! The space is reserved with `fallocate`, which on ext4 (and XFS) leaves it *unwritten*: the
//! first write into a block must turn it into a written one, a change to the file's block map
//! that the next `fdatasync` has to write as well (an inode write without a journal, a journal
//! commit with one). Appends land in a fresh block every few batches, so about every second
//! sync paid that extra I/O. The writer therefore writes real zeros [`ZERO_AHEAD`] at a time
//! ahead of the records ([`Segment::zero_ahead`]), as ZooKeeper pads its log: one block-map
//! change per chunk instead of one per block.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{Decoded, Record, RecordKind, HEADER};
use super::window::Window;
use super::WalOptions;

const MAGIC: &[u8; 8] = b"CORWAL01";

/// How far ahead of the records the writer zeroes: one extra megabyte for the sync that
/// crosses into a new chunk (about a millisecond here), then plain data syncs.
pub(crate) const ZERO_AHEAD: u64 = 1 << 20;

pub(crate) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Where the next record goes.
    pub end: u64,
    /// Preallocated size.
    pub capacity: u64,
    /// Everything before this has been written (records or zeros), so syncing writes below
    /// it changes no block map. Past `end` after a restart it is unknown, so it starts at `end`.
    pub zeroed_to: u64,
    /// Highest entry index written here (0 if none): a purge may delete the segment once
    /// everything through this index is purged.
    pub max_index: u64,
}

pub(crate) fn path_for(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

impl Segment {
    /// Sequence numbers of the segment files in `dir`, oldest first.
    pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_suffix(".wal") {
                if let Ok(seq) = u64::from_str_radix(hex, 16) {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    pub fn create(dir: &Path, seq: u64, opts: &WalOptions) -> io::Result<Segment> {
        let path = path_for(dir, seq);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        preallocate(&file, opts.segment_bytes.max(4096))?;
        file.write_all_at(MAGIC, 0)?;
        file.sync_all()?;
        sync_dir(dir)?;
        if matches!(opts.fault, super::FaultMode::DropUnsynced { .. }) {
            super::writer::write_marker(&path, MAGIC.len() as u64)?;
        }
        let capacity = opts.segment_bytes.max(4096);
        let end = MAGIC.len() as u64;
        Ok(Segment { seq, path, file, end, capacity, zeroed_to: end, max_index: 0 })
    }

    /// Open a segment and read its records. A bad record in the newest segment is a torn tail:
    /// cut there and zero the rest, so stale bytes behind new writes can never be read back.
    /// A bad record in an older segment is corruption: refuse.
    pub fn open_existing(dir: &Path, seq: u64, opts: &WalOptions, newest: bool) -> io::Result<(Segment, Vec<Record>)> {
        let path = path_for(dir, seq);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let file_len = file.metadata()?.len();
        let mut win = Window::new(&file, file_len);
        let head = win.at(0, MAGIC.len())?;
        if head.len() < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
            if newest && win.zero_from(0)? {
                // Created but its header never became durable: start it afresh.
                drop(file);
                std::fs::remove_file(&path)?;
                return Ok((Segment::create(dir, seq, opts)?, Vec::new()));
            }
            return Err(corrupt(&path, 0, "bad magic"));
        }
        let mut off = MAGIC.len() as u64;
        let mut records = Vec::new();
        let mut max_index = 0;
        loop {
            // Enough bytes for the length field, then for the whole record it announces.
            let need = match win.at(off, HEADER)?.get(..4) {
                Some(len) => match u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize {
                    0 => 4,
                    len => HEADER.saturating_add(len),
                },
                None => HEADER,
            };
            match Record::decode(win.at(off, need)?) {
                Decoded::Record(rec, used) => {
                    if rec.kind == RecordKind::Entry {
                        max_index = max_index.max(rec.index);
                    }
                    records.push(rec);
                    off += used as u64;
                }
                Decoded::End => {
                    if !newest || win.zero_from(off)? {
                        break;
                    }
                    // Zeros then garbage: a torn write landed past a zeroed hole.
                    repair_tail(&file, off, file_len)?;
                    break;
                }
                Decoded::Bad(why) => {
                    if !newest {
                        return Err(corrupt(&path, off, why));
                    }
                    tracing::warn!(segment = %path.display(), offset = off, why, "WAL: cutting torn tail");
                    repair_tail(&file, off, file_len)?;
                    break;
                }
            }
        }
        let capacity = file_len.max(opts.segment_bytes);
        if file_len < capacity {
            preallocate(&file, capacity)?;
        }
        let seg = Segment { seq, path, file, end: off, capacity, zeroed_to: off, max_index };
        Ok((seg, records))
    }

    /// Called before records are written from `end` up to `upto`: zero from `zeroed_to` to a
    /// chunk past `upto`, never past the preallocated size (a batch that goes beyond it grows
    /// the file, which has no unwritten space to convert).
    pub fn zero_ahead(&mut self, upto: u64) -> io::Result<()> {
        if upto <= self.zeroed_to {
            return Ok(());
        }
        let target = upto.saturating_add(ZERO_AHEAD).min(self.capacity);
        // Read-only zeros from the binary's zero-initialised data: no allocation per chunk.
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = self.zeroed_to;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.zeroed_to = target.max(upto);
        Ok(())
    }
}

fn corrupt(path: &Path, off: u64, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WAL segment {} is corrupt at offset {off}: {why}", path.display()),
    )
}

fn repair_tail(file: &File, from: u64, len: u64) -> io::Result<()> {
    file.set_len(from)?;
    preallocate(file, len)?;
    file.sync_all()
}

/// Reserve blocks so later `fdatasync`s need not update the file's size or block map.
#[allow(unsafe_code)]
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate only reads the descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate (e.g. some tmpfs setups): fall back to a sparse length.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

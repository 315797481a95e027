//! The space ahead of a segment's records is written, not merely reserved (see
//! `segment::ZERO_AHEAD`), checked with the FIEMAP ioctl on filesystems that report unwritten
//! extents (ext4, XFS). Elsewhere there is nothing to check and the test says so.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

use super::*;

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 1;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const MAX_EXTENTS: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; MAX_EXTENTS],
}

/// The (start, end) byte ranges of `file`'s unwritten extents, or None if the filesystem
/// cannot say.
fn unwritten(file: &File) -> Option<Vec<(u64, u64)>> {
    let mut map = Fiemap {
        start: 0,
        length: u64::MAX,
        flags: FIEMAP_FLAG_SYNC,
        mapped_extents: 0,
        extent_count: MAX_EXTENTS as u32,
        reserved: 0,
        extents: [FiemapExtent::default(); MAX_EXTENTS],
    };
    // SAFETY: `map` is a properly laid out `struct fiemap` with room for `extent_count`
    // extents, and it outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut map as *mut Fiemap) };
    if rc != 0 {
        return None;
    }
    let n = (map.mapped_extents as usize).min(MAX_EXTENTS);
    Some(
        map.extents[..n]
            .iter()
            .filter(|e| e.flags & FIEMAP_EXTENT_UNWRITTEN != 0)
            .map(|e| (e.logical, e.logical + e.length))
            .collect(),
    )
}

#[test]
fn the_space_just_ahead_of_the_records_is_written_so_a_sync_changes_no_block_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Whether this filesystem shows reserved space as unwritten at all: if not, the WAL's
    // segments would not show it either, and there is nothing to check.
    let probe = std::fs::File::create(dir.path().join("probe")).expect("probe");
    segment::preallocate(&probe, 4 << 20).expect("reserving the probe's space");
    match unwritten(&probe) {
        Some(r) if !r.is_empty() => {}
        _ => {
            eprintln!("this filesystem reports no unwritten extents: nothing to check");
            return;
        }
    }

    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open");
    let mut end = 8u64;
    // Past the first zeroed chunk, so the check covers a chunk zeroed later too.
    for i in 1..=500u64 {
        let rec = Record { kind: RecordKind::Entry, index: i, payload: vec![7; 3000] };
        let mut bytes = Vec::new();
        rec.encode_into(&mut bytes);
        end += bytes.len() as u64;
        wal.submit_sync(&[rec]).expect("write");
    }
    assert!(end > segment::ZERO_AHEAD, "the records did not cross the first chunk");
    let seg = File::open(segment::path_for(dir.path(), 1)).expect("segment");
    let ahead = end + segment::ZERO_AHEAD / 2;
    let holes = unwritten(&seg).expect("FIEMAP worked on the probe");
    let overlap: Vec<_> = holes.iter().filter(|(s, _)| *s < ahead).collect();
    assert!(overlap.is_empty(), "records end at {end}; unwritten extents before {ahead}: {overlap:?}");
    // The rest stays merely reserved: the WAL zeroes ahead, not the whole segment.
    assert!(!holes.is_empty(), "the whole segment was written: {holes:?}");
}

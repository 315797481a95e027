use std::os::unix::fs::FileExt;

use super::*;

fn entry(i: u64, len: usize) -> Record {
    Record { kind: RecordKind::Entry, index: i, payload: vec![i as u8; len] }
}

fn small() -> WalOptions {
    WalOptions { segment_bytes: 4096, fault: FaultMode::Off }
}

#[test]
fn records_survive_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recs: Vec<Record> = (1..=50).map(|i| entry(i, 100)).collect();
    {
        let (wal, old) = Wal::open(dir.path(), small()).expect("open");
        assert!(old.is_empty());
        for chunk in recs.chunks(7) {
            wal.submit_sync(chunk).expect("write");
        }
    }
    let (_wal, got) = Wal::open(dir.path(), small()).expect("reopen");
    assert_eq!(got, recs);
    // 50 × 121 bytes do not fit one 4 KiB segment: it rolled.
    assert!(Segment::list(dir.path()).expect("list").len() > 1);
}

#[test]
fn callbacks_run_after_the_write_and_batches_share_a_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open");
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 1..=100 {
        let tx = tx.clone();
        wal.submit(
            &[entry(i, 10)],
            Some(Box::new(move |r| {
                let _ = tx.send((i, r.is_ok()));
            })),
        );
    }
    let order: Vec<(u64, bool)> = (0..100).map(|_| rx.recv().expect("callback")).collect();
    assert!(order.iter().all(|(_, ok)| *ok));
    assert_eq!(order.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
}

#[test]
fn torn_tail_is_cut_and_later_writes_are_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open");
        wal.submit_sync(&[entry(1, 20), entry(2, 20)]).expect("write");
    }
    // A torn write: a header claiming 500 bytes, followed by only some of them.
    let seg = segment::path_for(dir.path(), 1);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open seg");
    let end = 8 + 2 * (8 + 9 + 20);
    let mut torn = 509u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 40]);
    f.write_all_at(&torn, end).expect("tear");
    drop(f);
    {
        let (wal, got) = Wal::open(dir.path(), WalOptions::default()).expect("reopen after tear");
        assert_eq!(got, vec![entry(1, 20), entry(2, 20)]);
        // A short record now sits where the torn one was; stale bytes must not follow it.
        wal.submit_sync(&[entry(3, 1)]).expect("write after repair");
    }
    let (_wal, got) = Wal::open(dir.path(), WalOptions::default()).expect("reopen");
    assert_eq!(got, vec![entry(1, 20), entry(2, 20), entry(3, 1)]);
}

#[test]
fn flipped_bit_in_an_old_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = Wal::open(dir.path(), small()).expect("open");
        for i in 1..=60 {
            wal.submit_sync(&[entry(i, 100)]).expect("write");
        }
    }
    let seg = segment::path_for(dir.path(), 1);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open seg");
    f.write_all_at(&[0xFF], 30).expect("flip");
    let err = Wal::open(dir.path(), small()).expect_err("corruption must not open");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn purge_deletes_only_closed_segments_fully_covered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    for i in 1..=100 {
        wal.submit_sync(&[entry(i, 100)]).expect("write");
    }
    let before = Segment::list(dir.path()).expect("list");
    wal.submit_sync(&[Record { kind: RecordKind::PurgeThrough, index: 60, payload: vec![] }]).expect("purge record");
    wal.purge_through(60);
    wal.submit_sync(&[]).expect("barrier");
    drop(wal);
    let after = Segment::list(dir.path()).expect("list");
    assert!(after.len() < before.len(), "nothing purged: {before:?} -> {after:?}");
    let (_wal, got) = Wal::open(dir.path(), small()).expect("reopen");
    // Every entry after 60 is still there.
    for i in 61..=100 {
        assert!(got.iter().any(|r| r.kind == RecordKind::Entry && r.index == i), "lost {i}");
    }
}

#[test]
fn vote_file_roundtrip_and_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(atomic_file::load(dir.path(), "vote").expect("load"), None);
    atomic_file::save(dir.path(), "vote", b"term 3").expect("save");
    atomic_file::save(dir.path(), "vote", b"term 4").expect("save");
    assert_eq!(atomic_file::load(dir.path(), "vote").expect("load"), Some(b"term 4".to_vec()));
    std::fs::write(dir.path().join("vote"), b"\0\0\0\0junk").expect("corrupt");
    assert!(atomic_file::load(dir.path(), "vote").is_err());
}

#[test]
fn a_batch_nobody_waits_for_is_written_without_a_sync_and_kept_by_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Record { kind: RecordKind::Meta, index: 0, payload: vec![7; 12] };
    {
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open");
        wal.submit(std::slice::from_ref(&meta), None);
        // Wait (bounded) for the writer to take that batch on its own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while wal.batches() == 0 {
            assert!(std::time::Instant::now() < deadline, "the writer never took the batch");
            std::thread::yield_now();
        }
        assert_eq!(wal.syncs(), 0, "a batch without callbacks must not cost an fdatasync");
        wal.submit_sync(&[entry(1, 10)]).expect("write");
        assert_eq!(wal.syncs(), 1, "the next durable batch takes one fdatasync");
    }
    let (_wal, got) = Wal::open(dir.path(), WalOptions::default()).expect("reopen");
    assert_eq!(got, vec![meta, entry(1, 10)]);
}

#[test]
fn rolling_a_segment_syncs_what_it_left_unsynced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { segment_bytes: 4096, fault: FaultMode::DropUnsynced { sync_delay_ms: 0 } };
    let (wal, _) = Wal::open(dir.path(), opts).expect("open");
    let meta = Record { kind: RecordKind::Meta, index: 0, payload: vec![1; 100] };
    wal.submit(std::slice::from_ref(&meta), None);
    // Too big for what is left of the first segment: the writer rolls to a second one.
    wal.submit_sync(&[entry(1, 4000)]).expect("write");
    let first = segment::path_for(dir.path(), 1);
    let mark = std::fs::read(synced_marker(&first)).expect("mark of the first segment");
    let synced = u64::from_le_bytes(mark[..8].try_into().expect("8 bytes"));
    assert!(synced >= 8 + 8 + 9 + 100, "the closed segment's unsynced batch was not synced (mark {synced})");
}

#[test]
fn replay_reads_records_across_window_refills_and_larger_than_a_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { segment_bytes: 16 << 20, fault: FaultMode::Off };
    // Odd sizes so records straddle every 4 MiB window boundary, and one record of 5 MiB,
    // larger than a window.
    let mut recs: Vec<Record> = (1..=3000).map(|i| entry(i, 1 + (i as usize * 7919) % 4000)).collect();
    recs.push(entry(3001, 5 << 20));
    recs.extend((3002..=3100).map(|i| entry(i, 333)));
    {
        let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
        for chunk in recs.chunks(50) {
            wal.submit_sync(chunk).expect("write");
        }
    }
    let (wal, got) = Wal::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(got.len(), recs.len());
    assert!(got == recs, "replayed records differ from the written ones");
    // Appending after the replay goes exactly after the last record.
    wal.submit_sync(&[entry(3101, 10)]).expect("write");
    drop(wal);
    let (_wal, again) = Wal::open(dir.path(), opts).expect("reopen again");
    assert_eq!(again.len(), recs.len() + 1);
    assert_eq!(again.last(), Some(&entry(3101, 10)));
}

#[test]
fn garbage_past_a_zeroed_hole_is_found_beyond_the_first_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions { segment_bytes: 16 << 20, fault: FaultMode::Off };
    {
        let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
        wal.submit_sync(&[entry(1, 20)]).expect("write");
    }
    // A torn write far past the end, 10 MiB in: the zero check must read that far.
    let seg = segment::path_for(dir.path(), 1);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open seg");
    f.write_all_at(&[0xAB; 64], 10 << 20).expect("garbage");
    drop(f);
    let (wal, got) = Wal::open(dir.path(), opts.clone()).expect("reopen");
    assert_eq!(got, vec![entry(1, 20)]);
    drop(wal);
    let bytes = std::fs::read(&seg).expect("read seg");
    assert!(bytes[(10 << 20)..(10 << 20) + 64].iter().all(|&b| b == 0), "the garbage was not zeroed");
}

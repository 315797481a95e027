//! Our log store and state machine against openraft's storage conformance suite, plus a
//! restart check the suite does not make: everything appended and flushed survives a reopen.

use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{StorageError, TypeConfig};
use crate::state::{SledStore, State};
use crate::wal::WalOptions;

struct Builder;

fn small_wal() -> WalOptions {
    WalOptions { segment_bytes: 64 * 1024, ..WalOptions::default() }
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(dir.path(), small_wal())?;
        let store = SledStore::open(&dir.path().join("state")).expect("sled");
        let sm = StateMachine::open(dir.path(), State::new(Arc::new(store)), false)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}

#[tokio::test]
async fn flushed_entries_survive_reopen_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = |i: u64| Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
        payload: EntryPayload::Blank,
    };
    {
        let mut log = LogStore::open(dir.path(), small_wal()).expect("open");
        for chunk in (1..=500u64).collect::<Vec<_>>().chunks(50) {
            log.blocking_append(chunk.iter().map(|&i| entry(i))).await.expect("append");
        }
        log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 401)).await.expect("truncate");
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 100)).await.expect("purge");
        log.blocking_append([entry(401)]).await.expect("append");
    }
    let mut log = LogStore::open(dir.path(), small_wal()).expect("reopen");
    let st = log.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(100));
    assert_eq!(st.last_log_id.map(|l| l.index), Some(401));
    let got = log.try_get_log_entries(0..1000).await.expect("read");
    assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (101..=401).collect::<Vec<_>>());
}

/// The commit index is not written on its own: it rides with the next append (or truncation,
/// or purge), and a clean stop writes it. Both must reach the disk.
#[tokio::test]
async fn commit_index_rides_with_the_next_append_and_is_kept_at_a_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = |i: u64| LogId::new(CommittedLeaderId::new(1, 1), i);
    let entry = |i: u64| Entry::<TypeConfig> { log_id: id(i), payload: EntryPayload::Blank };
    {
        let mut log = LogStore::open(dir.path(), small_wal()).expect("open");
        log.blocking_append((1..=3).map(entry)).await.expect("append");
        log.save_committed(Some(id(2))).await.expect("commit");
        log.blocking_append([entry(4)]).await.expect("append");
        // A crash: no drop, so nothing is written at a stop. (The WAL thread is left waiting.)
        std::mem::forget(log);
    }
    {
        let mut log = LogStore::open(dir.path(), small_wal()).expect("reopen after the crash");
        assert_eq!(log.read_committed().await.expect("read"), Some(id(2)), "the append carried it");
        log.save_committed(Some(id(4))).await.expect("commit");
    }
    let mut log = LogStore::open(dir.path(), small_wal()).expect("reopen after the stop");
    assert_eq!(log.read_committed().await.expect("read"), Some(id(4)), "the clean stop wrote it");
}

/// The encoded bytes the log holds, which bound its memory (`log_memory.rs`), follow every
/// append, truncation and purge, and a reopen.
#[tokio::test]
async fn the_log_counts_the_bytes_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = |i: u64| LogId::new(CommittedLeaderId::new(1, 1), i);
    let entry = |i: u64| Entry::<TypeConfig> { log_id: id(i), payload: EntryPayload::Blank };
    let b;
    {
        let mut log = LogStore::open(dir.path(), small_wal()).expect("open");
        log.blocking_append((1..=10).map(entry)).await.expect("append");
        // Every entry here encodes to the same size.
        b = log.bytes_after(Some(9));
        assert!(b > 0);
        assert_eq!(log.bytes_after(None), 10 * b);
        assert_eq!(log.bytes_after(Some(4)), 6 * b);
        assert_eq!(log.bytes_after(Some(10)), 0);
        // Keep at most 3 entries' bytes behind a snapshot at 8: 8, 7, 6 stay, 5 and older go.
        assert_eq!(log.purge_point(8, 3 * b), Some(5));
        assert_eq!(log.purge_point(8, 8 * b), None);
        log.truncate(id(9)).await.expect("truncate");
        assert_eq!(log.bytes_after(None), 8 * b);
        log.purge(id(3)).await.expect("purge");
        assert_eq!(log.bytes_after(None), 5 * b);
        assert_eq!(log.purge_point(8, 3 * b), Some(5));
        log.blocking_append([entry(9)]).await.expect("append");
    }
    let log = LogStore::open(dir.path(), small_wal()).expect("reopen");
    assert_eq!(log.bytes_after(None), 6 * b, "entries 4..=9 after the reopen");
}

/// An applied entry is held encoded only, and reads back equal to what was appended: after
/// cooling, after a truncation that replaces cooled and uncooled entries, and after a reopen
/// (which decodes nothing until it is read).
#[tokio::test]
async fn cooled_entries_read_back_as_appended() {
    use crate::state::{Command, Op};
    use corral_proto::CreateMode;
    let dir = tempfile::tempdir().expect("tempdir");
    let id = |i: u64| LogId::new(CommittedLeaderId::new(1, 1), i);
    let entry = |i: u64, tag: &str| Entry::<TypeConfig> {
        log_id: id(i),
        payload: EntryPayload::Normal(Command::plain(
            i,
            Op::Create { path: format!("/{tag}{i}"), data: vec![i as u8; 100], mode: CreateMode::default() },
        )),
    };
    let mut want: Vec<Entry<TypeConfig>> = (1..=20).map(|i| entry(i, "a")).collect();
    {
        let mut log = LogStore::open(dir.path(), small_wal()).expect("open");
        log.blocking_append(want.clone()).await.expect("append");
        assert_eq!(log.decoded_count(), 20);
        log.cool(10);
        assert_eq!(log.decoded_count(), 10, "1..=10 are held encoded only");
        assert_eq!(log.try_get_log_entries(0..100).await.expect("read"), want);
        // A new leader's entries from 8 on replace both cooled (8..=10) and decoded ones.
        log.truncate(id(8)).await.expect("truncate");
        want.truncate(7);
        want.extend((8..=12).map(|i| entry(i, "b")));
        log.blocking_append(want[7..].to_vec()).await.expect("append");
        assert_eq!(log.decoded_count(), 5, "the new 8..=12 are decoded until applied");
        assert_eq!(log.try_get_log_entries(0..100).await.expect("read"), want);
        log.cool(12);
        assert_eq!(log.decoded_count(), 0);
        assert_eq!(log.try_get_log_entries(5..=9).await.expect("read"), want[4..9].to_vec());
    }
    let mut log = LogStore::open(dir.path(), small_wal()).expect("reopen");
    assert_eq!(log.decoded_count(), 0, "a reopened log decodes nothing up front");
    assert_eq!(log.try_get_log_entries(0..100).await.expect("read"), want);
    assert_eq!(log.get_log_state().await.expect("state").last_log_id, Some(id(12)));
}

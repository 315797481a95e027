use std::time::Duration;

use super::*;
use crate::state::MemStore;

/// Every commit starts a write-back when none is running, so reads often meet all three
/// layers (pending, being written, sled) at once.
const EAGER: Tuning = Tuning { every: Duration::ZERO, bytes: 0, max_bytes: 1 << 10 };

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Poll `done` until it holds; fail with `what` after `within`. (The write-back thread has no
/// hook to await: the layers are what it changes.)
fn wait_until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn random_writes(rng: &mut Rng) -> Writes {
    let mut writes = Writes::new();
    for _ in 0..=rng.below(6) {
        let key = format!("{}/{:02}", ["a", "b", "c"][rng.below(3) as usize], rng.below(40)).into_bytes();
        let value = (rng.below(3) > 0).then(|| vec![rng.below(256) as u8; rng.below(40) as usize]);
        writes.insert(key, value);
    }
    writes
}

fn assert_same(store: &dyn KvStore, model: &dyn KvStore, rng: &mut Rng) {
    assert_eq!(store.export().unwrap(), model.export().unwrap());
    let prefix = [b"a/".as_slice(), b"b/", b"c/"][rng.below(3) as usize];
    let from = [prefix, format!("{:02}", rng.below(40)).as_bytes()].concat();
    let limit = rng.below(8) as usize;
    assert_eq!(
        store.scan_range_limit(&from, prefix, limit).unwrap(),
        model.scan_range_limit(&from, prefix, limit).unwrap(),
        "scan from {:?} limit {limit}",
        String::from_utf8_lossy(&from)
    );
    // Point reads fill the read cache, so the same keys come back after later writes and
    // write-backs: a cached value left stale would show here.
    for _ in 0..8 {
        let key = format!("{}/{:02}", ["a", "b", "c"][rng.below(3) as usize], rng.below(40)).into_bytes();
        assert_eq!(store.get(&key).unwrap(), model.get(&key).unwrap(), "get {:?}", String::from_utf8_lossy(&key));
    }
}

#[test]
fn reads_through_every_layer_agree_with_a_plain_map() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_tuned(dir.path(), EAGER).unwrap();
    let model = MemStore::default();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..400 {
        let writes = random_writes(&mut rng);
        model.commit(writes.clone()).unwrap();
        store.commit(writes).unwrap();
        assert_same(&store, &model, &mut rng);
        if round % 97 == 0 {
            store.flush().unwrap();
            assert!(store.layers().active.is_empty() && store.layers().frozen.is_none());
            assert_same(&store, &model, &mut rng);
        }
    }
}

#[test]
fn a_reopened_store_has_everything_after_a_flush_or_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let model = MemStore::default();
    let mut rng = Rng(0x0bad_cafe_0000_0042);
    {
        // The default tuning: these writes stay pending until the flush.
        let store = SledStore::open(dir.path()).unwrap();
        for _ in 0..50 {
            let writes = random_writes(&mut rng);
            model.commit(writes.clone()).unwrap();
            store.commit(writes).unwrap();
        }
        store.flush().unwrap();
        let writes = random_writes(&mut rng);
        model.commit(writes.clone()).unwrap();
        store.commit(writes).unwrap();
    }
    let store = reopen(dir.path());
    assert_eq!(store.export().unwrap(), model.export().unwrap());
}

/// Open again in this process. sled's IO pool threads may hold the old handle's file lock for
/// a moment after it is dropped (a new process, as in a restart, never meets them), so a
/// "could not acquire lock" is waited out; anything else fails the test.
fn reopen(path: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match SledStore::open(path) {
            Ok(store) => return store,
            Err(e) if e.0.contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

#[test]
fn replace_all_drops_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.commit(Writes::from([(b"a/1".to_vec(), Some(b"old".to_vec()))])).unwrap();
    store.replace_all(vec![(b"b/1".to_vec(), b"new".to_vec())]).unwrap();
    assert_eq!(store.export().unwrap(), vec![(b"b/1".to_vec(), b"new".to_vec())]);
    assert_eq!(store.get(b"a/1").unwrap(), None);
}

#[test]
fn replace_all_forgets_what_reads_had_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.commit(Writes::from([(b"a/1".to_vec(), Some(b"old".to_vec()))])).unwrap();
    store.flush().unwrap();
    // Both read from sled, so both cached: a value, and an absence.
    assert_eq!(store.get(b"a/1").unwrap(), Some(b"old".to_vec()));
    assert_eq!(store.get(b"b/1").unwrap(), None);
    store.replace_all(vec![(b"b/1".to_vec(), b"new".to_vec())]).unwrap();
    assert_eq!(store.get(b"a/1").unwrap(), None);
    assert_eq!(store.get(b"b/1").unwrap(), Some(b"new".to_vec()));
}

#[test]
fn the_last_writes_of_a_burst_reach_sled_without_another_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut rng = Rng(0x7a11_0000_0000_0007);
    for _ in 0..20 {
        store.commit(random_writes(&mut rng)).unwrap();
    }
    // No commit follows: the write-back thread must take the tail by itself.
    wait_until(Duration::from_secs(5), "writes stayed in memory with nothing to take them to sled", || {
        let l = store.layers();
        l.active.is_empty() && l.frozen.is_none()
    });
    assert_eq!(store.tree.iter().count(), store.export().unwrap().len());
}

#[test]
fn a_flush_does_not_wait_for_the_write_back_threads_pause() {
    // A pause longer than the bound below: only a flush that waited it out can fail (the
    // code before this test waited the whole 90 s).
    const LONG: Tuning = Tuning { every: Duration::from_secs(90), bytes: usize::MAX, max_bytes: usize::MAX };
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_tuned(dir.path(), LONG).unwrap();
    store.commit(Writes::from([(b"a/1".to_vec(), Some(b"1".to_vec()))])).unwrap();
    // The first commit starts the thread; once its batch is in sled it pauses for `every`.
    wait_until(Duration::from_secs(60), "the first write-back never finished", || store.layers().frozen.is_none());
    store.commit(Writes::from([(b"a/2".to_vec(), Some(b"2".to_vec()))])).unwrap();
    let started = std::time::Instant::now();
    store.flush().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "flush waited {:?}", started.elapsed());
    assert_eq!(store.tree.iter().count(), 2, "the flush wrote back what was pending");
}

#[test]
fn a_deletion_reaches_sled_unless_sled_never_held_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // Both read while sled has neither: both cached as absent.
    assert_eq!(store.get(b"a/1").unwrap(), None);
    assert_eq!(store.get(b"a/2").unwrap(), None);
    store.commit(Writes::from([(b"a/1".to_vec(), Some(b"1".to_vec()))])).unwrap();
    store.flush().unwrap();
    assert!(store.tree.contains_key(b"a/1").unwrap());
    // a/1 is in sled now, so its deletion must be written; a/2 lives and dies in one write-back.
    store.commit(Writes::from([(b"a/1".to_vec(), None), (b"a/2".to_vec(), Some(b"2".to_vec()))])).unwrap();
    store.commit(Writes::from([(b"a/2".to_vec(), None)])).unwrap();
    store.flush().unwrap();
    assert_eq!(store.tree.iter().count(), 0, "sled still holds a deleted key");
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.get(b"a/1").unwrap(), None);
    assert_eq!(store.get(b"a/2").unwrap(), None);
}

//! Lower bounds on the earliest TTL deadline (`t/`) and the earliest plugin timer (`p/t/`) in
//! the store, so that applying a command skips looking for due ones when none can be due.
//!
//! Why: every command looked for due TTL nodes and timers, each a range scan through the
//! write-back layers and sled. With 64 commands in an entry that was 128 scans per entry on
//! every replica, 11% of the machine's CPU in `write` x64.
//!
//! Why it cannot change what `apply` does (determinism): a bound is only ever a lower bound
//! on the store's keys, so a skipped scan is one that would have found nothing due.
//! - It starts at 0 (unknown), and a snapshot install puts it back there.
//! - Every committed put under a prefix lowers it to that key's deadline.
//! - It is raised only from a scan of the store itself: one made when no pending write in
//!   the transaction touches the prefix, so the transaction's view is the store's.
//! - Deletions leave it alone (they only raise the true minimum).
//!
//! Pending writes of the transaction under a prefix always force the scan: they may hold a
//! key already due.

use std::sync::atomic::{AtomicU64, Ordering};

use super::keys;
use super::store::StoreError;
use super::txn::{Txn, Writes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ttl,
    Timer,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Ttl, Kind::Timer];

    fn prefix(self) -> &'static [u8] {
        match self {
            Kind::Ttl => keys::TTL_PREFIX,
            Kind::Timer => keys::TIMER_PREFIX,
        }
    }

    /// The deadline of a key under this prefix (None: not one of its keys).
    fn deadline(self, key: &[u8]) -> Option<u64> {
        match self {
            Kind::Ttl => keys::parse_ttl(key).map(|(d, _)| d),
            Kind::Timer => keys::parse_timer(key).map(|(d, ..)| d),
        }
    }
}

/// Per kind: no key in the store has a deadline below this.
#[derive(Debug, Default)]
pub struct Floors {
    ttl: AtomicU64,
    timer: AtomicU64,
}

impl Floors {
    fn floor(&self, kind: Kind) -> &AtomicU64 {
        match kind {
            Kind::Ttl => &self.ttl,
            Kind::Timer => &self.timer,
        }
    }

    /// Whether something of `kind` may be due at `now`, as `txn` sees the store.
    pub fn may_be_due(&self, kind: Kind, txn: &Txn<'_>, now: u64) -> bool {
        now >= self.floor(kind).load(Ordering::SeqCst) || txn.has_pending_under(kind.prefix())
    }

    /// Whether a plugin timer may be due at `now`, outside any transaction (so with no pending
    /// writes).
    pub fn timer_may_be_due(&self, now: u64) -> bool {
        now >= self.floor(Kind::Timer).load(Ordering::SeqCst)
    }

    /// Look at the earliest key of `kind` and raise the bound to it, if `txn` sees the store
    /// itself there. Called after the due ones were handled.
    pub fn observe(&self, kind: Kind, txn: &Txn<'_>) -> Result<(), StoreError> {
        if txn.has_pending_under(kind.prefix()) {
            return Ok(());
        }
        let first = txn.scan_prefix(kind.prefix(), 1)?.into_iter().next();
        // A key whose deadline cannot be read stays due (0) until it is cleaned up.
        let floor = first.map_or(u64::MAX, |(k, _)| kind.deadline(&k).unwrap_or(0));
        self.floor(kind).store(floor, Ordering::SeqCst);
        Ok(())
    }

    /// `writes` are about to be committed: lower each bound to the deadlines they put.
    pub fn committing(&self, writes: &Writes) {
        for kind in Kind::ALL {
            let prefix = kind.prefix();
            let puts = writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix));
            for (k, _) in puts.filter(|(_, v)| v.is_some()) {
                self.floor(kind).fetch_min(kind.deadline(k).unwrap_or(0), Ordering::SeqCst);
            }
        }
    }

    /// The store was replaced: nothing is known.
    pub fn forget(&self) {
        for kind in Kind::ALL {
            self.floor(kind).store(0, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{KvStore, MemStore};

    fn put(key: Vec<u8>) -> Writes {
        [(key, Some(Vec::new()))].into_iter().collect()
    }

    #[test]
    fn unknown_until_observed_then_only_lowered_by_puts() {
        let store = MemStore::default();
        let floors = Floors::default();
        let txn = Txn::new(&store);
        assert!(floors.may_be_due(Kind::Ttl, &txn, 0), "nothing observed yet");
        floors.observe(Kind::Ttl, &txn).unwrap();
        floors.observe(Kind::Timer, &txn).unwrap();
        assert!(!floors.may_be_due(Kind::Ttl, &txn, u64::MAX - 1), "an empty prefix is never due");

        let w = put(keys::ttl(500, "/a"));
        floors.committing(&w);
        store.commit(w).unwrap();
        let txn = Txn::new(&store);
        assert!(!floors.may_be_due(Kind::Ttl, &txn, 499));
        assert!(floors.may_be_due(Kind::Ttl, &txn, 500));
        assert!(!floors.may_be_due(Kind::Timer, &txn, 500), "the other kind is unaffected");

        // A deletion does not raise it; the next observation does.
        store.commit([(keys::ttl(500, "/a"), None)].into_iter().collect()).unwrap();
        let txn = Txn::new(&store);
        assert!(floors.may_be_due(Kind::Ttl, &txn, 500));
        floors.observe(Kind::Ttl, &txn).unwrap();
        assert!(!floors.may_be_due(Kind::Ttl, &txn, 500));

        floors.forget();
        assert!(floors.may_be_due(Kind::Ttl, &txn, 0));
    }

    #[test]
    fn a_pending_write_forces_the_scan_and_blocks_observing() {
        let store = MemStore::default();
        let floors = Floors::default();
        let mut txn = Txn::new(&store);
        txn.put(keys::timer(10, "p", b"t"), Vec::new());
        let entry = txn.nested();
        assert!(floors.may_be_due(Kind::Timer, &entry, 10), "a parent's pending timer counts");
        floors.observe(Kind::Timer, &entry).unwrap();
        drop(entry);
        drop(txn);
        // The timer was never committed: had `observe` taken the pending view as the store's,
        // the bound would say 10, and a store holding a timer due at 5 would be skipped.
        let due_at_5 = put(keys::timer(5, "p", b"u"));
        store.commit(due_at_5).unwrap();
        assert!(floors.may_be_due(Kind::Timer, &Txn::new(&store), 5));
    }
}

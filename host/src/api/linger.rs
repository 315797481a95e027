//! When a lone write should wait a moment for a partner before it is proposed.
//!
//! Two clients often react to the same commit: a lock's release commits, its next holder
//! releases in turn while the previous holder queues again; a watch fires and several
//! clients write. Their requests reach the leader 50–150 µs apart. Proposed at once, the
//! first goes alone and the second waits for the first's `fdatasync` (on the leader and on
//! each follower) before its own: two commits for what one could carry. Measured on the
//! 2-core machine, lock x8: each hand-off took 1.5 ms; always waiting up to 300 µs for a
//! second request gave 1.26 ms and 14% less CPU per acquisition. But always waiting would
//! add the wait to every write of a client that writes alone.
//!
//! So the batcher waits only while waiting has been paying: PostgreSQL's `commit_delay` waits
//! only when `commit_siblings` other transactions are open; a leader cannot see requests not
//! sent yet, so it looks back instead. A lone write was a *near miss* if the next request
//! arrived within [`WINDOW`] of its proposal, and a wait a hit if a partner came. Hits and
//! misses move a small score; the batcher waits while the score is high. A client writing
//! alone, one request per commit (~0.8 ms apart), never scores; pairs of requests keep it
//! up; a wait that finds no partner lowers it. Leader-side only: what a replica applies does
//! not depend on it, only how commands are grouped into entries.

use std::time::{Duration, Instant};

/// How long a lone write may wait for a partner (tokio rounds it up to its millisecond
/// tick), and how soon after a lone proposal a request must come to count as a near miss.
pub const WINDOW: Duration = Duration::from_micros(300);
/// Wait while the score is at least this...
const WAIT_FROM: u8 = 2;
/// ...of at most this (a few misses in a row stop the waiting).
const MAX_SCORE: u8 = 3;

#[derive(Debug, Default)]
pub struct Linger {
    score: u8,
    /// When the last group went out alone without waiting (None: it did not).
    lone_since: Option<Instant>,
    /// The request being grouped now was a near miss: its own going alone says nothing more
    /// (a pair's second half would otherwise count as a lone write that nobody followed).
    partner: bool,
}

impl Linger {
    /// The first request of the next group arrived at `now`: was it a near miss?
    pub fn arrived(&mut self, now: Instant) {
        self.partner = false;
        if let Some(t) = self.lone_since.take() {
            self.partner = now.saturating_duration_since(t) < WINDOW;
            self.score(self.partner);
        }
    }

    /// Should a group of one wait for a partner? Not if it is itself the partner that came
    /// late for the group before it.
    pub fn should_wait(&self) -> bool {
        self.score >= WAIT_FROM && !self.partner
    }

    /// A group of `len` went out at `now`, after a wait or not.
    pub fn proposed(&mut self, len: usize, waited: bool, now: Instant) {
        if waited {
            self.score(len > 1);
        }
        self.lone_since = (len == 1 && !waited && !self.partner).then_some(now);
    }

    fn score(&mut self, hit: bool) {
        self.score = if hit { (self.score + 1).min(MAX_SCORE) } else { self.score.saturating_sub(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, us: u64) -> Instant {
        t0 + Duration::from_micros(us)
    }

    #[test]
    fn a_lone_client_never_waits() {
        let (t0, mut l) = (Instant::now(), Linger::default());
        for i in 0..100 {
            // One request per commit, 800 µs apart.
            l.arrived(at(t0, i * 800));
            assert!(!l.should_wait(), "waited at request {i}");
            l.proposed(1, false, at(t0, i * 800));
        }
    }

    #[test]
    fn pairs_start_the_waiting_and_keep_it() {
        let (t0, mut l) = (Instant::now(), Linger::default());
        // Pairs 80 µs apart, one pair per ~1.2 ms: the first two go alone (near misses)...
        for k in 0..2 {
            let base = k * 1200;
            l.arrived(at(t0, base));
            assert!(!l.should_wait());
            l.proposed(1, false, at(t0, base));
            l.arrived(at(t0, base + 80));
            // It came late for its partner: waiting for another would be a wait for nobody.
            assert!(!l.should_wait(), "a pair's second half waited");
            l.proposed(1, false, at(t0, base + 80));
        }
        // ...then each pair's first request waits and its partner joins it.
        for k in 2..50 {
            l.arrived(at(t0, k * 1200));
            assert!(l.should_wait(), "no wait at pair {k}");
            l.proposed(2, true, at(t0, k * 1200 + 80));
        }
    }

    #[test]
    fn waits_that_find_nobody_stop() {
        let (t0, mut l) = (Instant::now(), Linger { score: MAX_SCORE, ..Linger::default() });
        let mut waits = 0;
        for i in 0..20 {
            l.arrived(at(t0, i * 2000));
            let waited = l.should_wait();
            waits += waited as u32;
            l.proposed(1, waited, at(t0, i * 2000 + if waited { 300 } else { 0 }));
        }
        assert_eq!(waits, 2, "two fruitless waits bring the score below the threshold");
    }

    #[test]
    fn groups_formed_under_load_are_not_near_misses() {
        let (t0, mut l) = (Instant::now(), Linger::default());
        for i in 0..10 {
            l.arrived(at(t0, i * 50));
            l.proposed(8, false, at(t0, i * 50));
        }
        assert!(!l.should_wait());
    }
}

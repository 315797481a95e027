//! Leader time: what the leader stamps into every command (`Command::ts_ms`) and the state
//! machine makes its time (TTL deadlines, plugin timers, ctime / mtime).
//!
//! It is deliberately *not* the wall clock. A node's wall clock may jump (an NTP step, a
//! `date -s`, a VM resumed from a snapshot): if leader time followed it, a jump forward on the
//! leader would expire every TTL node and fire every plugin timer at once, and a jump back
//! would freeze them for as long as the jump.
//!
//! Instead a leader, when it takes office (a new term), starts from the state's own time and
//! advances it by its monotonic clock only. So between any two entries the state's time
//! advances by at most the real time between them, whoever stamped them: a TTL or a timer can
//! fire late (by the election gap), never early. Anchoring each node to the entries it applies
//! instead is not enough: a follower applies an entry some time after it was stamped, a
//! leader anchored that way lags by that delay, and when the lead passes from a lagging node to
//! a less lagging one the state's time jumps by the difference — the nemesis saw TTL nodes go
//! up to 1.2 s early that way (seed 101).
//!
//! The wall clock is read for the first entry of a new ensemble only, and to warn when it has
//! drifted from leader time. The price: time that passes between the last entry of one term and
//! the start of the next does not count (an idle ensemble's failover, or a whole-ensemble
//! outage, delays TTLs and timers by that much, as ZooKeeper restarts session clocks).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far the wall clock may drift from leader time before it is worth a warning.
const DRIFT_WARNING: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct LeaderClock {
    /// (state time when this node's term began, when that was, the term).
    anchor: Mutex<Option<(u64, Instant, u64)>>,
    /// Test-only: a file holding milliseconds to add to the wall clock (`[test] clock_offset_file`).
    offset_file: Option<PathBuf>,
    /// When the last drift warning was logged (one per minute is plenty).
    warned: Mutex<Option<Instant>>,
}

impl LeaderClock {
    pub fn new(offset_file: Option<PathBuf>) -> Self {
        LeaderClock { offset_file, ..LeaderClock::default() }
    }

    /// The state was replaced: re-anchor from it on the next reading.
    pub fn reset(&self) {
        *self.anchor.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Leader time now, for a leader of `term`. `stored` reads the state's time (0: an empty
    /// state) when the term is new to this clock. `caught_up`: the state has applied an entry
    /// of `term` (so everything committed before the term).
    ///
    /// A term is anchored only once it is caught up. Before that the state may be behind, or
    /// empty: a leader restarted after a power cut has replayed nothing yet, and its state reads
    /// 0, which would take the wall clock, ahead of leader time by every failover gap so far,
    /// and expire TTL nodes early by that much (the nemesis saw one go 1.7 s early, seed
    /// 20261122). Until then it answers the state's time as it is: a lower bound, which the
    /// state machine's `max` turns into no advance at all.
    pub fn now_ms(&self, term: u64, caught_up: bool, stored: impl FnOnce() -> u64) -> u64 {
        let now = {
            let mut anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
            match *anchor {
                Some((t, at, tm)) if tm == term => t.saturating_add(at.elapsed().as_millis() as u64),
                _ if !caught_up => return stored(),
                _ => {
                    let t = match stored() {
                        0 => self.wall_ms(),
                        t => t,
                    };
                    tracing::debug!(term, leader_ms = t, "leader time anchored for a new term");
                    *anchor = Some((t, Instant::now(), term));
                    t
                }
            }
        };
        self.warn_on_drift(now);
        now
    }

    /// The wall clock (plus the test offset, if any).
    pub fn wall_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (wall + self.test_offset_ms()).max(0) as u64
    }

    fn test_offset_ms(&self) -> i64 {
        let Some(f) = &self.offset_file else { return 0 };
        std::fs::read_to_string(f).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    fn warn_on_drift(&self, leader_ms: u64) {
        let wall = self.wall_ms();
        if wall.abs_diff(leader_ms) < DRIFT_WARNING.as_millis() as u64 {
            return;
        }
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            tracing::warn!(
                drift_ms = wall as i64 - leader_ms as i64,
                "the wall clock differs from leader time (a clock jump, or an ensemble that was down); \
                 TTLs and timers follow leader time"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_state_and_the_monotonic_clock_not_the_wall_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offset = dir.path().join("offset");
        let clock = LeaderClock::new(Some(offset.clone()));
        // A new ensemble starts from the wall clock.
        let wall = clock.now_ms(1, true, || 0);
        assert!(wall > 1_600_000_000_000, "{wall}");
        // A new term starts from the state's time.
        let t = clock.now_ms(2, true, || 5_000);
        assert!((5_000..5_100).contains(&t), "{t}");
        std::fs::write(&offset, "3600000").expect("write");
        let t = clock.now_ms(2, true, || unreachable!("anchored"));
        assert!((5_000..6_000).contains(&t), "a jump of the wall clock moved leader time: {t}");
        std::fs::write(&offset, "-3600000").expect("write");
        assert!(clock.now_ms(2, true, || unreachable!("anchored")) >= t, "leader time went back");
        clock.reset();
        let t = clock.now_ms(2, true, || 9_000);
        assert!((9_000..10_000).contains(&t), "{t}");
    }

    #[test]
    fn a_term_is_anchored_only_once_its_leader_has_caught_up() {
        let clock = LeaderClock::new(None);
        clock.now_ms(1, true, || 7_000);
        // Term 2's leader lost its state (a power cut) and has replayed nothing: its state
        // reads 0. It must not take the wall clock, nor anchor the term there.
        assert_eq!(clock.now_ms(2, false, || 0), 0);
        assert_eq!(clock.now_ms(2, false, || 6_500), 6_500, "the state's time, as it is");
        // Caught up: the term starts from the state's time.
        let t = clock.now_ms(2, true, || 7_200);
        assert!((7_200..7_300).contains(&t), "{t}");
        assert!(clock.now_ms(2, false, || unreachable!("anchored")) >= t);
    }
}

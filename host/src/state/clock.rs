//! Leader time: what the leader stamps into every command (`Command::ts_ms`) and the state
//! machine makes its time (TTL deadlines, plugin timers, ctime / mtime).
//!
//! It is deliberately *not* the wall clock. A node's wall clock may jump (an NTP step, a
//! `date -s`, a VM resumed from a snapshot): if leader time followed it, a jump forward on the
//! leader would expire every TTL node and fire every plugin timer at once, and a jump back
//! would freeze them for as long as the jump. Instead each node anchors leader time to the
//! state machine's own time: every applied entry records (state time, the monotonic instant it
//! was applied), and "now" is that time plus the monotonic time elapsed since. So leader time
//! runs at the rate of `Instant`, carries on across leader changes from where the state is (a
//! few milliseconds behind rather than ahead: a follower applies an entry after the leader
//! stamped it), and ignores wall-clock jumps.
//!
//! The wall clock is read for the first entry of a new ensemble only, and to warn when it has
//! drifted from leader time. The price: time during which no node of the ensemble ran does not
//! count (after a whole-ensemble outage, TTLs resume where they stopped, as ZooKeeper's
//! session clocks do).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far the wall clock may drift from leader time before it is worth a warning.
const DRIFT_WARNING: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct LeaderClock {
    /// (state time, when it was applied here); None until the first entry or after a
    /// snapshot replaced the state.
    anchor: Mutex<Option<(u64, Instant)>>,
    /// Test-only: a file holding milliseconds to add to the wall clock (`[test] clock_offset_file`).
    offset_file: Option<PathBuf>,
    /// When the last drift warning was logged (one per minute is plenty).
    warned: Mutex<Option<Instant>>,
}

impl LeaderClock {
    pub fn new(offset_file: Option<PathBuf>) -> Self {
        LeaderClock { offset_file, ..LeaderClock::default() }
    }

    /// An entry was applied: the state's time is now `state_ms`. Only a time ahead of this
    /// clock moves the anchor: an entry is applied after it was stamped, so re-anchoring on
    /// every entry would lose that delay each time and leader time would fall behind (it lost
    /// 45 s in a minute of load before this rule).
    pub fn observe(&self, state_ms: u64) {
        let mut anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let ahead = match *anchor {
            Some((t, at)) => state_ms > t.saturating_add(at.elapsed().as_millis() as u64),
            None => true,
        };
        if ahead {
            *anchor = Some((state_ms, Instant::now()));
        }
    }

    /// The state was replaced: re-anchor from it on the next reading.
    pub fn reset(&self) {
        *self.anchor.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Leader time now. `stored` reads the state's time (0: an empty state) when there is no
    /// anchor yet.
    pub fn now_ms(&self, stored: impl FnOnce() -> u64) -> u64 {
        let now = {
            let mut anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
            let (t, at) = match *anchor {
                Some(a) => a,
                None => {
                    let t = stored();
                    if t == 0 {
                        return self.wall_ms();
                    }
                    *anchor = Some((t, Instant::now()));
                    (t, Instant::now())
                }
            };
            t.saturating_add(at.elapsed().as_millis() as u64)
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
    fn follows_the_state_not_the_wall_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offset = dir.path().join("offset");
        let clock = LeaderClock::new(Some(offset.clone()));
        // A new ensemble starts from the wall clock.
        let wall = clock.now_ms(|| 0);
        assert!(wall > 1_600_000_000_000, "{wall}");
        clock.observe(5_000);
        std::fs::write(&offset, "3600000").expect("write");
        let t = clock.now_ms(|| unreachable!("anchored"));
        assert!((5_000..6_000).contains(&t), "a jump of the wall clock moved leader time: {t}");
        std::fs::write(&offset, "-3600000").expect("write");
        assert!(clock.now_ms(|| unreachable!("anchored")) >= t, "leader time went back");
        // After a snapshot, the state's stored time is the anchor.
        // Applying an entry stamped earlier than this clock reads does not set it back.
        clock.observe(1_000);
        assert!(clock.now_ms(|| unreachable!("anchored")) >= t, "an old stamp set the clock back");
        clock.reset();
        let t = clock.now_ms(|| 9_000);
        assert!((9_000..10_000).contains(&t), "{t}");
    }
}

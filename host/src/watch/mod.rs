//! Watches: node-local, fed by the state machine's events.
//!
//! The hub keeps the last `cap` events (every replica produces the same ones) and, per session
//! connected here, its watches and a queue of matching events. A session that reconnects —
//! here or to any other node — resumes from the last `(index, seq)` it saw: the events after
//! it are replayed from history, none lost and none twice; if they are no longer all kept it
//! gets `ResyncNeeded`. Watches live where the session's event stream is; the client re-sends
//! them when it opens a stream elsewhere.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use corral_proto::{Error, Event, WatchSpec};
use tokio::sync::Notify;

use crate::state::EventSink;

type Pos = (u64, u32);

pub struct WatchHub {
    cap: usize,
    /// A std mutex: held for queue and map work only, never across an await.
    inner: Mutex<Hub>,
}

struct Hub {
    history: VecDeque<Event>,
    /// Every event after this position is in `history` (or yet to come).
    floor: Pos,
    /// The position of the last event published.
    head: Pos,
    subs: HashMap<u64, Sub>,
}

struct Sub {
    /// Each watch with the position it was set at: it fires only for later events.
    watches: Vec<(WatchSpec, Pos)>,
    queue: VecDeque<Event>,
    /// Set when the queue outgrew `cap`: the stream must resync.
    overflowed: bool,
    notify: Arc<Notify>,
}

impl Sub {
    fn new() -> Sub {
        Sub { watches: Vec::new(), queue: VecDeque::new(), overflowed: false, notify: Arc::new(Notify::new()) }
    }

    /// Queue `ev` if a watch matches; one-shot watches that fired are gone.
    fn offer(&mut self, ev: &Event, cap: usize) {
        let fires = |(w, after): &(WatchSpec, Pos)| *after < ev.pos() && w.matches(ev);
        if !self.watches.iter().any(fires) {
            return;
        }
        self.watches.retain(|x| !(x.0.one_shot() && fires(x)));
        if self.queue.len() >= cap {
            self.queue.clear();
            self.overflowed = true;
        } else {
            self.queue.push_back(ev.clone());
        }
        self.notify.notify_one();
    }
}

impl WatchHub {
    /// A hub whose history starts after log index `applied` (what the state holds at start).
    pub fn new(cap: usize, applied: u64) -> WatchHub {
        let floor = (applied, u32::MAX);
        let hub = Hub { history: VecDeque::new(), floor, head: floor, subs: HashMap::new() };
        WatchHub { cap: cap.max(1), inner: Mutex::new(hub) }
    }

    fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The position of the last event published: call under the state's read lock to get
    /// the position a read saw.
    pub fn head(&self) -> Pos {
        self.hub().head
    }

    /// Add a watch for `session` that fires for events after `after`.
    pub fn add(&self, session: u64, spec: WatchSpec, after: Pos) {
        let cap = self.cap;
        let mut hub = self.hub();
        let replay: Vec<Event> = hub.history.iter().filter(|e| e.pos() > after).cloned().collect();
        let sub = hub.subs.entry(session).or_insert_with(Sub::new);
        sub.watches.push((spec, after));
        for ev in &replay {
            sub.offer(ev, cap);
        }
    }

    /// Open `session`'s stream: its watches become `watches`, and the events after `since`
    /// that match them are queued.
    pub fn resume(&self, session: u64, watches: Vec<(WatchSpec, Pos)>, since: Pos) -> Result<Arc<Notify>, Error> {
        let cap = self.cap;
        let mut hub = self.hub();
        // Events older than every watch cannot match: only what some watch may need counts.
        let needed = watches.iter().map(|(_, at)| *at).min().map_or(hub.head, |earliest| earliest.max(since));
        if needed < hub.floor {
            return Err(Error::ResyncNeeded { since: needed.0, oldest: hub.floor.0 });
        }
        let replay: Vec<Event> = hub.history.iter().filter(|e| e.pos() > since).cloned().collect();
        tracing::trace!(target: "corral::events", session, ?since, ?needed, floor = ?hub.floor, head = ?hub.head, replay = replay.len(), "resume");
        let mut sub = Sub::new();
        sub.watches = watches;
        for ev in &replay {
            sub.offer(ev, cap);
        }
        let notify = sub.notify.clone();
        hub.subs.insert(session, sub);
        Ok(notify)
    }

    /// Take what is queued for the stream of `session` that waits on `notify`: `Ok(None)` if
    /// another stream has replaced it (so an old stream never drains a new one's queue),
    /// `SessionExpired` if the session has ended.
    pub fn take(&self, session: u64, notify: &Arc<Notify>) -> Result<Option<Vec<Event>>, Error> {
        let mut hub = self.hub();
        let floor = hub.floor.0;
        let Some(sub) = hub.subs.get_mut(&session) else { return Err(Error::SessionExpired { id: session }) };
        if !Arc::ptr_eq(&sub.notify, notify) {
            return Ok(None);
        }
        if sub.overflowed {
            tracing::trace!(target: "corral::events", session, floor, "overflowed");
            return Err(Error::ResyncNeeded { since: 0, oldest: floor });
        }
        Ok(Some(sub.queue.drain(..).collect()))
    }

    /// The session's stream here ended.
    pub fn close(&self, session: u64, notify: &Arc<Notify>) {
        let mut hub = self.hub();
        // Only if no newer stream replaced it meanwhile.
        if hub.subs.get(&session).is_some_and(|s| Arc::ptr_eq(&s.notify, notify)) {
            hub.subs.remove(&session);
        }
    }
}

impl EventSink for WatchHub {
    fn publish(&self, events: Vec<Event>) {
        let cap = self.cap;
        let mut hub = self.hub();
        for ev in events {
            tracing::trace!(target: "corral::events", index = ev.index, seq = ev.seq, path = %ev.path, "publish");
            hub.head = ev.pos();
            for sub in hub.subs.values_mut() {
                sub.offer(&ev, cap);
            }
            hub.history.push_back(ev);
        }
        while hub.history.len() > cap {
            if let Some(old) = hub.history.pop_front() {
                hub.floor = old.pos();
            }
        }
    }

    fn sessions_ended(&self, ids: &[u64]) {
        let mut hub = self.hub();
        for id in ids {
            if let Some(sub) = hub.subs.remove(id) {
                // Wake its stream so it sees the session is gone and ends.
                sub.notify.notify_one();
            }
        }
    }

    /// The state jumped to a snapshot at `index`: the events between where the hub was and
    /// `index` will never be published here, so every open stream is told to resync rather
    /// than left with a silent gap.
    fn reset(&self, index: u64) {
        let mut hub = self.hub();
        tracing::trace!(target: "corral::events", index, "reset");
        hub.history.clear();
        hub.floor = (index, u32::MAX);
        hub.head = hub.floor;
        for sub in hub.subs.values_mut() {
            sub.queue.clear();
            sub.overflowed = true;
            sub.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use corral_proto::{EventKind, WatchKind};

    use super::*;

    fn ev(index: u64, seq: u32, path: &str) -> Event {
        Event { index, seq, path: path.into(), kind: EventKind::DataChanged }
    }

    #[test]
    fn resume_replays_exactly_what_came_after() {
        let hub = WatchHub::new(100, 0);
        hub.publish(vec![ev(1, 0, "/a"), ev(1, 1, "/b"), ev(2, 0, "/a/x"), ev(3, 0, "/c")]);
        let rec = vec![(WatchSpec::new("/a", WatchKind::PersistentRecursive), (0, 0))];
        let n7 = hub.resume(7, rec.clone(), (1, 0)).expect("resume");
        assert_eq!(hub.take(7, &n7).expect("take"), Some(vec![ev(2, 0, "/a/x")]));
        // A watch set at (2, 0) does not see what came before it.
        let n8 = hub
            .resume(8, vec![(WatchSpec::new("/a", WatchKind::PersistentRecursive), (2, 0))], (0, 0))
            .expect("resume");
        assert_eq!(hub.take(8, &n8).expect("take"), Some(vec![]));
        hub.publish(vec![ev(4, 0, "/a")]);
        // A newer stream of session 7 owns the queue; the old one gets nothing.
        let newer = hub.resume(7, rec.clone(), (3, 0)).expect("resume");
        assert_eq!(hub.take(7, &n7).expect("take"), None);
        assert_eq!(hub.take(7, &newer).expect("take"), Some(vec![ev(4, 0, "/a")]));
    }

    #[test]
    fn a_jump_to_a_snapshot_makes_open_streams_resync() {
        let hub = WatchHub::new(10, 0);
        let rec = vec![(WatchSpec::new("/a", WatchKind::PersistentRecursive), (0, 0))];
        let n = hub.resume(3, rec, hub.head()).expect("resume");
        hub.publish(vec![ev(1, 0, "/a")]);
        // Events 2..=50 are inside the snapshot: this node never publishes them.
        hub.reset(50);
        hub.publish(vec![ev(51, 0, "/a")]);
        assert!(matches!(hub.take(3, &n), Err(Error::ResyncNeeded { oldest: 50, .. })), "not a silent gap");
    }

    #[test]
    fn an_ended_session_is_forgotten_and_its_stream_told() {
        let hub = WatchHub::new(10, 0);
        let n = hub.resume(5, vec![(WatchSpec::new("/a", WatchKind::Persistent), (0, 0))], hub.head()).expect("resume");
        hub.sessions_ended(&[5]);
        hub.publish(vec![ev(1, 0, "/a")]);
        assert!(hub.hub().subs.is_empty(), "the ended session's watches were kept");
        assert!(matches!(hub.take(5, &n), Err(Error::SessionExpired { .. })), "its stream is told");
    }

    #[test]
    fn one_shot_fires_once_and_old_positions_need_a_resync() {
        let hub = WatchHub::new(2, 0);
        let n = hub.resume(1, vec![(WatchSpec::new("/a", WatchKind::Data), hub.head())], hub.head()).expect("resume");
        hub.publish(vec![ev(1, 0, "/a"), ev(2, 0, "/a")]);
        assert_eq!(hub.take(1, &n).expect("take").map(|v| v.len()), Some(1), "a one-shot watch fires once");
        hub.publish(vec![ev(3, 0, "/z"), ev(4, 0, "/z")]);
        let data = |at| vec![(WatchSpec::new("/a", WatchKind::Data), at)];
        let res = hub.resume(1, data((0, 0)), (1, 0));
        assert!(matches!(res, Err(Error::ResyncNeeded { .. })), "history of 2 no longer has index 2");
        assert!(hub.resume(1, data((3, 0)), (1, 0)).is_ok(), "a watch set at 3 needs nothing older");
        hub.reset(10);
        assert!(hub.resume(1, data((0, 0)), (9, 0)).is_err() && hub.resume(1, data((0, 0)), (10, u32::MAX)).is_ok());
    }
}

//! The watch workload: one client holds a recursive watch on the registers' parent through
//! every fault (it resumes on another node when its node dies). Its events must come in log
//! order with no duplicate, and must include every acknowledged write of the registers
//! between its first and last event (no gap).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Client, EventKind, ServerError, WatchKind, WatchSpec};

/// What the watcher saw.
#[derive(Default)]
pub struct Seen {
    /// (index, seq, path, kind) of every event, in arrival order.
    pub events: Vec<(u64, u32, String, EventKind)>,
    /// The position after which no gap is expected (advanced by a resync).
    pub from: u64,
    pub resyncs: u64,
    pub failure: Option<String>,
}

/// Watch `parent` until `stop`.
pub async fn watcher(client: Client, parent: &str, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let fail = |e: String| seen.lock().unwrap_or_else(|p| p.into_inner()).failure = Some(e);
    if let Err(e) = client.start_session(10_000).await {
        return fail(format!("watcher session: {e}"));
    }
    let mut events = match client.events() {
        Ok(ev) => ev,
        Err(e) => return fail(format!("watcher stream: {e}")),
    };
    if let Err(e) = client.add_watch(WatchSpec::new(parent, WatchKind::PersistentRecursive)).await {
        return fail(format!("add watch: {e}"));
    }
    while !stop.load(Ordering::Relaxed) {
        let ev = match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Err(_) => continue,
            Ok(None) => return fail("the event stream ended".into()),
            Ok(Some(ev)) => ev,
        };
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            Ok(ev) => s.events.push((ev.index, ev.seq, ev.path, ev.kind)),
            Err(ServerError::ResyncNeeded { oldest, .. }) => {
                // Events up to `oldest` were dropped by the server's bounded history, and the
                // client says so: not a silent gap. Check for gaps only after it.
                s.resyncs += 1;
                s.from = s.events.last().map_or(0, |e| e.0).max(oldest) + 1;
            }
            Err(e) => {
                s.failure = Some(format!("event stream error: {e}"));
                return;
            }
        }
    }
}

/// The last event's log index.
pub fn last_index(seen: &Mutex<Seen>) -> u64 {
    seen.lock().unwrap_or_else(|p| p.into_inner()).events.last().map_or(0, |e| e.0)
}

/// Anomalies in what the watcher saw, given the acknowledged writes (key, index).
pub fn check(seen: &Seen, writes: &[(String, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &seen.failure {
        out.push(format!("watch: {f}"));
    }
    for pair in seen.events.windows(2) {
        if (pair[1].0, pair[1].1) <= (pair[0].0, pair[0].1) {
            out.push(format!("watch: event {:?} came after {:?} (out of order or duplicate)", pair[1], pair[0]));
            break;
        }
    }
    let (Some(first), Some(last)) = (seen.events.first(), seen.events.last()) else {
        out.push("watch: no event at all".into());
        return out;
    };
    let from = first.0.max(seen.from);
    // Only entries before the last event's are surely complete: the watcher may have stopped
    // between two events of one entry (a group-committed entry holds several clients' writes).
    let upto = last.0.saturating_sub(1);
    let changed: BTreeSet<(&str, u64)> = seen
        .events
        .iter()
        .filter(|e| e.3 == EventKind::DataChanged || e.3 == EventKind::Created)
        .map(|e| (e.2.as_str(), e.0))
        .collect();
    let missed: Vec<&(String, u64)> =
        writes.iter().filter(|(k, i)| (from..=upto).contains(i) && !changed.contains(&(k.as_str(), *i))).collect();
    if !missed.is_empty() {
        // What the watcher saw around the first miss, to tell a lost entry from a lost event.
        let at = missed[0].1;
        let near: Vec<_> =
            seen.events.iter().filter(|e| e.0 + 2 >= at && e.0 <= at + 2).map(|e| (e.0, e.1, &e.2)).collect();
        let acked: Vec<_> = writes.iter().filter(|(_, i)| i + 2 >= at && *i <= at + 2).collect();
        out.push(format!(
            "watch: {} acknowledged writes had no event, e.g. {:?}; events seen near it: {near:?}; \
             writes acknowledged near it: {acked:?}; resyncs: {}",
            missed.len(),
            missed[0],
            seen.resyncs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(events: &[(u64, u32)]) -> Seen {
        Seen {
            events: events.iter().map(|(i, s)| (*i, *s, "/reg/k0".to_string(), EventKind::DataChanged)).collect(),
            ..Seen::default()
        }
    }

    #[test]
    fn finds_disorder_duplicates_and_gaps() {
        let writes: Vec<(String, u64)> = [3, 5, 7].iter().map(|i| ("/reg/k0".to_string(), *i)).collect();
        assert!(check(&seen(&[(3, 0), (5, 0), (7, 0)]), &writes).is_empty());
        assert_eq!(check(&seen(&[(3, 0), (5, 0), (5, 0), (7, 0)]), &writes).len(), 1, "duplicate");
        assert_eq!(check(&seen(&[(3, 0), (7, 0), (5, 0)]), &writes).len(), 1, "out of order");
        assert_eq!(check(&seen(&[(3, 0), (7, 0)]), &writes).len(), 1, "gap");
        // Writes before the first event or after the last are not the watcher's to have seen.
        assert!(check(&seen(&[(5, 0)]), &writes).is_empty());
        // Nor the rest of the last event's entry: the watcher may have stopped inside it.
        let mut last_entry = writes.clone();
        last_entry.push(("/reg/k1".to_string(), 7));
        assert!(check(&seen(&[(3, 0), (5, 0), (7, 0)]), &last_entry).is_empty());
        // But an entry before the last one must be whole.
        last_entry.push(("/reg/k1".to_string(), 5));
        assert_eq!(check(&seen(&[(3, 0), (5, 0), (7, 0)]), &last_entry).len(), 1, "part of an entry");
    }
}

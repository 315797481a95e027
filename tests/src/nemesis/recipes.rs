//! The recipe workloads and their invariants, through the bundled WebAssembly recipes:
//! - lock: no token granted twice; two holds that both ended in a successful release (so the
//!   holder's session lived throughout) never overlap, and their tokens follow their order;
//! - queue: no item acknowledged twice, and every item whose `put` was acknowledged is taken
//!   and acknowledged by the end (at-least-once, nothing lost);
//! - election: one leader per term, across what candidates and an observer saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{Client, Consistency};

use super::Rng;

/// Session timeout of the recipe clients: longer than any fault is held, so that a session
/// only ends when its client ends it.
const SESSION_MS: u64 = 15_000;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start a session, retrying through a failover.
async fn session(client: &Client, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        if client.start_session(SESSION_MS).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Give up the session (and whatever it holds), start another.
async fn fresh_session(client: &Client, stop: &AtomicBool) -> bool {
    let _ = client.close_session().await;
    session(client, stop).await
}

/// One lock hold: (client, token, entered, left, released cleanly).
pub type Holds = Arc<Mutex<Vec<(u64, u64, Instant, Instant, bool)>>>;

pub async fn lock_loop(client: Client, who: u64, mut rng: Rng, holds: Holds, stop: Arc<AtomicBool>) {
    if !session(&client, &stop).await {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let lock = client.lock("nemesis").timeout(Duration::from_secs(5));
        let guard = match tokio::time::timeout(Duration::from_secs(20), lock.acquire()).await {
            Ok(Ok(g)) => g,
            _ => {
                // Maybe granted without our knowing: drop the session, and the lock with it.
                if !fresh_session(&client, &stop).await {
                    return;
                }
                continue;
            }
        };
        let entered = Instant::now();
        tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
        let left = Instant::now();
        let token = guard.token();
        let released = guard.release().await.is_ok();
        locked(&holds).push((who, token, entered, left, released));
        if !released && !fresh_session(&client, &stop).await {
            return;
        }
    }
    let _ = client.close_session().await;
}

pub fn check_lock(holds: &[(u64, u64, Instant, Instant, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut tokens: Vec<u64> = holds.iter().map(|h| h.1).collect();
    tokens.sort_unstable();
    if let Some(w) = tokens.windows(2).find(|w| w[0] == w[1]) {
        out.push(format!("lock: token {} granted twice", w[0]));
        return out;
    }
    let mut clean: Vec<_> = holds.iter().filter(|h| h.4).collect();
    clean.sort_by_key(|h| h.2);
    for w in clean.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.2 < a.3 {
            out.push(format!(
                "lock: client {} (token {}) entered while client {} (token {}) held it",
                b.0, b.1, a.0, a.1
            ));
            break;
        }
        if b.1 <= a.1 {
            out.push(format!("lock: token {} was granted after token {}", b.1, a.1));
            break;
        }
    }
    out
}

/// What the queue workload saw.
#[derive(Default)]
pub struct QueueLog {
    /// Items whose put was acknowledged, with the id the put answered.
    pub put: BTreeMap<String, u64>,
    /// Items acknowledged, with repeats, each with the id it was taken and acknowledged as.
    pub acked: Vec<(String, u64)>,
    /// Items whose acknowledgement had an unknown outcome.
    pub ack_unknown: BTreeSet<String>,
}

pub async fn producer(client: Client, no: u64, log: Arc<Mutex<QueueLog>>, stop: Arc<AtomicBool>) {
    if !session(&client, &stop).await {
        return;
    }
    let q = client.queue("nemesis");
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let item = format!("p{no}-{i}");
        if let Ok(id) = q.put(&item).await {
            locked(&log).put.insert(item, id);
        }
    }
    let _ = client.close_session().await;
}

/// Take and acknowledge until `stop`, then until the queue is empty (or a minute passes).
pub async fn consumer(client: Client, log: Arc<Mutex<QueueLog>>, stop: Arc<AtomicBool>) {
    let never = AtomicBool::new(false);
    if !session(&client, &never).await {
        return;
    }
    let q = client.queue("nemesis");
    let mut drained_at = None::<Instant>;
    loop {
        if stop.load(Ordering::Relaxed) {
            let since = *drained_at.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(60) || queue_empty(&client).await {
                break;
            }
        }
        let Ok(Ok(item)) = tokio::time::timeout(Duration::from_secs(2), q.take()).await else {
            // The take failed or is still waiting: an item may be ours now. Ending the session
            // returns it to the queue.
            fresh_session(&client, &never).await;
            continue;
        };
        match q.ack(item.id).await {
            Ok(()) => locked(&log).acked.push((item.data, item.id)),
            Err(_) => {
                locked(&log).ack_unknown.insert(item.data);
                fresh_session(&client, &never).await;
            }
        }
    }
    let _ = client.close_session().await;
}

async fn queue_empty(client: &Client) -> bool {
    let q = br#"{"size":{"queue":"nemesis"}}"#;
    match client.plugin_query("queue", q, Consistency::Linearizable).await {
        Ok((out, _)) => serde_json::from_slice::<serde_json::Value>(&out).is_ok_and(|v| v["size"]["items"] == 0),
        Err(_) => false,
    }
}

pub fn check_queue(log: &QueueLog) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let dups: Vec<&(String, u64)> = log.acked.iter().filter(|(a, _)| !seen.insert(a.as_str())).collect();
    if let Some((dup, _)) = dups.first() {
        // The ids tell a put applied twice (two ids) from one item handed out twice (one id).
        let ids: Vec<u64> = log.acked.iter().filter(|(a, _)| a == dup).map(|(_, id)| *id).collect();
        out.push(format!(
            "queue: item {dup} acknowledged {} times, as ids {ids:?} (its put answered {:?}); {} items acknowledged more than once",
            ids.len(),
            log.put.get(dup),
            dups.len()
        ));
    }
    let lost: Vec<&String> =
        log.put.keys().filter(|p| !seen.contains(p.as_str()) && !log.ack_unknown.contains(*p)).collect();
    if !lost.is_empty() {
        out.push(format!("queue: {} acknowledged items never taken, e.g. {}", lost.len(), lost[0]));
    }
    out
}

/// (term, who) as candidates and the observer saw them.
pub type Terms = Arc<Mutex<Vec<(u64, String)>>>;

pub async fn candidate(client: Client, who: u64, mut rng: Rng, terms: Terms, stop: Arc<AtomicBool>) {
    if !session(&client, &stop).await {
        return;
    }
    let e = client.election("nemesis");
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_secs(10), e.campaign(&format!("c{who}"))).await {
            Ok(Ok(term)) => {
                locked(&terms).push((term, format!("c{who}")));
                tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
                if e.resign().await.is_err() && !fresh_session(&client, &stop).await {
                    return;
                }
            }
            _ => {
                if !fresh_session(&client, &stop).await {
                    return;
                }
            }
        }
    }
    let _ = client.close_session().await;
}

pub async fn observer(client: Client, terms: Terms, stop: Arc<AtomicBool>) {
    if !session(&client, &stop).await {
        return;
    }
    let Ok(mut rx) = client.election("nemesis").observe().await else { return };
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Some(Some(l))) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            locked(&terms).push((l.term, l.value));
        }
    }
    let _ = client.close_session().await;
}

pub fn check_election(terms: &[(u64, String)]) -> Vec<String> {
    let mut by_term: BTreeMap<u64, &str> = BTreeMap::new();
    for (term, who) in terms {
        if let Some(other) = by_term.insert(*term, who) {
            if other != who {
                return vec![format!("election: term {term} had two leaders, {other} and {who}")];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_check_finds_double_grants_and_overlaps() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        assert!(check_lock(&[(1, 10, ms(0), ms(5), true), (2, 11, ms(6), ms(9), true)]).is_empty());
        assert_eq!(check_lock(&[(1, 10, ms(0), ms(5), true), (2, 10, ms(6), ms(9), true)]).len(), 1);
        assert_eq!(check_lock(&[(1, 10, ms(0), ms(5), true), (2, 11, ms(4), ms(9), true)]).len(), 1);
        // A hold whose release failed may have outlived its session: fencing's job, not an anomaly.
        assert!(check_lock(&[(1, 10, ms(0), ms(5), false), (2, 11, ms(4), ms(9), true)]).is_empty());
    }

    #[test]
    fn queue_check_finds_losses_and_double_acks() {
        let log = |put: &[&str], acked: &[&str]| QueueLog {
            put: put.iter().enumerate().map(|(i, s)| (s.to_string(), i as u64)).collect(),
            acked: acked.iter().map(|s| (s.to_string(), 0)).collect(),
            ack_unknown: BTreeSet::new(),
        };
        assert!(check_queue(&log(&["a", "b"], &["b", "a"])).is_empty());
        assert_eq!(check_queue(&log(&["a", "b"], &["a"])).len(), 1);
        assert_eq!(check_queue(&log(&["a"], &["a", "a"])).len(), 1);
    }

    #[test]
    fn election_check_finds_two_leaders_in_a_term() {
        let t = |v: &[(u64, &str)]| v.iter().map(|(t, w)| (*t, w.to_string())).collect::<Vec<_>>();
        assert!(check_election(&t(&[(5, "a"), (5, "a"), (9, "b")])).is_empty());
        assert_eq!(check_election(&t(&[(5, "a"), (5, "b")])).len(), 1);
    }
}

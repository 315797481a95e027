use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use super::*;

/// A stand-in for the leadership check: it answers with its own number (1 for the first
/// check, ...) once the test lets it finish.
fn gated() -> (ReadRounds, Arc<AtomicU64>, Arc<Semaphore>) {
    let started = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (s, g) = (started.clone(), gate.clone());
    let rounds = ReadRounds::with_check(Arc::new(move |_asked| {
        let (s, g) = (s.clone(), g.clone());
        Box::pin(async move {
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            g.acquire().await.expect("gate").forget();
            Ok(n)
        })
    }));
    (rounds, started, gate)
}

/// Wait for `what`, failing the test (not hanging it) if it never comes.
async fn until(what: impl Fn() -> bool) {
    let wait = async {
        while !what() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait).await.expect("the awaited state never came");
}

#[tokio::test]
async fn a_read_is_served_by_a_check_that_started_after_it_and_waiting_reads_share_one() {
    let (rounds, started, gate) = gated();
    let rounds = Arc::new(rounds);
    let read = |r: &Arc<ReadRounds>| {
        let r = r.clone();
        tokio::spawn(async move { r.local().await })
    };

    let first = read(&rounds);
    until(|| started.load(Ordering::SeqCst) == 1).await;
    // These arrive while check 1 is in flight: it began before them, so it must not serve them.
    let later: Vec<_> = (0..5).map(|_| read(&rounds)).collect();
    let queued = || rounds.queues.lock().unwrap().get(&None).map_or(0, Vec::len);
    until(|| queued() == 5).await;

    gate.add_permits(1);
    assert_eq!(first.await.expect("join"), Ok(1));
    until(|| started.load(Ordering::SeqCst) == 2).await;
    gate.add_permits(1);
    for r in later {
        assert_eq!(r.await.expect("join"), Ok(2), "served by the check that started after it arrived");
    }
    assert_eq!(started.load(Ordering::SeqCst), 2, "the five waiting reads shared one check");
    until(|| rounds.queues.lock().unwrap().is_empty()).await;
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_stop_the_round_for_the_others() {
    let (rounds, started, gate) = gated();
    let rounds = Arc::new(rounds);
    let impatient = {
        let r = rounds.clone();
        tokio::spawn(async move { r.local().await })
    };
    until(|| started.load(Ordering::SeqCst) == 1).await;
    let patient = {
        let r = rounds.clone();
        tokio::spawn(async move { r.local().await })
    };
    until(|| rounds.queues.lock().unwrap().get(&None).map_or(0, Vec::len) == 1).await;
    impatient.abort();
    gate.add_permits(2);
    assert_eq!(patient.await.expect("join"), Ok(2));
}

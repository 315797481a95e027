//! A leader hung (SIGSTOP: a GC pause, a VM migration) long enough for the others to elect a
//! new one and to drop their idle connections to it, then continued. It must rejoin as a
//! follower without an election: the new leader keeps its term.
//!
//! Two things used to make it stand for election within a second of waking, and its newer
//! term then unseated the new leader (~0.3 s without one): the new leader's dial to it, made
//! while it was stopped, ended with a round-trip estimate of a second or more, on which quinn
//! paced every append; and openraft paused replication to it for 500 ms after each failed
//! attempt, longer than its election timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use corral_tests::{Cluster, NodeOpts};

/// Longer than the peers' QUIC idle timeout (2 s), so their connections to the hung node are
/// gone and they dial it while it is stopped.
const HUNG: Duration = Duration::from_millis(3_000);

/// Each round hangs the leader of the time.
const ROUNDS: usize = 3;

/// How long after it is continued every node's term is watched: the hung node's election timer
/// fired within ~0.7 s of waking.
const WATCH: Duration = Duration::from_millis(2_000);

/// The keys the writer overwrites, with 1 KiB values.
const KEYS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_leader_rejoins_as_a_follower_without_an_election() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let first = c.wait_leader(Duration::from_secs(30)).await?;
    let setup = c.client_on(first)?;
    for k in 0..KEYS {
        setup.create(&format!("/k{k}"), b"").await?;
    }
    for round in 0..ROUNDS {
        let hung = c.wait_leader(Duration::from_secs(30)).await?;
        hang_and_continue(&c, hung).await.map_err(|e| e.context(format!("round {round}, node {hung} hung")))?;
    }
    Ok(())
}

/// Hang the leader `hung` for [`HUNG`] under a steady writer, continue it, and check that no
/// node's term moves past the one the others elected meanwhile.
async fn hang_and_continue(c: &Cluster, hung: u64) -> anyhow::Result<()> {
    let others: Vec<u64> = c.ids().into_iter().filter(|id| *id != hung).collect();
    c.pause(hung, true);
    let resumed_at = Instant::now() + HUNG;
    let (leader, term) = elected_among(c, &others, hung).await?;
    // A writer throughout, as an application would: the hung node has a thousand entries to
    // catch up on, and appends keep coming while it does.
    let client = c.client_on(leader)?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client.set(&format!("/k{}", n % KEYS), &[b'v'; 1024], None).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }
    });
    // The fault itself: the node stays hung this long.
    tokio::time::sleep_until(resumed_at.into()).await;
    c.pause(hung, false);

    let watch_until = Instant::now() + WATCH;
    let mut checks = 0;
    while Instant::now() < watch_until {
        for id in c.ids() {
            let Ok(s) = c.status(id).await else { continue };
            checks += 1;
            // The hung node reports its old leadership until it hears of the new one; any
            // election, by anyone, shows as a higher term.
            if s.term > term {
                bail!("node {id} is in term {} after node {hung} was continued (was {term})", s.term);
            }
            if id != hung && s.leader != Some(leader) {
                bail!("node {id} follows {:?} after node {hung} was continued (was {leader})", s.leader);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await??;
    let last = c.status(leader).await?.applied_index;
    c.wait_applied(hung, last, Duration::from_secs(30)).await?;
    for id in c.ids() {
        let s = c.status(id).await?;
        if (s.leader, s.term) != (Some(leader), term) {
            bail!("node {id} has ({:?}, {}) after node {hung} caught up, not ({leader}, {term})", s.leader, s.term);
        }
    }
    println!("node {hung} hung: {writes} writes; {checks} statuses, all in term {term} under node {leader}");
    Ok(())
}

/// The leader and term that every one of `others` reports, once they agree on one that is
/// not `hung`.
async fn elected_among(c: &Cluster, others: &[u64], hung: u64) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for id in others {
            views.push(c.status(*id).await.ok().map(|s| (s.leader, s.term)));
        }
        if let [Some((Some(l), t)), rest @ ..] = views.as_slice() {
            if *l != hung && rest.iter().all(|v| *v == Some((Some(*l), *t))) {
                return Ok((*l, *t));
            }
        }
        if Instant::now() > deadline {
            bail!("the others elected no leader: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

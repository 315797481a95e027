//! Network partitions through the test fault layer (`[test] net_faults`): a leader cut off
//! from the majority can acknowledge nothing, the majority elects a new leader and keeps
//! writing, and after healing every node converges on the majority's history.

use std::time::{Duration, Instant};

use corral_client::Consistency;
use corral_tests::{eventually, Cluster, NodeOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_acknowledges_nothing_and_the_majority_moves_on() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { net_faults: true, ..NodeOpts::default() }).await?;
    c.client()?.create("/before", b"1").await?;
    let old = c.wait_leader(Duration::from_secs(10)).await?;
    let majority: Vec<u64> = c.ids().into_iter().filter(|id| *id != old).collect();

    let cut = Instant::now();
    c.partition(&[&[old], &majority])?;
    let new = loop {
        let mut leaders = Vec::new();
        for id in &majority {
            leaders.push(c.status(*id).await.ok().and_then(|s| s.leader));
        }
        if let [Some(a), Some(b)] = leaders[..] {
            if a == b && a != old {
                break a;
            }
        }
        assert!(cut.elapsed() < Duration::from_secs(15), "no new leader in the majority: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("new leader {new} {:?} after the cut", cut.elapsed());

    // The majority keeps writing; the isolated old leader acknowledges nothing.
    c.client_on(majority[0])?.create("/during", b"2").await?;
    let stranded = c.client_on(old)?.create("/stranded", b"3").await;
    assert!(stranded.is_err(), "a leader cut off from its majority acknowledged a write");

    c.heal()?;
    for id in c.ids() {
        eventually(Duration::from_secs(15), "every node to see the majority's write", || async {
            match c.client_on(id) {
                Ok(cl) => matches!(cl.exists("/during", Consistency::Linearizable).await, Ok(Some(_))),
                Err(_) => false,
            }
        })
        .await?;
    }
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    assert_eq!(c.status(old).await?.leader, Some(leader), "the old leader follows after the heal");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_duplicating_links_delay_but_do_not_break_writes() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { net_faults: true, ..NodeOpts::default() }).await?;
    for id in c.ids() {
        let others: Vec<u64> = c.ids().into_iter().filter(|o| *o != id).collect();
        let per_peer = |v: f64| -> serde_json::Map<String, serde_json::Value> {
            others.iter().map(|o| (o.to_string(), serde_json::json!(v))).collect()
        };
        let spec = serde_json::json!({ "loss": per_peer(0.1), "dup": per_peer(0.1), "seed": id });
        c.faults(id, spec)?;
    }
    let client = c.client()?;
    for i in 0..100 {
        client.create(&format!("/n{i}"), b"x").await?;
    }
    c.heal()?;
    for id in c.ids() {
        let on = c.client_on(id)?;
        assert_eq!(on.children("/", Consistency::Linearizable).await?.len(), 100, "node {id}");
    }
    Ok(())
}

/// How long a follower stays cut off: several of its election timeouts (150–300 ms).
const AWAY: Duration = Duration::from_millis(2_000);

/// A follower cut off from everyone keeps finding its leader gone, but a pre-vote (patched
/// openraft) asks the voters first whether they would elect it, and it reaches none: it never
/// raises its term. Back, it follows the leader it left, with no election. Without the
/// pre-vote it campaigned on its own, raising its term each time, and the leader stepped down
/// on hearing that term when the partition healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_back_from_a_partition_does_not_unseat_the_leader() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { net_faults: true, ..NodeOpts::default() }).await?;
    c.client()?.create("/before", b"1").await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let term = c.status(leader).await?.term;
    let away = c.ids().into_iter().find(|id| *id != leader).expect("three nodes");
    let rest: Vec<u64> = c.ids().into_iter().filter(|id| *id != away).collect();

    c.partition(&[&[away], &rest])?;
    // The fault itself: the follower stays cut off this long, while the majority writes.
    let back_at = Instant::now() + AWAY;
    let writer = c.client_on(leader)?;
    let mut writes = 0;
    while Instant::now() < back_at {
        writer.create(&format!("/during{writes}"), b"2").await?;
        writes += 1;
    }
    let cut_off = c.status(away).await?;
    assert_eq!(cut_off.term, term, "node {away}, cut off, raised its term");

    c.heal()?;
    let last = c.status(leader).await?.applied_index;
    c.wait_applied(away, last, Duration::from_secs(15)).await?;
    writer.create("/after", b"3").await?;
    for id in c.ids() {
        let s = c.status(id).await?;
        assert_eq!(
            (s.leader, s.term),
            (Some(leader), term),
            "node {id} after node {away} came back ({writes} writes while it was away)"
        );
    }
    Ok(())
}

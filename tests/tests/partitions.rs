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

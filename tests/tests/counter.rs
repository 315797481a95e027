//! The `counter` recipe on 3 real nodes: 8 clients draw from one sequence and add to one
//! counter while the leader is killed; every number is drawn exactly once (1..=N, no gap, no
//! repeat: session resends are applied once), every add counts once, and compare-and-set
//! increments never lose an update.

use std::collections::BTreeSet;
use std::time::Duration;

use corral_client::DeployOptions;
use corral_tests::{plugin_wasm, Cluster, NodeOpts};

const CLIENTS: i64 = 8;
const EACH: i64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequences_and_counters_stay_exact_through_a_leader_kill() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.plugin_deploy("counter", plugin_wasm("counter"), DeployOptions::default()).await?;

    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let client = c.client()?;
        workers.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            let mut drawn = Vec::new();
            let mut swaps = 0;
            for i in 0..EACH {
                drawn.push(client.counter("ids").next().await?);
                client.counter("hits").add(1).await?;
                if i % 10 == 0 {
                    // A compare-and-set increment: retried until it wins.
                    let cas = client.counter("cas");
                    let mut seen = cas.get().await?;
                    while let Err(actual) = cas.compare_and_set(seen, seen + 1).await? {
                        seen = actual;
                    }
                    swaps += 1;
                }
            }
            client.close_session().await?;
            anyhow::Ok((drawn, swaps))
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    c.kill(leader);
    c.wait_leader(Duration::from_secs(10)).await?;
    c.restart(leader).await?;

    let mut all = BTreeSet::new();
    let mut swaps = 0;
    for w in workers {
        let (drawn, s) = w.await??;
        swaps += s;
        for n in drawn {
            assert!(all.insert(n), "{n} drawn twice");
        }
    }
    let n = CLIENTS * EACH;
    assert_eq!(all, (1..=n).collect::<BTreeSet<_>>(), "every number 1..={n} exactly once");
    let client = c.client()?;
    assert_eq!(client.counter("hits").get().await?, n, "every add counted once");
    assert_eq!(client.counter("cas").get().await?, swaps, "no compare-and-set update lost");
    Ok(())
}

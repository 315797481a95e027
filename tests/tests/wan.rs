//! The WAN profile: voters 1 and 2 in one datacenter, voter 3 and a learner (4) in another,
//! with an 80 ms round trip between the two (40 ms each way, injected by the test fault
//! layer). Over 60 s of writes: no leader change, every write succeeds, and the remote learner
//! serves local serializable reads without a round trip to the leader.

use std::time::{Duration, Instant};

use corral_client::Consistency;
use corral_tests::{eventually, Cluster, NodeOpts};

const ONE_WAY_MS: u64 = 40;
const RUN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eighty_ms_between_datacenters_no_spurious_elections_and_local_learner_reads() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts { net_faults: true, wan: true, ..NodeOpts::default() }).await?;
    let addr4 = c.spawn_new(4).await?;
    c.client()?.member_add(4, &addr4, true).await?;
    let (near, far) = ([1u64, 2], [3u64, 4]);
    let delays = |to: &[u64]| -> serde_json::Map<String, serde_json::Value> {
        to.iter().map(|id| (id.to_string(), serde_json::json!(ONE_WAY_MS))).collect()
    };
    for id in near {
        c.faults(id, serde_json::json!({ "delay_ms": delays(&far) }))?;
    }
    for id in far {
        c.faults(id, serde_json::json!({ "delay_ms": delays(&near) }))?;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await?;
    let term = c.status(leader).await?.term;

    let client = c.client_on(near[0])?;
    for i in 0..50 {
        client.create(&format!("/w{i}"), b"").await?;
    }
    let learner = c.client_on(4)?;
    let start = Instant::now();
    let (mut writes, mut local_reads) = (0u64, Vec::new());
    while start.elapsed() < RUN {
        client.set(&format!("/w{}", writes % 50), b"v", None).await?;
        writes += 1;
        if writes % 20 == 0 {
            let t = Instant::now();
            let _ = learner.exists("/w0", Consistency::Serializable).await?;
            local_reads.push(t.elapsed());
        }
    }
    let after = c.status(leader).await?;
    assert_eq!((after.term, after.leader), (term, Some(leader)), "a leader change under WAN delays");
    local_reads.sort();
    let median = local_reads[local_reads.len() / 2];
    println!("{writes} writes in {RUN:?}, term unchanged ({term}); learner serializable read median {median:?}");
    assert!(median < Duration::from_millis(2 * ONE_WAY_MS), "learner reads went remote: {median:?}");
    eventually(Duration::from_secs(10), "the learner to catch up", || async {
        matches!(learner.exists("/w0", Consistency::Serializable).await, Ok(Some(_)))
    })
    .await?;
    Ok(())
}

//! 10,000 plugin calls across leader kills: afterwards every replica reports the same state
//! digest at the same index, and no node raised a divergence alarm.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Consistency, DeployOptions};
use corral_tests::{eventually, plugin_wasm, Cluster, NodeOpts};

const CALLS: u64 = 10_000;
const WRITERS: u64 = 8;
const KILLS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_calls_with_leader_kills_leave_identical_digests() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;
    admin.plugin_deploy("hostile", plugin_wasm("hostile"), DeployOptions::default()).await?;

    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = c.client()?;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while acked.load(Ordering::Relaxed) < CALLS {
                i += 1;
                // Mostly counter calls; some that trap, so failed calls are replicated too.
                let (name, input) = match (w + i) % 10 {
                    0 => ("hostile", br#""loop""#.as_slice()),
                    _ => ("counter", br#"{"add":1}"#.as_slice()),
                };
                match client.plugin_call(name, input).await {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(corral_client::ClientError::Server(corral_client::ServerError::PluginFailed { .. })) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }

    for k in 1..=KILLS {
        eventually(Duration::from_secs(120), "calls to go through", || async {
            acked.load(Ordering::Relaxed) >= k * CALLS / (KILLS + 1)
        })
        .await?;
        let leader = c.wait_leader(Duration::from_secs(10)).await?;
        c.kill(leader);
        // A real failover: another node takes over before the old leader comes back.
        let next = c.wait_leader(Duration::from_secs(10)).await?;
        assert_ne!(next, leader);
        c.restart(leader).await?;
    }
    for w in writers {
        w.await?;
    }

    // One more write, then every node reaches the same last entry.
    let (_, last) = admin.plugin_call("counter", br#"{"add":0}"#).await?;
    let rows = c.replicas_agree(last, Duration::from_secs(30)).await?;
    let (n, _) = admin.plugin_query("counter", br#""get""#, Consistency::Linearizable).await?;
    let n: u64 = String::from_utf8(n)?.parse()?;
    assert!(n >= CALLS * 8 / 10, "the counter ({n}) holds at least the acknowledged adds");
    let term = rows[0].term;
    assert!(term > KILLS, "every kill made an election (term {term})");
    println!(
        "{} calls acknowledged, {KILLS} leader kills (term {term}), digest {} at index {}",
        acked.load(Ordering::Relaxed),
        rows[0].digest,
        rows[0].digest_index
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_state_diverges_raises_the_alarm() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { diverge_node: Some(3), ..NodeOpts::default() }).await?;
    let client = c.client()?;
    client.create("/x", b"1").await?;
    client.set("/x", b"2", None).await?;
    // The leader compares every 5 s; whichever node leads, some node sees the difference.
    eventually(Duration::from_secs(30), "a divergence alarm in corral status", || async {
        let mut alarms = Vec::new();
        for id in c.ids() {
            if let Ok(s) = c.status(id).await {
                alarms.extend(s.divergence);
            }
        }
        alarms.iter().any(|a| a.contains("digest"))
    })
    .await?;
    let out = c.cli()?.arg("status").output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALARM"), "corral status shows the alarm");
    Ok(())
}

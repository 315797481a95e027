//! Durability with real processes: kill -9 of every node, and power loss with torn WAL tails.
//! A power cut is kill -9 followed by zeroing every WAL byte that was not fdatasynced (the
//! test-only WAL mode records the synced length of each segment); the state store then falls
//! back to its last fsynced point. Nothing the cluster acknowledged may be lost.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Client, ClientError, ServerError};
use corral_tests::{raw, Cluster, NodeOpts};

/// Acknowledged keys, and a signal on every new one (so a test can cut power right at an ack).
#[derive(Default)]
struct AckSet {
    keys: Mutex<BTreeSet<String>>,
    more: tokio::sync::Notify,
}
type Acked = Arc<AckSet>;

/// `n` writers creating distinct keys until stopped; acknowledged keys go into the set.
fn start_writers(client: &Client, n: usize, acked: &Acked) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (client, acked) = (client.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let path = format!("/w{w}-{i:06}");
                    loop {
                        match client.create(&path, path.as_bytes()).await {
                            Ok(_) | Err(ClientError::Server(ServerError::NodeExists { .. })) => break,
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    acked.keys.lock().unwrap().insert(path);
                    acked.more.notify_waiters();
                }
            })
        })
        .collect()
}

async fn wait_acked(acked: &Acked, n: usize) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let more = acked.more.notified();
            if acked.keys.lock().unwrap().len() >= n {
                return;
            }
            more.await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("fewer than {n} acknowledged writes after 60 s"))
}

fn snapshot(acked: &Acked) -> BTreeSet<String> {
    acked.keys.lock().unwrap().clone()
}

async fn assert_all_present(c: &Cluster, acked: &BTreeSet<String>) -> anyhow::Result<()> {
    let client = c.client()?;
    for path in acked {
        let (data, _) = client.get(path).await.map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        assert_eq!(data, path.as_bytes(), "{path} has wrong data");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_every_node_during_writes_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let acked: Acked = Default::default();
    let writers = start_writers(&c.client()?, 4, &acked);
    wait_acked(&acked, 400).await?;
    for id in c.ids() {
        c.kill(id);
    }
    for w in &writers {
        w.abort();
    }
    let acked = snapshot(&acked);
    for id in c.ids() {
        c.restart(id).await?;
    }
    c.wait_leader(Duration::from_secs(20)).await?;
    assert_all_present(&c, &acked).await?;
    eprintln!("{} acknowledged writes survived kill -9 of all 3 nodes", acked.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_loss_loses_nothing_acknowledged_and_torn_wals_open() -> anyhow::Result<()> {
    // WAL bytes wait 50 ms between write and fdatasync, so a power cut right after an
    // acknowledgement lands in that window: acknowledging before the sync would lose data.
    let opts = NodeOpts { wal_drop_unsynced_ms: Some(50), wal_segment_bytes: Some(256 * 1024), ..NodeOpts::default() };
    let mut c = Cluster::start(3, opts).await?;
    let acked: Acked = Default::default();
    let writers = start_writers(&c.client()?, 4, &acked);

    // A minority loses power mid-write, its WAL tail is torn, it comes back.
    wait_acked(&acked, 100).await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let follower = c.ids().into_iter().find(|&id| id != leader).expect("a follower");
    c.power_cut(follower)?;
    raw::tear_wal_tail(&c.wal_dir(follower))?;
    c.restart(follower).await?;

    // Then, five times, the whole ensemble loses power right after an acknowledgement; every
    // WAL gets a torn tail. Everything acknowledged before the cut must come back.
    for round in 0..5 {
        let seen = acked.keys.lock().unwrap().len();
        wait_acked(&acked, seen + 100).await?;
        for id in c.ids() {
            c.power_cut(id)?;
        }
        let before_cut = snapshot(&acked);
        for id in c.ids() {
            raw::tear_wal_tail(&c.wal_dir(id))?;
            c.restart(id).await?;
        }
        c.wait_leader(Duration::from_secs(20)).await?;
        assert_all_present(&c, &before_cut).await.map_err(|e| anyhow::anyhow!("after power cut {round}: {e}"))?;
    }
    for w in &writers {
        w.abort();
    }
    // The replicas agree entry for entry: a node that lost entries it had sent must not have
    // written different ones under the same log ids when it came back (it once did, as a
    // leader resuming its old term).
    let client = c.client()?;
    client.create("/last", b"").await?;
    c.replicas_agree(client.seen_index(), Duration::from_secs(30)).await?;
    let acked = snapshot(&acked);
    for id in c.ids() {
        let log = std::fs::read_to_string(c.log_path(id))?;
        assert!(log.contains("cutting torn tail"), "node {id} did not repair its torn WAL");
    }
    eprintln!("{} acknowledged writes survived two power losses", acked.len());
    Ok(())
}

//! Replication and failover with real processes: acknowledged writes survive a leader kill,
//! the killed node catches up, every node serves every acknowledged write.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{ClientError, Consistency, ServerError};
use corral_tests::{Cluster, NodeOpts};

const WRITES: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_no_acknowledged_write_and_the_node_catches_up() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(Mutex::new(0usize));
    let kill_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let first_after_kill: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));

    // Three writers, each attached to a different node, writing distinct keys.
    let mut writers = Vec::new();
    for (w, id) in c.ids().into_iter().enumerate() {
        let mut client = c.client_on(id)?;
        let client_all = c.client()?;
        let (acked, done, kill_at, first) = (acked.clone(), done.clone(), kill_at.clone(), first_after_kill.clone());
        writers.push(tokio::spawn(async move {
            let mut i = w;
            while i < WRITES {
                let path = format!("/k{i:05}");
                let res = client.create(&path, path.as_bytes()).await;
                if matches!(res, Err(ClientError::Connect(_))) {
                    // The attached node was the one killed: move to the others.
                    client = client_all.clone();
                }
                match res {
                    // A retry of a write whose first reply was lost finds it already there.
                    Ok(_) | Err(ClientError::Server(ServerError::NodeExists { .. })) => {
                        acked.lock().unwrap().insert(path);
                        *done.lock().unwrap() += 1;
                        if kill_at.lock().unwrap().is_some() {
                            first.lock().unwrap().get_or_insert_with(Instant::now);
                        }
                        i += 3;
                    }
                    Err(_) => {} // unknown outcome or no leader yet: try the same key again
                }
            }
        }));
    }

    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    corral_tests::eventually(Duration::from_secs(60), "300 writes", || {
        let done = done.clone();
        async move { *done.lock().unwrap() >= 300 }
    })
    .await?;
    c.kill(leader);
    *kill_at.lock().unwrap() = Some(Instant::now());

    for w in writers {
        tokio::time::timeout(Duration::from_secs(120), w).await??;
    }
    let window = first_after_kill.lock().unwrap().zip(*kill_at.lock().unwrap()).map(|(a, k)| a - k);
    eprintln!("unavailability window after kill -9 of leader {leader}: {window:?}");

    let new_leader = c.wait_leader(Duration::from_secs(10)).await?;
    assert_ne!(new_leader, leader);
    c.restart(leader).await?;
    let target = c.status(new_leader).await?.applied_index;
    c.wait_applied(leader, target, Duration::from_secs(30)).await?;

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), WRITES);
    for id in c.ids() {
        let client = c.client_on(id)?;
        for path in &acked {
            let (data, _) = client.get_with(path, Consistency::Serializable).await?;
            assert_eq!(data, path.as_bytes(), "node {id} has wrong data for {path}");
        }
        let children = client.children("/", Consistency::Serializable).await?;
        assert_eq!(children.len(), WRITES, "node {id} has extra or missing nodes");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_by_many_large_values_catches_up() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    let lagger = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    let client = c.client_on(leader)?;
    let t = std::time::Instant::now();
    client.create("/probe", &vec![1u8; 1024 * 1024]).await?;
    eprintln!("one 1 MiB create with every node up: {:?}", t.elapsed());
    c.pause(lagger, true);
    let value = vec![7u8; 1024 * 1024]; // the largest value allowed by default
    for i in 0..80 {
        client.create(&format!("/big{i:03}"), &value).await?;
    }
    c.pause(lagger, false);
    // 80 MiB to send: more than one frame may carry, so the leader must batch below that.
    let target = c.status(leader).await?.applied_index;
    c.wait_applied(lagger, target, Duration::from_secs(60)).await?;
    let (data, _) = c.client_on(lagger)?.get_with("/big079", Consistency::Serializable).await?;
    assert_eq!(data.len(), value.len());
    Ok(())
}

/// A follower sends the writes that arrive together to the leader in one exchange
/// (`api/forward.rs`): each must still get its own answer, errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_through_a_follower_each_get_their_own_answer() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    let follower = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    for i in 0..16 {
        c.client_on(leader)?.create(&format!("/taken{i}"), b"first").await?;
    }
    let client = c.client_on(follower)?;
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let data = i.to_be_bytes();
            let res = match i % 4 {
                // A path that exists: this one, and only this one, fails.
                0 => client.create(&format!("/taken{}", i / 4), &data).await.map(|_| format!("/taken{}", i / 4)),
                1 => client
                    .create_with("/seq-", &data, corral_client::CreateMode { sequential: true, ..Default::default() })
                    .await
                    .map(|(p, _)| p),
                _ => client.create(&format!("/new{i}"), &data).await.map(|_| format!("/new{i}")),
            };
            (i, res)
        }));
    }
    let mut sequential = BTreeSet::new();
    for t in tasks {
        let (i, res) = t.await?;
        match (i % 4, res) {
            (0, Err(ClientError::Server(ServerError::NodeExists { path }))) => {
                assert_eq!(path, format!("/taken{}", i / 4))
            }
            (0, other) => panic!("create of an existing node {i} answered {other:?}"),
            (_, Ok(path)) => {
                let (data, _) = client.get(&path).await?;
                assert_eq!(data, i.to_be_bytes(), "{path} holds what request {i} wrote");
                if i % 4 == 1 {
                    assert!(sequential.insert(path.clone()), "{path} answered twice");
                }
            }
            (_, Err(e)) => panic!("request {i} failed: {e}"),
        }
    }
    assert_eq!(sequential.len(), 16);
    Ok(())
}

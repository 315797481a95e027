//! Recipe invariants under concurrency on 3 real nodes: a semaphore never has more holders
//! than permits; a double barrier lets nobody through before everyone has arrived (and out
//! before everyone has left); a barrier holds its waiters until removed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::DeployOptions;
use corral_tests::{plugin_wasm, Cluster, NodeOpts};

async fn cluster_with(plugins: &[&str]) -> anyhow::Result<Cluster> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    for p in plugins {
        admin.plugin_deploy(p, plugin_wasm(p), DeployOptions::default()).await?;
    }
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_semaphore_never_has_more_holders_than_permits() -> anyhow::Result<()> {
    let c = cluster_with(&["semaphore"]).await?;
    let (inside, most) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = c.client()?;
        let (inside, most) = (inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            for _ in 0..15 {
                let permit = client.semaphore("S", 3).acquire().await?;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                permit.release().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} holders at once");
    assert!(most >= 2, "the permits were shared ({most} at most)");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_barrier_lets_nobody_through_early() -> anyhow::Result<()> {
    const N: u64 = 6;
    let c = cluster_with(&["barrier"]).await?;
    for round in 0..3u64 {
        let (arrived, left) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut tasks = Vec::new();
        for i in 0..N {
            let client = c.client()?;
            let (arrived, left) = (arrived.clone(), left.clone());
            tasks.push(tokio::spawn(async move {
                client.start_session(5_000).await?;
                tokio::time::sleep(Duration::from_millis(i * 30)).await;
                let b = client.double_barrier(&format!("D{round}"), N as u32);
                arrived.fetch_add(1, Ordering::SeqCst);
                b.enter().await?;
                assert_eq!(arrived.load(Ordering::SeqCst), N, "through the barrier before all arrived");
                tokio::time::sleep(Duration::from_millis((N - i) * 20)).await;
                left.fetch_add(1, Ordering::SeqCst);
                b.leave().await?;
                assert_eq!(left.load(Ordering::SeqCst), N, "out of the barrier before all left");
                client.close_session().await?;
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_barrier_holds_waiters_until_removed() -> anyhow::Result<()> {
    let c = cluster_with(&["barrier"]).await?;
    let admin = c.client()?;
    admin.barrier("B").set().await?;
    let removed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let client = c.client()?;
        let removed = removed.clone();
        tasks.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            client.barrier("B").wait().await?;
            assert_eq!(removed.load(Ordering::SeqCst), 1, "a waiter went through a set barrier");
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    removed.store(1, Ordering::SeqCst);
    admin.barrier("B").remove().await?;
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await???;
    }
    Ok(())
}

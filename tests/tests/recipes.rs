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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rwlock_never_mixes_a_writer_with_anyone() -> anyhow::Result<()> {
    let c = cluster_with(&["rwlock"]).await?;
    // Readers inside, and writers inside (times 1000): any overlap shows in one number.
    let inside = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let client = c.client()?;
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            for round in 0..12u64 {
                let write = (w * 7 + round * 3) % 4 == 0;
                let lock = client.rwlock("RW");
                let guard = if write { lock.write().await? } else { lock.read().await? };
                let me = if write { 1_000 } else { 1 };
                let now = inside.fetch_add(me, Ordering::SeqCst) + me;
                // Readers alone (< 1000) or one writer alone (= 1000).
                assert!(now <= 1_000, "a writer with others inside ({now})");
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(me, Ordering::SeqCst);
                guard.release().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t).await???;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multilock_never_shares_a_lock_and_never_deadlocks() -> anyhow::Result<()> {
    let c = cluster_with(&["multilock"]).await?;
    let names = ["a", "b", "c", "d"];
    let occupancy: Arc<Vec<AtomicI64>> = Arc::new(names.iter().map(|_| AtomicI64::new(0)).collect());
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let client = c.client()?;
        let occupancy = occupancy.clone();
        tasks.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            for round in 0..12usize {
                // Two locks, in varying order: a naive lock-by-lock client would deadlock.
                let (x, y) = ((w + round) % 4, (w * 3 + round + 1) % 4);
                let want: Vec<&str> = if x == y { vec![names[x]] } else { vec![names[y], names[x]] };
                let guard = client.multilock(&want).acquire().await?;
                for l in [x, y] {
                    let n = occupancy[l].fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(n == 1 || (x == y && n == 2), "lock {} held twice", names[l]);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                for l in [x, y] {
                    occupancy[l].fetch_sub(1, Ordering::SeqCst);
                }
                guard.release().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t).await???;
    }
    Ok(())
}

//! Watches against real processes: a recursive watcher sees every change, in log order,
//! once, while the node it is connected to is killed and it resumes on another; one-shot
//! watches fire once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{ClientError, EventKind, WatchKind, WatchSpec};
use corral_tests::{eventually, Cluster, NodeOpts};

const CHANGES: usize = 10_000;
const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recursive_watcher_sees_every_change_once_in_order_across_a_node_kill() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.create("/w", b"").await?;
    let watcher = c.client()?;
    watcher.start_session(3_000).await?;
    let mut events = watcher.events()?;
    watcher.add_watch(WatchSpec::new("/w", WatchKind::PersistentRecursive)).await?;

    let written = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, written) = (c.client()?, written.clone());
        writers.push(tokio::spawn(async move {
            client.start_session(10_000).await?;
            for i in (w..CHANGES).step_by(WRITERS) {
                loop {
                    // Under a session the library resends safely; keep going through elections.
                    match client.create(&format!("/w/k{i:05}"), b"").await {
                        Ok(_) => break,
                        Err(ClientError::Timeout(_)) => continue,
                        Err(e) => return Err(anyhow::anyhow!("create {i}: {e}")),
                    }
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }

    // Collect events in the background; kill the watcher's node part way.
    let collector = tokio::spawn(async move {
        let mut got = Vec::new();
        let (mut created, mut changed) = (0, 0);
        // Each creation is two events (the node, then its parent's children).
        while created < CHANGES || changed < CHANGES {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Some(Ok(ev))) => {
                    created += (ev.kind == EventKind::Created) as usize;
                    changed += (ev.kind == EventKind::ChildrenChanged) as usize;
                    got.push(ev);
                }
                Ok(Some(Err(e))) => return Err(anyhow::anyhow!("event stream error: {e}")),
                Ok(None) => return Err(anyhow::anyhow!("event stream ended")),
                Err(_) => return Err(anyhow::anyhow!("no event for 60 s after {created} creations")),
            }
        }
        Ok(got)
    });
    let w2 = written.clone();
    eventually(Duration::from_secs(60), "3,000 writes", || {
        let w2 = w2.clone();
        async move { w2.load(Ordering::Relaxed) >= 3_000 }
    })
    .await?;
    let at = watcher.current_endpoint().await.to_string();
    let victim = c.ids().into_iter().find(|&i| c.addr(i) == at).expect("the watcher's node");
    c.kill(victim);

    for w in writers {
        w.await??;
    }
    let got = collector.await??;
    assert!(got.windows(2).all(|p| p[0].pos() < p[1].pos()), "events out of order or repeated");
    let created: Vec<&str> = got.iter().filter(|e| e.kind == EventKind::Created).map(|e| e.path.as_str()).collect();
    let unique: BTreeSet<&str> = created.iter().copied().collect();
    assert_eq!(created.len(), CHANGES, "a creation was delivered twice or lost");
    assert_eq!(unique.len(), CHANGES);
    let children_changed = got.iter().filter(|e| e.kind == EventKind::ChildrenChanged && e.path == "/w").count();
    assert_eq!(children_changed, CHANGES, "a child change was lost or repeated");
    assert_ne!(watcher.current_endpoint().await.to_string(), at, "the watcher did not move");
    eprintln!("{} events delivered in order across the kill of node {victim}", got.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.start_session(5_000).await?;
    let mut events = client.events()?;
    client.create("/x", b"0").await?;
    client.get_watch("/x").await?;
    client.children_watch("/").await?;
    client.set("/x", b"1", None).await?;
    client.set("/x", b"2", None).await?;
    client.create("/y", b"").await?;
    client.create("/z", b"").await?;
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?.expect("open")?;
    let second = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?.expect("open")?;
    assert_eq!((first.path.as_str(), first.kind), ("/x", EventKind::DataChanged));
    assert_eq!((second.path.as_str(), second.kind), ("/", EventKind::ChildrenChanged));
    // Nothing else: both watches were one-shot. A later persistent watch proves the stream is live.
    client.add_watch(WatchSpec::new("/x", WatchKind::Persistent)).await?;
    client.delete("/x", None).await?;
    let third = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?.expect("open")?;
    assert_eq!((third.path.as_str(), third.kind), ("/x", EventKind::Deleted), "a one-shot watch fired twice");
    // An exists watch on a missing node fires when it is created.
    assert!(client.exists_watch("/later").await?.is_none());
    client.create("/later", b"").await?;
    let fourth = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?.expect("open")?;
    assert_eq!((fourth.path.as_str(), fourth.kind), ("/later", EventKind::Created));
    // Watches need a session.
    let plain = c.client()?;
    assert!(matches!(
        plain.add_watch(WatchSpec::new("/", WatchKind::Persistent)).await,
        Err(ClientError::Server(corral_client::ServerError::NoSession))
    ));
    Ok(())
}

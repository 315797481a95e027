//! Sessions against real processes: ephemerals go when their client dies and stay while it
//! lives (through a leader failover and a move to another node); sessions expire only when no
//! node hears from them; sequential creates stay unique when replies are lost and resent.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use corral_client::{ClientError, Consistency, CreateMode, ServerError};
use corral_tests::{eventually, Cluster, NodeOpts};

const TIMEOUT_MS: u64 = 2_000;

fn ephemeral() -> CreateMode {
    CreateMode { ephemeral: true, ..CreateMode::default() }
}

async fn exists(c: &Cluster, path: &str) -> bool {
    matches!(c.client().unwrap().exists(path, Consistency::Linearizable).await, Ok(Some(_)))
}

/// Assert `path` exists at every check during `span` (time must pass for expiry to happen).
async fn stays(c: &Cluster, path: &str, span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        assert!(exists(c, path).await, "{path} vanished while its session was alive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ephemeral_goes_within_timeout_plus_1s_of_its_client_being_killed() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let mut holder = c
        .cli()?
        .args(["create", "/held", "x", "--ephemeral", "--hold", "--session-timeout", &TIMEOUT_MS.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    eventually(Duration::from_secs(10), "the ephemeral to appear", || exists(&c, "/held")).await?;
    holder.kill()?;
    holder.wait()?;
    let killed = Instant::now();
    eventually(Duration::from_millis(TIMEOUT_MS + 3_000), "the ephemeral to go", || async {
        !exists(&c, "/held").await
    })
    .await?;
    let took = killed.elapsed();
    eprintln!("ephemeral gone {took:?} after kill -9 of its client (timeout {TIMEOUT_MS} ms)");
    assert!(took <= Duration::from_millis(TIMEOUT_MS + 1_000), "took {took:?}");
    assert!(took >= Duration::from_millis(TIMEOUT_MS / 2), "expired early: {took:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ephemerals_survive_a_leader_failover_and_the_client_moving_nodes() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    let sid = client.start_session(TIMEOUT_MS).await?;
    client.create_with("/mine", b"", ephemeral()).await?;

    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    c.kill(leader);
    c.wait_leader(Duration::from_secs(10)).await?;
    stays(&c, "/mine", Duration::from_millis(TIMEOUT_MS * 2)).await;

    // Kill the node the client is connected to: it moves, with its session.
    let at = client.current_endpoint().await.to_string();
    let id = c.ids().into_iter().find(|&i| c.addr(i) == at && c.pid(i).is_some());
    if let Some(id) = id {
        c.kill(id);
    }
    c.restart(leader).await?;
    c.wait_leader(Duration::from_secs(10)).await?;
    stays(&c, "/mine", Duration::from_millis(TIMEOUT_MS * 2)).await;
    assert_eq!(client.session_id(), Some(sid), "the session changed");
    assert_ne!(client.current_endpoint().await.to_string(), at, "the client did not move");
    // The session still works for writes.
    client.create_with("/mine2", b"", ephemeral()).await?;
    client.close_session().await?;
    assert!(!exists(&c, "/mine").await && !exists(&c, "/mine2").await, "close did not remove ephemerals");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_session_expires_even_across_a_leader_change() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.start_session(TIMEOUT_MS).await?;
    client.create_with("/quiet", b"", ephemeral()).await?;
    drop(client); // no more heartbeats
    let silent = Instant::now();
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    c.kill(leader);
    // The new leader starts the clock afresh, so expiry comes within two timeouts.
    eventually(Duration::from_millis(2 * TIMEOUT_MS + 3_000), "the silent session to expire", || async {
        !exists(&c, "/quiet").await
    })
    .await?;
    assert!(silent.elapsed() >= Duration::from_millis(TIMEOUT_MS), "expired before its timeout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequential_creates_stay_unique_through_a_leader_kill_and_resends() -> anyhow::Result<()> {
    const CLIENTS: usize = 16;
    const EACH: usize = 25;
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.create("/seq", b"").await?;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = c.client()?;
        tasks.push(tokio::spawn(async move {
            client.start_session(10_000).await?;
            let mut mine = Vec::new();
            while mine.len() < EACH {
                let mode = CreateMode { sequential: true, ..CreateMode::default() };
                match client.create_with("/seq/n-", b"", mode).await {
                    Ok((path, _)) => mine.push(path),
                    // Resending is the library's job; only a reply that never came ends here.
                    Err(ClientError::Timeout(_)) | Err(ClientError::Server(ServerError::NotLeader { .. })) => {}
                    Err(e) => return Err(anyhow::anyhow!(e)),
                }
            }
            Ok::<_, anyhow::Error>(mine)
        }));
    }
    let admin = c.client()?;
    eventually(Duration::from_secs(30), "some creates", || async {
        admin.children("/seq", Consistency::Linearizable).await.map(|v| v.len() >= 100).unwrap_or(false)
    })
    .await?;
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    c.kill(leader);

    let mut got = Vec::new();
    for t in tasks {
        let mine = t.await??;
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "one client's names are not increasing");
        got.extend(mine);
    }
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), CLIENTS * EACH, "two creates got the same name");
    let children = admin.children("/seq", Consistency::Linearizable).await?;
    assert_eq!(children.len(), CLIENTS * EACH, "a resent create made a duplicate node");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_and_container_nodes_go_when_they_should() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    let created = Instant::now();
    client.create_with("/ttl", b"", CreateMode { ttl_ms: Some(500), ..CreateMode::default() }).await?;
    client.create_with("/box", b"", CreateMode { container: true, ..CreateMode::default() }).await?;
    client.create("/box/a", b"").await?;
    client.create("/box/b", b"").await?;
    eventually(Duration::from_secs(5), "the TTL node to go", || async { !exists(&c, "/ttl").await }).await?;
    assert!(created.elapsed() >= Duration::from_millis(500), "a TTL node went early");
    client.delete("/box/a", None).await?;
    assert!(exists(&c, "/box").await, "a container with a child went");
    client.delete("/box/b", None).await?;
    assert!(!exists(&c, "/box").await, "an emptied container stayed");
    Ok(())
}

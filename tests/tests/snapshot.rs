//! A node that was down while the log was compacted catches up through a snapshot.

use std::time::Duration;

use corral_client::Consistency;
use corral_tests::{Cluster, NodeOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_down_during_compaction_catches_up_through_a_snapshot() -> anyhow::Result<()> {
    let opts = NodeOpts {
        snapshot_every: Some(50),
        keep_logs: Some(5),
        wal_segment_bytes: Some(16 * 1024),
        ..NodeOpts::default()
    };
    let mut c = Cluster::start(3, opts).await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let lagger = c.ids().into_iter().find(|&id| id != leader).expect("a follower");
    let down_at = c.status(lagger).await?.last_log_index;
    c.kill(lagger);

    let client = c.client_on(leader)?;
    for i in 0..300 {
        client.create(&format!("/s{i:04}"), format!("v{i}").as_bytes()).await?;
    }
    let st = c.status(leader).await?;
    assert!(
        st.snapshot_index > down_at + 5,
        "the leader should have compacted past the lagger's log: snapshot {} vs lagger {down_at}",
        st.snapshot_index
    );

    c.restart(lagger).await?;
    c.wait_applied(lagger, st.applied_index, Duration::from_secs(30)).await?;
    let lst = c.status(lagger).await?;
    assert!(lst.snapshot_index > down_at, "the lagger did not install a snapshot");
    let log = std::fs::read_to_string(c.log_path(lagger))?;
    assert!(log.contains("installed snapshot"), "no snapshot install in the lagger's log");
    let on_lagger = c.client_on(lagger)?;
    for i in 0..300 {
        let (data, _) = on_lagger.get_with(&format!("/s{i:04}"), Consistency::Serializable).await?;
        assert_eq!(data, format!("v{i}").as_bytes());
    }
    Ok(())
}

/// The log is compacted by its bytes too: large values make each node snapshot long before
/// `snapshot_every` entries, and purge what it keeps behind the snapshot down to
/// `keep_log_bytes`, so that the log held in memory (and its WAL) stays bounded. One key is
/// overwritten, so the state (and its snapshot) stays one value small: a node may otherwise let
/// its log grow to the state's size before a snapshot, by design.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_values_are_compacted_by_bytes_long_before_the_entry_count() -> anyhow::Result<()> {
    const VALUE: usize = 32 * 1024;
    const WRITES: usize = 96;
    let opts = NodeOpts {
        // Far above the entries written: only the byte budgets can cause a snapshot or a purge.
        snapshot_every: Some(100_000),
        keep_logs: Some(100_000),
        snapshot_log_bytes: Some(256 * 1024),
        keep_log_bytes: Some(64 * 1024),
        wal_segment_bytes: Some(64 * 1024),
        ..NodeOpts::default()
    };
    let c = Cluster::start(3, opts).await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let client = c.client_on(leader)?;
    client.create("/big", b"").await?;
    for i in 0..WRITES {
        client.set("/big", &vec![i as u8; VALUE], None).await?;
    }
    let wal_bytes = |id: u64| -> u64 {
        std::fs::read_dir(c.wal_dir(id))
            .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(u64::MAX)
    };
    // The budgets (320 KB), an entry in flight, the WAL's partly used segments and the zeros
    // it writes ahead of its records. Everything written is 3 MB, 6 MB of WAL without the
    // budgets.
    let bound = 1536 * 1024;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for id in c.ids() {
        loop {
            let st = c.status(id).await?;
            let wal = wal_bytes(id);
            if st.snapshot_index > 0 && wal < bound {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("node {id}: snapshot at {}, WAL {wal} bytes (bound {bound})", st.snapshot_index);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (data, _) = client.get_with("/big", Consistency::Linearizable).await?;
    assert_eq!(data, vec![(WRITES - 1) as u8; VALUE]);
    Ok(())
}

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

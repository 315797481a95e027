//! Read-your-writes and monotonic reads whichever node answers: a node that is behind waits
//! until it has applied what the client has already seen, even for a `serializable` read.

use std::time::Duration;

use corral_client::{Client, Consistency};
use corral_tests::{Cluster, NodeOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_behind_waits_for_what_the_client_has_seen() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    let lagger = c.ids().into_iter().find(|&i| i != leader).expect("a follower");
    let writer = c.client_on(leader)?;
    writer.create("/x", b"old").await?;
    // A reader connected to the lagging node before it falls behind.
    let reader = Client::new(&c.client_cfg.pinned(&c.addr(lagger)))?;
    assert_eq!(reader.get_with("/x", Consistency::Serializable).await?.0, b"old");

    for round in 0..5 {
        c.pause(lagger, true);
        let value = format!("v{round}");
        writer.set("/x", value.as_bytes(), None).await?; // committed without the lagger
        reader.observe(writer.seen_index()); // the token travels, e.g. with a message
        c.pause(lagger, false);
        let (data, _) = reader.get_with("/x", Consistency::Serializable).await?;
        assert_eq!(data, value.as_bytes(), "round {round}: the lagging node answered from the past");
    }
    c.kill(leader);
    Ok(())
}

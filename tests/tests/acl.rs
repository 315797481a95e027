//! ACLs against real processes: identities come from client certificates; an identity
//! without a permission gets a permission error and changes nothing; a watcher gets no event
//! for a node it may not read, checked when the watch fires (so a revoke takes effect).

use std::time::Duration;

use corral_client::{acl, ClientError, EventKind, ServerError, WatchKind, WatchSpec};
use corral_tests::{Cluster, NodeOpts};

fn denied<T: std::fmt::Debug>(r: Result<T, ClientError>) -> bool {
    matches!(r, Err(ClientError::Server(ServerError::NoAuth { .. })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_get_what_their_acls_allow_and_watchers_see_only_what_they_may_read() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?; // "admin" is in every node's [acl] admins
    let alice = c.client_as("alice")?;
    admin.create("/secret", b"s0").await?;
    admin.create("/shared", b"h0").await?;
    admin.create("/open", b"o0").await?;
    admin.set_acl("/secret", acl::parse("admin:rwcda").map_err(anyhow::Error::msg)?).await?;
    admin.set_acl("/shared", acl::parse("admin:rwcda,alice:r").map_err(anyhow::Error::msg)?).await?;

    assert!(denied(alice.set("/shared", b"x", None).await), "alice may not write /shared");
    assert!(denied(alice.get("/secret").await), "alice may not read /secret");
    assert!(denied(alice.children("/secret", corral_client::Consistency::Linearizable).await));
    assert!(denied(alice.create("/secret/x", b"").await), "alice may not create under /secret");
    assert!(denied(alice.set_acl("/shared", acl::parse("*:rwcda").map_err(anyhow::Error::msg)?).await));
    assert_eq!(alice.get("/shared").await?.0, b"h0", "alice may read /shared");
    assert_eq!(admin.get("/shared").await?.0, b"h0", "nothing was changed");
    assert_eq!(acl::format(&alice.get_acl("/shared").await?), "admin:rwcda,alice:r");
    alice.set("/open", b"o1", None).await?; // the root's default (open) was inherited

    // Alice watches everything.
    alice.start_session(5_000).await?;
    let mut events = alice.events()?;
    alice.add_watch(WatchSpec::new("/", WatchKind::PersistentRecursive)).await?;
    admin.set("/secret", b"s1", None).await?; // not for alice
    admin.set("/shared", b"h1", None).await?; // alice may read it
    admin.set_acl("/shared", acl::parse("admin:rwcda").map_err(anyhow::Error::msg)?).await?;
    admin.set("/shared", b"h2", None).await?; // revoked: not for alice any more
    admin.set("/open", b"o2", None).await?; // for alice: ends the sequence
    let mut seen = Vec::new();
    while seen.last().map(|e: &corral_client::Event| e.path.as_str()) != Some("/open") {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?.expect("open")?;
        seen.push(ev);
    }
    let got: Vec<(&str, EventKind)> = seen.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(got, vec![("/shared", EventKind::DataChanged), ("/open", EventKind::DataChanged)], "{seen:?}");
    Ok(())
}

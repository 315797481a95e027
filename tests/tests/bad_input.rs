//! Bad input of every kind gets a clear error, changes nothing, and the node keeps running.

use corral_client::{ClientError, Consistency, ServerError};
use corral_proto::{frame, Error, Request, RequestFrame, Response};
use corral_tests::{raw, Cluster, NodeOpts};

fn bad_request(r: &Response) -> bool {
    matches!(r, Response::Err(Error::BadRequest { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_oversized_values_and_invalid_paths_change_nothing() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { max_data_bytes: Some(1024), ..NodeOpts::default() }).await?;
    let client = c.client()?;
    client.create("/keep", b"original").await?;
    let before = client.children("/", Consistency::Linearizable).await?;

    let conn = raw::connect(&c.client_cfg, &c.addr(2), corral_proto::ALPN_CLIENT).await?;
    let good = frame::encode(&RequestFrame { id: 1, done_below: 0, min_index: 0, body: Request::Status })?;
    // Truncated: the length prefix promises more than is sent.
    assert!(bad_request(&raw::exchange(&conn, &good[..good.len() - 3]).await?));
    // A length prefix far over the limit.
    assert!(bad_request(&raw::exchange(&conn, &u32::MAX.to_be_bytes()).await?));
    // Wrong version byte.
    let mut v = good.clone();
    v[4] = 77;
    assert!(bad_request(&raw::exchange(&conn, &v).await?));
    // Garbage body, and an unknown command (a variant tag this server does not know).
    let mut garbage = 40u32.to_be_bytes().to_vec();
    garbage.push(frame::FRAME_VERSION);
    garbage.extend_from_slice(&[0xEE; 39]);
    assert!(bad_request(&raw::exchange(&conn, &garbage).await?));
    // id 1, done_below 0, min_index 0, then variant 99.
    let unknown = vec![0, 0, 0, 5, frame::FRAME_VERSION, 1, 0, 0, 99];
    assert!(bad_request(&raw::exchange(&conn, &unknown).await?));
    // The same connection still works.
    assert!(matches!(raw::exchange(&conn, &good).await?, Response::Ok(_)));

    // Oversized values.
    let big = vec![7u8; 1025];
    for res in [client.create("/big", &big).await.map(|_| ()), client.set("/keep", &big, None).await.map(|_| ())] {
        assert!(
            matches!(res, Err(ClientError::Server(ServerError::TooLarge { size: 1025, max: 1024, .. }))),
            "{res:?}"
        );
    }
    // Invalid paths.
    for p in ["", "rel", "/a/", "//", "/a//b", "/nul\0", "/./x", "/.."] {
        let res = client.create(p, b"x").await;
        assert!(matches!(res, Err(ClientError::Server(ServerError::InvalidPath { .. }))), "{p:?}: {res:?}");
    }
    assert_eq!(client.get("/keep").await?.0, b"original");
    assert_eq!(client.children("/", Consistency::Linearizable).await?, before);
    // Every node is still up and agrees on a leader.
    c.wait_leader(std::time::Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_parent_refuses_children_with_a_clear_error() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { max_children: Some(2), ..NodeOpts::default() }).await?;
    let client = c.client()?;
    client.create("/p", b"").await?;
    client.create("/p/a", b"").await?;
    client.create("/p/b", b"").await?;
    let res = client.create("/p/c", b"").await;
    assert!(matches!(res, Err(ClientError::Server(ServerError::LimitReached { limit: 2, .. }))), "{res:?}");
    assert_eq!(client.children("/p", Consistency::Linearizable).await?.len(), 2);
    Ok(())
}

//! The multiplexed request stream: replies out of order, requests given up on, bad frames,
//! and clients that send a stream per request alongside.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_client::ClientConfig;
use corral_proto::mux::{MuxDown, MuxOp, MuxUp, MUX_VERSION};
use corral_proto::{frame, Consistency, Error, Reply, Request, RequestFrame, Response, ResponseFrame};
use corral_tests::{raw, Cluster, NodeOpts};

/// A multiplexed stream driven by hand.
struct RawMux {
    tx: quinn::SendStream,
    rx: quinn::RecvStream,
}

impl RawMux {
    /// Open one with `version`; returns it and the node's answer to the hello.
    async fn open(conn: &quinn::Connection, version: u32) -> Result<(RawMux, Response)> {
        let (mut tx, mut rx) = conn.open_bi().await?;
        let hello = RequestFrame { id: 0, done_below: 0, min_index: 0, body: Request::Multiplex { version } };
        frame::write(&mut tx, &hello).await?;
        let answer = tokio::time::timeout(Duration::from_secs(5), frame::read::<ResponseFrame, _>(&mut rx))
            .await
            .context("no answer to the hello")??;
        Ok((RawMux { tx, rx }, answer.response))
    }

    async fn request(&mut self, tag: u64, min_index: u64, body: Request) -> Result<()> {
        let frame = RequestFrame { id: tag, done_below: 0, min_index, body };
        self.raw(&frame::encode(&MuxUp { tag, op: MuxOp::Request(frame) })?).await
    }

    async fn cancel(&mut self, tag: u64) -> Result<()> {
        self.raw(&frame::encode(&MuxUp::<RequestFrame> { tag, op: MuxOp::Cancel })?).await
    }

    async fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.tx.write_all(bytes).await?)
    }

    /// The next reply, or `None` once the node has ended its half.
    async fn next(&mut self) -> Result<Option<MuxDown<ResponseFrame>>> {
        match tokio::time::timeout(Duration::from_secs(8), frame::read(&mut self.rx)).await.context("no reply")? {
            Ok(down) => Ok(Some(down)),
            Err(frame::FrameError::Truncated) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Finish our half and collect every reply until the node ends its half.
    async fn finish(mut self) -> Result<Vec<MuxDown<ResponseFrame>>> {
        self.tx.finish()?;
        let mut rest = Vec::new();
        while let Some(down) = self.next().await? {
            rest.push(down);
        }
        Ok(rest)
    }
}

fn get(path: &str) -> Request {
    Request::Get { path: path.into(), consistency: Consistency::Serializable, watch: false }
}

fn data(down: &MuxDown<ResponseFrame>) -> Option<&[u8]> {
    match &down.frame.response {
        Response::Ok(Reply::Data { data, .. }) => Some(data),
        _ => None,
    }
}

fn bad_request(down: &MuxDown<ResponseFrame>) -> bool {
    matches!(down.frame.response, Response::Err(Error::BadRequest { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_come_as_requests_finish_and_a_cancelled_request_gets_none() -> Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.create("/a", b"A").await?;
    client.create("/b", b"B").await?;
    let node = c.client_on(2)?;
    node.sync().await?;
    // A read that waits for an index the log is far from: it runs until the node's request
    // timeout (5 s) unless cancelled.
    let far = node.status().await?.applied_index + 1_000_000;

    let conn = raw::connect(&c.client_cfg, &c.addr(2), corral_proto::ALPN_CLIENT).await?;
    let (mut mux, hello) = RawMux::open(&conn, MUX_VERSION).await?;
    assert!(matches!(hello, Response::Ok(_)), "{hello:?}");
    mux.request(1, far, get("/a")).await?;
    mux.request(2, 0, get("/b")).await?;
    let first = mux.next().await?.context("stream ended")?;
    assert_eq!((first.tag, data(&first)), (2, Some(&b"B"[..])), "the quick request is answered first");

    mux.cancel(1).await?;
    mux.cancel(99).await?; // unknown: ignored
    mux.request(3, 0, get("/a")).await?;
    let next = mux.next().await?.context("stream ended")?;
    assert_eq!((next.tag, data(&next)), (3, Some(&b"A"[..])));
    // Our half finished, the node answers what is still in flight and then ends its half:
    // had the cancel not stopped request 1, its answer (at the node's timeout) would be here.
    let rest = mux.finish().await?;
    assert!(rest.is_empty(), "{rest:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_on_a_multiplexed_stream_get_errors_and_change_nothing() -> Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.create("/keep", b"original").await?;
    let conn = raw::connect(&c.client_cfg, &c.addr(1), corral_proto::ALPN_CLIENT).await?;

    // A version this node does not speak: refused, and the stream ends.
    let (mut other, hello) = RawMux::open(&conn, MUX_VERSION + 1).await?;
    assert!(matches!(&hello, Response::Err(Error::BadRequest { reason }) if reason.contains("version")), "{hello:?}");
    assert!(other.next().await?.is_none(), "a refused stream ends");

    let (mut mux, _) = RawMux::open(&conn, MUX_VERSION).await?;
    // A request with a readable tag but garbage after it: that tag gets a bad-request error.
    let mut garbage = vec![0, 0, 0, 12, frame::FRAME_VERSION, 5, 0];
    garbage.extend_from_slice(&[0xEE; 9]);
    mux.raw(&garbage).await?;
    let down = mux.next().await?.context("stream ended")?;
    assert!(down.tag == 5 && bad_request(&down), "{down:?}");
    // A frame of another version: its tag is unreadable, so it is dropped unanswered.
    let mut v = frame::encode(&MuxUp {
        tag: 6,
        op: MuxOp::Request(RequestFrame { id: 6, done_below: 0, min_index: 0, body: Request::Status }),
    })?;
    v[4] = 77;
    mux.raw(&v).await?;
    // A second hello inside the stream, and an event stream: each gets an error.
    mux.request(7, 0, Request::Multiplex { version: MUX_VERSION }).await?;
    let down = mux.next().await?.context("stream ended")?;
    assert!(down.tag == 7 && bad_request(&down), "{down:?}");
    mux.request(8, 0, Request::Events { since: (0, 0), watches: vec![] }).await?;
    let down = mux.next().await?.context("stream ended")?;
    assert_eq!(down.tag, 8, "{down:?}");
    assert!(matches!(down.frame.response, Response::Err(_)), "{down:?}");
    // A tag reused while its request is in flight: the second gets an error, the first goes on.
    let far = c.client_on(1)?.status().await?.applied_index + 1_000_000;
    mux.request(9, far, get("/keep")).await?;
    mux.request(9, 0, get("/keep")).await?;
    let down = mux.next().await?.context("stream ended")?;
    assert!(down.tag == 9 && bad_request(&down), "{down:?}");
    mux.cancel(9).await?;
    // The stream, the connection and the data are as they were.
    mux.request(10, 0, get("/keep")).await?;
    let down = mux.next().await?.context("stream ended")?;
    assert_eq!((down.tag, data(&down)), (10, Some(&b"original"[..])));
    assert!(mux.finish().await?.is_empty());
    assert_eq!(client.get("/keep").await?.0, b"original");
    c.wait_leader(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_on_requests_gets_the_right_reply_to_each_later_one() -> Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.start_session(10_000).await?;
    for i in 0..20u32 {
        client.create(&format!("/k{i}"), &i.to_be_bytes()).await?;
    }
    // Long polls given up on after a moment (each tells the node to stop), among reads
    // whose replies must each go to its own request.
    for round in 0..5 {
        let gave_up = tokio::time::timeout(Duration::from_millis(30), client.notifications((0, 0), 3_000)).await;
        if gave_up.is_ok() {
            bail!("round {round}: a long poll with no notifications answered early: {gave_up:?}");
        }
        let reads = (0..20u32).map(|i| {
            let client = client.clone();
            async move { (i, client.get(&format!("/k{i}")).await) }
        });
        for (i, got) in futures_join_all(reads).await {
            assert_eq!(got?.0, i.to_be_bytes(), "round {round}, /k{i}");
        }
    }
    // A client that sends a stream per request works alongside.
    let streams = corral_client::Client::new(&ClientConfig { multiplex: false, ..c.client_cfg.clone() })?;
    streams.set("/k3", b"three", None).await?;
    assert_eq!(client.get("/k3").await?.0, b"three");
    Ok(())
}

/// Run every future at once; their results in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

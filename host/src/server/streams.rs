//! The one shape both connection kinds share: each bidirectional stream carries one request
//! frame and one response frame, unless its first frame opens a multiplexed stream
//! (`super::mux`). A bad frame is the handler's to answer (with an error reply on that
//! stream); the connection and the node go on.

use std::future::Future;

use anyhow::Result;
use corral_proto::frame::{self, FrameError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::stream_order::{StreamOrder, Turn};

/// What a request gets back: one frame, or a stream of them (an event stream) that ends when
/// the sender is dropped or the client goes away.
pub enum Outcome<Resp> {
    One(Resp),
    Many(tokio::sync::mpsc::Receiver<Resp>),
}

/// What a stream's first frame may ask for besides its own answer.
pub trait Opening<Resp>: Sized {
    /// The version of multiplexed stream this frame opens, if it opens one.
    fn opens_mux(&self) -> Option<u32>;
    /// The answer accepting a multiplexed stream (`Ok`), or refusing it or one of its
    /// requests, with the reason.
    fn mux_answer(outcome: Result<(), String>) -> Resp;
}

/// Serve streams on `conn` until it closes or `stop` fires; each request runs on its own task.
/// With `ordered`, each gets its stream's [`Turn`] (to drop at once unless the request must
/// keep its place).
pub async fn serve<Req, Resp, F, Fut>(
    conn: &quinn::Connection,
    stop: &CancellationToken,
    ordered: bool,
    handle: F,
) -> Result<()>
where
    Req: DeserializeOwned + Opening<Resp> + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(Option<Turn>, Result<Req, FrameError>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome<Resp>> + Send + 'static,
{
    let order = ordered.then(StreamOrder::new);
    loop {
        let (mut tx, mut rx) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            s = conn.accept_bi() => s?,
        };
        // Taken as the stream is accepted, in the order the peer opened its streams; the task
        // below may run after a later stream's.
        let turn = order.as_ref().map(|o| o.take());
        let handle = handle.clone();
        tokio::spawn(async move {
            // A caller that gave up (timed out, went away) stops the stream: stop working for
            // it too, so that its stream slot is freed. Otherwise a handler that waits (for a
            // leader, a quorum, or a response the test fault layer drops) holds a slot for
            // good, and once the peer's stream limit is used up every request on the
            // connection times out (found by the nemesis, seed 1: a node could not forward to
            // the leader for a minute after a partition healed).
            let first = frame::read::<Req, _>(&mut rx).await;
            if let Some(version) = first.as_ref().ok().and_then(Opening::opens_mux) {
                return super::mux::serve(version, tx, rx, handle).await;
            }
            frame::look_for_end(&mut rx);
            // Boxed, so the task stays small to spawn (see `mux::serve`).
            let work = Box::pin(handle(turn, first));
            let outcome = tokio::select! {
                o = work => o,
                _ = tx.stopped() => return,
            };
            match outcome {
                Outcome::One(resp) => {
                    if let Err(e) = frame::write(&mut tx, &resp).await {
                        tracing::debug!(error = %e, "reply not delivered");
                    }
                }
                Outcome::Many(mut frames) => {
                    while let Some(resp) = frames.recv().await {
                        if frame::write(&mut tx, &resp).await.is_err() {
                            break; // the client went away; dropping `frames` tells the producer
                        }
                    }
                }
            }
            let _ = tx.finish();
        });
    }
}

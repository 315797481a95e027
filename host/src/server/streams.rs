//! The one shape both connection kinds share: each bidirectional stream carries one request
//! frame and one response frame. A bad frame is the handler's to answer (with an error reply
//! on that stream); the connection and the node go on.

use std::future::Future;

use anyhow::Result;
use corral_proto::frame::{self, FrameError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// What a request gets back: one frame, or a stream of them (an event stream) that ends when
/// the sender is dropped or the client goes away.
pub enum Outcome<Resp> {
    One(Resp),
    Many(tokio::sync::mpsc::Receiver<Resp>),
}

/// Serve streams on `conn` until it closes or `stop` fires; each request runs on its own task.
pub async fn serve<Req, Resp, F, Fut>(conn: &quinn::Connection, stop: &CancellationToken, handle: F) -> Result<()>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(Result<Req, FrameError>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome<Resp>> + Send + 'static,
{
    loop {
        let (mut tx, mut rx) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            s = conn.accept_bi() => s?,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            match handle(frame::read::<Req, _>(&mut rx).await).await {
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

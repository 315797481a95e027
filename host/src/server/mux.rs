//! The node's side of a multiplexed stream (`corral_proto::mux`): many requests on one
//! stream, each answered with its tag as soon as it is done, in any order.
//!
//! It keeps what a stream per request gave for free: a request its client gave up on (a
//! `Cancel`, or the whole stream stopped or reset) stops its work here, as a stopped stream
//! does; and at most `MUX_MAX_IN_FLIGHT` requests run at once, as the connection's stream
//! limit bounded them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use corral_proto::frame::{self, FrameError};
use corral_proto::mux::{MuxDown, MuxOp, MuxUp, MUX_MAX_IN_FLIGHT, MUX_VERSION};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::stream_order::Turn;
use super::streams::{Opening, Outcome};

/// The requests in flight, by tag, each with its serial number: a request that ends removes
/// its own entry, never that of a later request the client gave the same tag.
type InFlight = Arc<Mutex<HashMap<u64, (u64, CancellationToken)>>>;

/// The replies' half of the stream: each reply is written whole by the task that made it.
type Replies = Arc<tokio::sync::Mutex<quinn::SendStream>>;

/// Serve a stream whose first frame asked to be multiplexed with `version`, until the client
/// finishes it (what it sent is still answered), or stops or resets it (what is in flight
/// stops).
pub async fn serve<Req, Resp, F, Fut>(version: u32, tx: quinn::SendStream, mut rx: quinn::RecvStream, handle: F)
where
    Req: DeserializeOwned + Opening<Resp> + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(Option<Turn>, Result<Req, FrameError>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome<Resp>> + Send + 'static,
{
    let stopped = tx.stopped();
    tokio::pin!(stopped);
    let tx: Replies = Arc::new(tokio::sync::Mutex::new(tx));
    if version != MUX_VERSION {
        let why = format!("this node speaks version {MUX_VERSION} of the multiplexed stream, not {version}");
        let mut tx = tx.lock().await;
        let _ = frame::write(&mut *tx, &Req::mux_answer(Err(why))).await;
        let _ = tx.finish();
        return;
    }
    if frame::write(&mut *tx.lock().await, &Req::mux_answer(Ok(()))).await.is_err() {
        return;
    }
    // Cancelled when nobody will read the replies any more: every request in flight stops.
    let gone = CancellationToken::new();
    let in_flight: InFlight = Default::default();
    let slots = Arc::new(Semaphore::new(MUX_MAX_IN_FLIGHT));
    let mut serial = 0u64;
    loop {
        let raw = tokio::select! {
            r = frame::read_raw(&mut rx) => r,
            _ = &mut stopped => break gone.cancel(),
            _ = gone.cancelled() => break,
        };
        let (tag, req) = match raw.map(|raw| (frame::decode_body::<MuxUp<Req>>(&raw), raw)) {
            Ok((Ok(MuxUp { tag, op: MuxOp::Request(req) }), _)) => (tag, Ok(req)),
            Ok((Ok(MuxUp { tag, op: MuxOp::Cancel }), _)) => {
                if let Some((_, token)) = lock(&in_flight).remove(&tag) {
                    token.cancel();
                }
                continue;
            }
            // The frame's bounds were sound, so the stream goes on: a malformed request whose
            // tag can be read gets the answer a malformed request gets; one whose tag cannot
            // be read cannot be answered.
            Ok((Err(e), raw)) => match frame::decode_prefix::<u64>(&raw) {
                Ok(tag) => (tag, Err(e)),
                Err(_) => {
                    tracing::debug!(error = %e, "untagged frame on a multiplexed stream dropped");
                    continue;
                }
            },
            // The client finished its side: what it sent is still answered.
            Err(FrameError::Truncated) => break,
            // Reset, connection lost, or a frame this stream cannot be read past.
            Err(e) => {
                tracing::debug!(error = %e, "multiplexed stream ended");
                break gone.cancel();
            }
        };
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = &mut stopped => break gone.cancel(),
            _ = gone.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        if lock(&in_flight).contains_key(&tag) {
            let why = format!("tag {tag} is already in flight on this stream");
            tokio::spawn(reply(tx.clone(), gone.clone(), tag, Req::mux_answer(Err(why))));
            continue;
        }
        serial += 1;
        let mine = serial;
        let token = gone.child_token();
        lock(&in_flight).insert(tag, (mine, token.clone()));
        let (handle, tx, gone, in_flight) = (handle.clone(), tx.clone(), gone.clone(), in_flight.clone());
        tokio::spawn(async move {
            let _slot = slot;
            // Boxed: the handler's future is over 5 KB (every request kind's path), and the
            // task around it was copied whole on each spawn and again as it ended (memcpy was
            // 2% of the nodes' CPU at write x64).
            let outcome = tokio::select! {
                o = Box::pin(handle(None, req)) => Some(o),
                _ = token.cancelled() => None,
            };
            {
                let mut in_flight = lock(&in_flight);
                if in_flight.get(&tag).is_some_and(|(serial, _)| *serial == mine) {
                    in_flight.remove(&tag);
                }
            }
            let resp = match outcome {
                None => return,
                Some(Outcome::One(resp)) => resp,
                Some(Outcome::Many(_)) => Req::mux_answer(Err("an event stream needs a stream of its own".into())),
            };
            reply(tx, gone, tag, resp).await;
        });
    }
}

/// Write one tagged reply whole; a stream that cannot take it any more ends every request.
async fn reply<Resp: Serialize>(tx: Replies, gone: CancellationToken, tag: u64, resp: Resp) {
    let bytes = match frame::encode(&MuxDown { tag, frame: resp }) {
        Ok(b) => b,
        Err(e) => return tracing::warn!(error = %e, tag, "reply not encodable"),
    };
    if let Err(e) = tx.lock().await.write_all(&bytes).await {
        tracing::debug!(error = %e, "reply not delivered");
        gone.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! The client's side of a multiplexed stream (`corral_proto::mux`): every request of a
//! connection on one stream, each reply handed to the request with its tag.
//!
//! A request given up on (its future dropped: a timeout, a `select!`) tells the node with a
//! `Cancel`, as dropping its own stream would, and a reply that comes anyway is dropped. A
//! request dropped halfway through writing its frame has the frame finished by a task of its
//! own: the stream never carries a torn frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use corral_proto::frame;
use corral_proto::mux::{MuxDown, MuxOp, MuxUp, MUX_VERSION};
use corral_proto::{Request, RequestFrame, Response, ResponseFrame};
use tokio::sync::{oneshot, OwnedMutexGuard};

use crate::client::Attempt;

type Writer = Arc<tokio::sync::Mutex<quinn::SendStream>>;

/// One multiplexed stream on one connection.
pub(crate) struct Mux {
    conn_id: usize,
    tx: Writer,
    shared: Arc<Shared>,
    next_tag: AtomicU64,
    /// Dropped with the `Mux`: stops the reader task, whose half of the stream would
    /// otherwise keep the connection open.
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct Shared {
    /// The requests waiting for their reply, by tag.
    waiting: Mutex<HashMap<u64, oneshot::Sender<ResponseFrame>>>,
    /// The node's half has ended (or broke): no reply comes any more, requests go on a new
    /// stream.
    ended: AtomicBool,
}

impl Mux {
    /// Open a multiplexed stream on `conn`. `Ok(None)`: the node does not speak this version
    /// of it (an older node), so requests go a stream each.
    pub(crate) async fn open(conn: &quinn::Connection) -> Result<Option<Arc<Mux>>, Attempt> {
        let not_sent = |e: String| Attempt::NotSent(format!("opening a multiplexed stream: {e}"));
        let (mut tx, mut rx) = conn.open_bi().await.map_err(|e| not_sent(e.to_string()))?;
        let hello =
            RequestFrame { id: 0, done_below: 0, min_index: 0, body: Request::Multiplex { version: MUX_VERSION } };
        frame::write(&mut tx, &hello).await.map_err(|e| not_sent(e.to_string()))?;
        match frame::read::<ResponseFrame, _>(&mut rx).await {
            Ok(ResponseFrame { response: Response::Ok(_), .. }) => {}
            Ok(ResponseFrame { response: Response::Err(e), .. }) => {
                tracing::debug!(error = %e, "the node does not multiplex: a stream per request");
                return Ok(None);
            }
            Err(e) => return Err(not_sent(e.to_string())),
        }
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(read_replies(rx, shared.clone(), stopped));
        Ok(Some(Arc::new(Mux {
            conn_id: conn.stable_id(),
            tx: Arc::new(tokio::sync::Mutex::new(tx)),
            shared,
            next_tag: AtomicU64::new(1),
            _stop: stop,
        })))
    }

    /// Whether this stream still carries requests on `conn`.
    pub(crate) fn serves(&self, conn: &quinn::Connection) -> bool {
        self.conn_id == conn.stable_id() && !self.shared.ended.load(Ordering::SeqCst)
    }

    /// Send `req` and wait for its reply.
    pub(crate) async fn call(&self, req: &RequestFrame) -> Result<ResponseFrame, Attempt> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let bytes =
            frame::encode(&MuxUp { tag, op: MuxOp::Request(req) }).map_err(|e| Attempt::NotSent(e.to_string()))?;
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(tag, reply_tx);
        let mut waiter = Waiter { mux: self, tag, done: false };
        // After the insert: the reader marks the end before it empties the map, so either it
        // drops our sender (we see the channel closed) or we see the mark here.
        if self.shared.ended.load(Ordering::SeqCst) {
            waiter.done = true;
            return Err(Attempt::NotSent("the multiplexed stream ended".into()));
        }
        let sending = Sending { tx: Some(self.tx.clone().lock_owned().await), bytes, written: 0 };
        if let Err(e) = sending.run().await {
            waiter.done = true;
            return Err(Attempt::Lost(e.to_string()));
        }
        let reply = reply_rx.await.map_err(|_| Attempt::Lost("the multiplexed stream ended".into()));
        waiter.done = true;
        reply
    }
}

/// A request waiting for its reply; dropped before it came, it tells the node to stop.
struct Waiter<'a> {
    mux: &'a Mux,
    tag: u64,
    done: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.done || lock(&self.mux.shared.waiting).remove(&self.tag).is_none() {
            return;
        }
        let Ok(bytes) = frame::encode(&MuxUp::<RequestFrame> { tag: self.tag, op: MuxOp::Cancel }) else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let tx = self.mux.tx.clone();
            rt.spawn(async move { Sending { tx: Some(tx.lock_owned().await), bytes, written: 0 }.run().await });
        }
    }
}

/// One frame being written, holding the stream. Dropped half-written, it has a task of its
/// own write the rest.
struct Sending {
    tx: Option<OwnedMutexGuard<quinn::SendStream>>,
    bytes: Vec<u8>,
    written: usize,
}

impl Sending {
    async fn run(mut self) -> Result<(), quinn::WriteError> {
        let Some(tx) = self.tx.as_mut() else { return Ok(()) };
        while self.written < self.bytes.len() {
            // Cancel safe: a `write` dropped before it completes has written nothing.
            match tx.write(&self.bytes[self.written..]).await {
                Ok(n) => self.written += n,
                Err(e) => {
                    self.written = self.bytes.len();
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if self.written >= self.bytes.len() {
            return;
        }
        let Some(mut tx) = self.tx.take() else { return };
        let rest = self.bytes.split_off(self.written);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { tx.write_all(&rest).await });
            }
            // No runtime to finish it on: end the stream rather than leave a torn frame.
            Err(_) => {
                let _ = tx.reset(0u32.into());
            }
        }
    }
}

/// Hand each reply to the request with its tag, until the stream ends or the `Mux` goes.
async fn read_replies(mut rx: quinn::RecvStream, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    loop {
        let next = tokio::select! {
            f = frame::read::<MuxDown<ResponseFrame>, _>(&mut rx) => f,
            _ = &mut stop => break,
        };
        match next {
            // Nobody waits for a reply whose request was given up: it is dropped.
            Ok(MuxDown { tag, frame }) => {
                if let Some(waiter) = lock(&shared.waiting).remove(&tag) {
                    let _ = waiter.send(frame);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "the multiplexed stream ended");
                break;
            }
        }
    }
    shared.ended.store(true, Ordering::SeqCst);
    lock(&shared.waiting).clear();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

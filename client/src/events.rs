//! Watches and the session's event stream: the stream is kept open on whichever node the
//! client is connected to and resumed from the last event delivered after every reconnection,
//! so the application sees every event once, in order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use corral_proto::{
    frame, Consistency, Error as ServerError, Event, Reply, Request, RequestFrame, Response, ResponseFrame, Stat,
    WatchKind, WatchSpec,
};
use tokio::sync::mpsc;

use crate::client::{unexpected, Inner, RETRY_BACKOFF};
use crate::{Client, ClientError};

#[derive(Debug, Default)]
pub(crate) struct Watches {
    /// Each watch with the position it was set at.
    pub(crate) specs: Vec<(WatchSpec, (u64, u32))>,
    /// The position of the last event delivered.
    pub(crate) since: (u64, u32),
    /// Where events go; `None` until `events()` is called.
    pub(crate) tx: Option<mpsc::UnboundedSender<Result<Event, ServerError>>>,
}

impl Client {
    /// `get`, and watch the node's data (one-shot; needs a session; see [`Client::events`]).
    pub async fn get_watch(&self, path: &str) -> Result<(Vec<u8>, Stat), ClientError> {
        let req = Request::Get { path: path.into(), consistency: Consistency::Linearizable, watch: true };
        // The data's last change is exactly where the watch starts: nothing older can match.
        let at = |r: &Reply| match r {
            Reply::Data { stat, .. } => Some((stat.mzxid, u32::MAX)),
            _ => None,
        };
        match self.read_and_watch(req, WatchSpec::new(path, WatchKind::Data), at).await? {
            Reply::Data { data, stat } => Ok((data, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// `exists`, and watch the node being created, changed or deleted (one-shot).
    pub async fn exists_watch(&self, path: &str) -> Result<Option<Stat>, ClientError> {
        let req = Request::Exists { path: path.into(), consistency: Consistency::Linearizable, watch: true };
        let at = |r: &Reply| match r {
            Reply::Stat(Some(stat)) => Some((stat.mzxid, u32::MAX)),
            _ => None,
        };
        match self.read_and_watch(req, WatchSpec::new(path, WatchKind::Exists), at).await? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// `children`, and watch them (one-shot; needs a session).
    pub async fn children_watch(&self, path: &str) -> Result<Vec<String>, ClientError> {
        let req = Request::Children { path: path.into(), consistency: Consistency::Linearizable, watch: true };
        match self.read_and_watch(req, WatchSpec::new(path, WatchKind::Children), |_| None).await? {
            Reply::Children(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// Send a read that sets a watch and record the watch at the position `at` finds in the
    /// reply (else the stream position, a safe lower bound: nothing older can match).
    async fn read_and_watch(
        &self,
        req: Request,
        spec: WatchSpec,
        at: impl FnOnce(&Reply) -> Option<(u64, u32)>,
    ) -> Result<Reply, ClientError> {
        let _gate = self.inner.watch_gate.lock().await;
        let reply = self.request(req).await?;
        let pos = at(&reply).unwrap_or_else(|| self.inner.watches.lock().unwrap_or_else(|p| p.into_inner()).since);
        self.remember_watch(spec, pos);
        Ok(reply)
    }

    /// Add a watch (persistent ones stay until the session ends); events arrive on
    /// [`Client::events`].
    pub async fn add_watch(&self, spec: WatchSpec) -> Result<(), ClientError> {
        let _gate = self.inner.watch_gate.lock().await;
        match self.request(Request::AddWatch { spec: spec.clone() }).await? {
            Reply::Done { index } => {
                self.remember_watch(spec, (index, u32::MAX));
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    fn remember_watch(&self, spec: WatchSpec, at: (u64, u32)) {
        self.inner.watches.lock().unwrap_or_else(|p| p.into_inner()).specs.push((spec, at));
    }

    /// The session's events, in log order, each once, across reconnections to any node.
    /// `Err(ResyncNeeded)` means events were missed (the node no longer kept them): re-read.
    /// Call once; it needs a session.
    pub fn events(&self) -> Result<mpsc::UnboundedReceiver<Result<Event, ServerError>>, ClientError> {
        if self.session_id().is_none() {
            return Err(ClientError::Server(ServerError::NoSession));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut w = self.inner.watches.lock().unwrap_or_else(|p| p.into_inner());
            if w.tx.is_some() {
                return Err(ClientError::Config("events() was already called on this client".into()));
            }
            w.tx = Some(tx);
        }
        tokio::spawn(event_stream(Arc::downgrade(&self.inner)));
        Ok(rx)
    }
}

/// Keep the session's event stream open, on whichever node the client is connected to, and
/// resume it from the last event delivered after every reconnection.
pub(crate) async fn event_stream(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        if client.session_id().is_none() {
            return;
        }
        let conn = match client.connection().await {
            Ok(c) => c,
            Err(_) => {
                drop(client);
                tokio::time::sleep(RETRY_BACKOFF * 4).await;
                continue;
            }
        };
        let gate = client.inner.watch_gate.lock().await;
        let (since, watches) = {
            let w = client.inner.watches.lock().unwrap_or_else(|p| p.into_inner());
            (w.since, w.specs.clone())
        };
        let id = client.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let min_index = client.seen_index();
        let req = RequestFrame { id, done_below: 0, min_index, body: Request::Events { since, watches } };
        let Ok((mut tx, mut rx)) = conn.open_bi().await else { continue };
        let Ok(bytes) = frame::encode(&req) else { return };
        if tx.write_all(&bytes).await.is_err() {
            continue;
        }
        let _ = tx.finish();
        // Wait for the node to confirm the stream before letting new watches through.
        match frame::read::<ResponseFrame, _>(&mut rx).await.map(|f| f.response) {
            Ok(Response::Ok(Reply::Done { .. })) => {}
            Ok(Response::Err(e)) => {
                if stream_error(&mut client.inner.watches.lock().unwrap_or_else(|p| p.into_inner()), e) {
                    return;
                }
                continue;
            }
            _ => continue,
        }
        drop(gate);
        drop(client); // hold only the weak reference while waiting for events
        loop {
            let frame = frame::read::<ResponseFrame, _>(&mut rx).await.map(|f| f.response);
            let Some(inner) = weak.upgrade() else { return };
            let mut w = inner.watches.lock().unwrap_or_else(|p| p.into_inner());
            match frame {
                Ok(Response::Ok(Reply::Event(ev))) => {
                    if ev.pos() <= w.since {
                        continue; // already delivered (cannot happen with a correct server)
                    }
                    w.since = ev.pos();
                    w.specs.retain(|(s, at)| !(s.one_shot() && *at < ev.pos() && s.matches(&ev)));
                    if let Some(tx) = &w.tx {
                        let _ = tx.send(Ok(ev));
                    }
                }
                Ok(Response::Err(e)) => {
                    if stream_error(&mut w, e) {
                        return;
                    }
                    break;
                }
                Ok(Response::Ok(_)) | Err(_) => break, // connection lost: reconnect and resume
            }
        }
        // Let the heartbeat notice a dead node and move the connection first.
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// Hand a stream error to the application; true if the session is gone (stop streaming).
/// After `ResyncNeeded` the stream restarts from the oldest position the node keeps.
fn stream_error(w: &mut Watches, e: ServerError) -> bool {
    if let ServerError::ResyncNeeded { oldest, .. } = &e {
        // Never back: a node behind this client (e.g. one that just installed an older
        // snapshot) would otherwise replay what the application already has.
        w.since = w.since.max((*oldest, u32::MAX));
    }
    let gone = matches!(e, ServerError::SessionExpired { .. } | ServerError::NoSession);
    if let Some(tx) = &w.tx {
        let _ = tx.send(Err(e));
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_never_moves_the_stream_back() {
        let mut w = Watches { since: (10, 3), ..Watches::default() };
        // A node behind the client (it just installed an older snapshot) asks for a resync.
        assert!(!stream_error(&mut w, ServerError::ResyncNeeded { since: 10, oldest: 5 }));
        assert_eq!(w.since, (10, 3), "would replay what the application already has");
        assert!(!stream_error(&mut w, ServerError::ResyncNeeded { since: 10, oldest: 20 }));
        assert_eq!(w.since, (20, u32::MAX), "resumes after what the node no longer keeps");
        assert!(stream_error(&mut w, ServerError::SessionExpired { id: 1 }), "a gone session ends the stream");
    }
}

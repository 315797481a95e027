//! Setting watches and serving a session's event stream.

use std::sync::Arc;

use corral_proto::{Error, Reply, Response, ResponseFrame, WatchSpec};
use tokio::sync::mpsc;

use super::{Api, Ctx};

impl Api {
    /// Run the read `f`; with a watch, register it at exactly the position the read saw (both
    /// under the state's read lock, so no event can slip between them).
    pub(super) fn read_watched<T>(&self, ctx: &Ctx, w: Option<WatchSpec>, f: impl FnOnce() -> T) -> Result<T, Error> {
        let session = ctx.session;
        match w {
            None => Ok(f()),
            Some(_) if session == 0 => Err(Error::NoSession),
            Some(spec) => Ok(self.state.read_locked(|| {
                let out = f();
                self.watches.add(session, spec, self.watches.head());
                out
            })),
        }
    }

    pub(super) fn add_watch(&self, ctx: &Ctx, spec: WatchSpec) -> Result<Reply, Error> {
        corral_proto::path::validate(&spec.path)
            .map_err(|reason| Error::InvalidPath { path: spec.path.clone(), reason: reason.into() })?;
        // Events of one entry are published together, so (head index, MAX) is past them all.
        let at = self.read_watched(ctx, Some(spec), || self.watches.head().0)?;
        Ok(Reply::Done { index: at })
    }

    /// The session's event stream from just after `since`: frames until the client goes away.
    pub fn events(
        self: &Arc<Self>,
        identity: String,
        session: u64,
        since: (u64, u32),
        watches: Vec<(WatchSpec, (u64, u32))>,
    ) -> Result<mpsc::Receiver<ResponseFrame>, Error> {
        if session == 0 {
            return Err(Error::NoSession);
        }
        let notify = self.watches.resume(session, watches, since)?;
        let (tx, rx) = mpsc::channel(256);
        let api = self.clone();
        // The first frame says the stream is open: the client holds back new watches until
        // then, so a watch added meanwhile is never overwritten by the list sent with it.
        let head = self.watches.head().0;
        tokio::spawn(async move {
            let opened = ResponseFrame { index: head, response: Response::Ok(Reply::Done { index: head }) };
            if tx.send(opened).await.is_err() {
                api.watches.close(session, &notify);
                return;
            }
            loop {
                // Ask to be woken before looking, so an event queued in between is not missed.
                let woken = notify.notified();
                match api.watches.take(session, &notify) {
                    Ok(Some(events)) => {
                        for ev in events {
                            // ACLs are checked when a watch fires, not only when it is set.
                            if !api.may_see(&identity, &ev) {
                                tracing::trace!(target: "corral::events", session, index = ev.index, seq = ev.seq, path = %ev.path, "hidden");
                                continue;
                            }
                            tracing::trace!(target: "corral::events", session, index = ev.index, seq = ev.seq, path = %ev.path, "send");
                            let frame = ResponseFrame { index: ev.index, response: Response::Ok(Reply::Event(ev)) };
                            if tx.send(frame).await.is_err() {
                                api.watches.close(session, &notify);
                                return;
                            }
                        }
                    }
                    // A newer stream of this session took over.
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(ResponseFrame { index: api.applied_index(), response: Response::Err(e) }).await;
                        api.watches.close(session, &notify);
                        return;
                    }
                }
                tokio::select! {
                    _ = woken => {}
                    _ = tx.closed() => {
                        api.watches.close(session, &notify);
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

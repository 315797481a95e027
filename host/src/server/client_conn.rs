//! One client connection: each bidirectional stream carries one request and its reply, or is
//! a multiplexed stream carrying many (`super::mux`). A malformed request gets an error
//! reply; the connection and the node go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use corral_proto::{Error, Reply, Request, RequestFrame, Response, ResponseFrame};
use tokio_util::sync::CancellationToken;

use super::streams::Outcome;
use crate::api::{Api, Ctx};
use crate::net::identity_of;

pub async fn serve(conn: quinn::Connection, api: Arc<Api>, stop: CancellationToken) -> Result<()> {
    // A verified certificate always names someone; one that names no client identity gets
    // an identity no ACL grants anything to.
    let who = identity_of(&conn).map(|i| i.to_string()).unwrap_or_else(|_| "?".into());
    tracing::debug!(client = %who, remote = %conn.remote_address(), "client connected");
    let identity = Arc::new(who);
    // The session this connection is bound to (0: none); set by create/attach, cleared by close.
    let bound = Arc::new(AtomicU64::new(0));
    // A client's requests keep no order between streams (a client that needs one waits for
    // each answer).
    super::streams::serve(&conn, &stop, false, move |_turn, req: Result<RequestFrame, _>| {
        let (api, bound, identity) = (api.clone(), bound.clone(), identity.clone());
        async move {
            let req = match req {
                Ok(req) => req,
                Err(e) => {
                    let response = Response::Err(Error::bad_request(format!("malformed request: {e}")));
                    return Outcome::One(ResponseFrame { index: api.applied_index(), response });
                }
            };
            let ctx = Ctx {
                identity: identity.to_string(),
                session: bound.load(Ordering::Acquire),
                req: req.id,
                done_below: req.done_below,
                min_index: req.min_index,
            };
            if let Request::Events { since, watches } = req.body {
                return match api.events(ctx.identity, ctx.session, since, watches) {
                    Ok(frames) => Outcome::Many(frames),
                    Err(e) => Outcome::One(ResponseFrame { index: api.applied_index(), response: Response::Err(e) }),
                };
            }
            let closing = matches!(req.body, Request::CloseSession);
            let resp = api.handle(req.body, ctx, false).await;
            match &resp {
                Response::Ok(Reply::Session { id, .. }) => bound.store(*id, Ordering::Release),
                Response::Ok(_) if closing => bound.store(0, Ordering::Release),
                Response::Err(Error::SessionExpired { .. }) => bound.store(0, Ordering::Release),
                _ => {}
            }
            let reached = match &resp {
                Response::Ok(reply) => reply.index(),
                Response::Err(_) => 0,
            };
            Outcome::One(ResponseFrame { index: api.applied_index().max(reached), response: resp })
        }
    })
    .await
}

impl super::streams::Opening<ResponseFrame> for RequestFrame {
    fn opens_mux(&self) -> Option<u32> {
        match self.body {
            Request::Multiplex { version } => Some(version),
            _ => None,
        }
    }

    fn mux_answer(outcome: Result<(), String>) -> ResponseFrame {
        let response = match outcome {
            Ok(()) => Response::Ok(Reply::Done { index: 0 }),
            Err(why) => Response::Err(Error::bad_request(why)),
        };
        ResponseFrame { index: 0, response }
    }
}

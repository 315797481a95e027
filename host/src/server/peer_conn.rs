//! One peer connection. The sender is the node named by its certificate; a Raft RPC that
//! claims to come from another node (a vote or append whose leader/candidate id differs) is
//! refused, so one node's key cannot speak for another.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use anyhow::{bail, Result};
use tokio_util::sync::CancellationToken;

use super::stream_order::Turn;
use super::streams::Outcome;
use crate::api::Api;
use crate::net::{identity_of, Identity};
use crate::raft::rpc::{PeerRequest, PeerResponse};

pub async fn serve(conn: quinn::Connection, api: Arc<Api>, stop: CancellationToken) -> Result<()> {
    let peer = match identity_of(&conn) {
        Ok(Identity::Node(id)) => id,
        Ok(other) => {
            conn.close(2u32.into(), b"peer ALPN needs a node certificate");
            bail!("refused peer connection from {other}");
        }
        Err(e) => {
            conn.close(2u32.into(), b"bad certificate");
            bail!("refused peer connection: {e}");
        }
    };
    // A peer dials us only when it has no working connection to us: it restarted, or its
    // connection broke. Ours to it is then as likely dead, and nothing would tell us soon: a
    // killed node sends no close, and a leader that restarts at once keeps its term, so no
    // election tells the requests we forwarded to it to give up. Close ours, so those fail
    // now (their clients resend) and the next call dials again.
    api.pool.peer_reconnected(peer).await;
    super::streams::serve(&conn, &stop, true, move |turn, req: Result<PeerRequest, _>| {
        let api = api.clone();
        async move {
            let resp = match req {
                Ok(req) => handle(&api, peer, req, turn).await,
                Err(e) => PeerResponse::Refused(format!("malformed peer request: {e}")),
            };
            // The test fault layer: a response to `peer` may be lost or late, like a request.
            api.pool.verdict(peer).hold().await;
            Outcome::One(resp)
        }
    })
    .await
}

async fn handle(api: &Api, peer: u64, req: PeerRequest, turn: Option<Turn>) -> PeerResponse {
    let claimed = match &req {
        PeerRequest::AppendEntries(r) => Some(r.vote.leader_id().voted_for()),
        PeerRequest::Vote(r) | PeerRequest::PreVote(r) => Some(r.vote.leader_id().voted_for()),
        PeerRequest::InstallSnapshot(r) => Some(r.vote.leader_id().voted_for()),
        PeerRequest::Forward(..)
        | PeerRequest::ForwardBatch(_)
        | PeerRequest::ReadIndex
        | PeerRequest::Touch(_)
        | PeerRequest::Digest(_) => None,
    };
    if let Some(claimed) = claimed {
        if claimed != Some(peer) {
            return PeerResponse::Refused(format!("node {peer} sent a request on behalf of {claimed:?}"));
        }
    }
    // Only appends keep their place; every other request ends its turn now.
    let turn = turn.filter(|_| matches!(req, PeerRequest::AppendEntries(_)));
    match req {
        PeerRequest::AppendEntries(r) => PeerResponse::AppendEntries(in_turn(turn, api.raft.append_entries(r)).await),
        PeerRequest::Vote(r) => PeerResponse::Vote(api.raft.vote(r).await),
        PeerRequest::PreVote(r) => PeerResponse::Vote(api.raft.pre_vote(r).await),
        PeerRequest::InstallSnapshot(r) => PeerResponse::InstallSnapshot(api.raft.install_snapshot(r).await),
        PeerRequest::Forward(ctx, r) => PeerResponse::Forward(api.handle(r, ctx, true).await),
        // Concurrently, so that they reach the leader's group commit together.
        PeerRequest::ForwardBatch(items) => PeerResponse::ForwardBatch(
            futures_util::future::join_all(items.into_iter().map(|(ctx, r)| api.handle(r, ctx, true))).await,
        ),
        PeerRequest::Touch(ids) => {
            api.sessions.heard_from(ids);
            PeerResponse::Touched
        }
        PeerRequest::ReadIndex => PeerResponse::ReadIndex(api.leader_read_index().await),
        PeerRequest::Digest(index) => PeerResponse::Digest(api.digest_at(index).await),
    }
}

/// Hand an AppendEntries to Raft in the order the leader sent it (see `stream_order`), then wait
/// for its answer without holding up the next. openraft's `Raft::append_entries` queues the
/// request for the Raft core when first polled, so one poll in turn is enough.
async fn in_turn<T>(turn: Option<Turn>, submit: impl Future<Output = T>) -> T {
    if let Some(turn) = &turn {
        turn.wait().await;
    }
    let mut submit = pin!(submit);
    let first = futures_util::poll!(submit.as_mut());
    drop(turn);
    match first {
        Poll::Ready(r) => r,
        Poll::Pending => submit.await,
    }
}

/// Peers send a stream per request: the order of Raft's streams matters (`stream_order`).
impl super::streams::Opening<PeerResponse> for PeerRequest {
    fn opens_mux(&self) -> Option<u32> {
        None
    }

    fn mux_answer(outcome: Result<(), String>) -> PeerResponse {
        PeerResponse::Refused(outcome.err().unwrap_or_default())
    }
}

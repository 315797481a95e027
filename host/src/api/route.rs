//! Getting a request to the leader: run it here if this node leads, else forward it over the
//! peer connection. Waits for an election to finish (bounded by the request timeout).

use std::time::{Duration, Instant};

use corral_proto::{Error, Reply, Request, Response};
use openraft::error::{ClientWriteError, RaftError};

use super::{Api, Ctx};

/// What a leader-side attempt came to.
pub(crate) enum Step {
    /// Final answer for the client.
    Done(Error),
    /// This node turned out not to be the leader; nothing was done.
    NotLeader,
}

impl Step {
    pub(crate) fn from_write_error(e: RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>) -> Step {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Step::NotLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                Step::Done(Error::Membership { reason: e.to_string() })
            }
            RaftError::Fatal(f) => Step::Done(Error::unavailable(format!("raft stopped: {f}"))),
        }
    }
}

impl Api {
    /// Run `req` on the leader and return its answer.
    pub(super) async fn route(&self, req: Request, ctx: Ctx, forwarded: bool) -> Result<Reply, Error> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let Some(leader) = self.wait_for_leader(deadline).await else {
                return Err(Error::NotLeader { leader: None });
            };
            if leader == self.id {
                match self.lead(&req, ctx.clone()).await {
                    Ok(r) => return Ok(r),
                    Err(Step::Done(e)) => return Err(e),
                    Err(Step::NotLeader) => {
                        self.wait_leader_change(Some(leader), deadline).await;
                        continue;
                    }
                }
            }
            if forwarded {
                return Err(Error::NotLeader { leader: Some(leader) });
            }
            let Some(addr) = self.node_addr(leader) else {
                return Err(Error::NotLeader { leader: Some(leader) });
            };
            let forward = self.forwarder.forward(leader, &addr, ctx.clone(), req.clone(), deadline);
            let res = tokio::select! {
                r = forward => r,
                // A dead leader never answers; once an election starts, stop waiting for it.
                _ = self.leader_moved_from(leader) => {
                    return Err(Error::unavailable("the leader changed while the request was in flight; outcome unknown"));
                }
            };
            match res {
                Ok(Response::Ok(r)) => return Ok(r),
                Ok(Response::Err(Error::NotLeader { .. })) => {
                    self.wait_leader_change(Some(leader), deadline).await;
                }
                Ok(Response::Err(e)) => return Err(e),
                Err(e) if e.nothing_sent() => {
                    // The leader is unreachable; wait for the election that will replace it.
                    self.wait_leader_change(Some(leader), deadline).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, leader, "forwarding a request failed");
                    return Err(Error::unavailable(format!("outcome unknown: {e}")));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::NotLeader { leader: None });
            }
        }
    }

    /// What the leader does with each routed request.
    async fn lead(&self, req: &Request, ctx: Ctx) -> Result<Reply, Step> {
        match req {
            Request::MemberAdd { id, addr, learner } => self.member_add(*id, addr, *learner).await,
            Request::MemberPromote { id } => self.member_promote(*id).await,
            Request::MemberRemove { id } => self.member_remove(*id).await,
            Request::CreateSession { .. } => {
                let op = self.to_op(req).map_err(Step::Done)?;
                let reply = self.propose(op, Ctx { identity: ctx.identity, ..Ctx::default() }).await?;
                if let Reply::Session { id, .. } = &reply {
                    self.sessions.touch(*id);
                }
                Ok(reply)
            }
            _ => {
                let op = self.to_op(req).map_err(Step::Done)?;
                self.propose(op, ctx).await
            }
        }
    }

    pub(super) fn node_addr(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// Resolves once this node no longer believes `leader` leads (an election started or ended).
    pub(super) async fn leader_moved_from(&self, leader: u64) {
        let mut rx = self.raft.metrics();
        while rx.borrow_and_update().current_leader == Some(leader) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The current leader, waiting (until `deadline`) for one to be elected.
    pub(super) async fn wait_for_leader(&self, deadline: Instant) -> Option<u64> {
        let mut rx = self.raft.metrics();
        loop {
            if let Some(l) = rx.borrow_and_update().current_leader {
                return Some(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return None;
            }
        }
    }

    /// Wait until the leader is no longer `old` (or a short while passes: a leader we failed
    /// to reach may still be the leader, e.g. after a brief network blip).
    pub(super) async fn wait_leader_change(&self, old: Option<u64>, deadline: Instant) {
        let mut rx = self.raft.metrics();
        let until = deadline.min(Instant::now() + Duration::from_millis(100));
        loop {
            if rx.borrow_and_update().current_leader != old {
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return;
            }
        }
    }
}

//! Session liveness and expiry: the part of sessions that is *not* replicated.
//!
//! Every node notes the sessions it hears from (any request on a bound connection, or a ping)
//! and reports them to the leader in batches. Only the leader decides expiry: a session not
//! heard from by any node for its timeout is ended by proposing an `ExpireSessions` entry. A
//! leader starts every session's clock afresh when it takes office (and when it first sees a
//! session), so a leader change never expires a live session. The same loop proposes a `Tick`
//! when a TTL deadline is due and nothing else is being written.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::net::PeerPool;
use crate::raft::rpc::{PeerRequest, PeerResponse};
use crate::raft::Raft;
use crate::state::{Command, Op, State};

/// How often liveness is reported and expiry checked.
const TICK: Duration = Duration::from_millis(100);

pub struct Sessions {
    id: u64,
    raft: Raft,
    state: State,
    pool: Arc<PeerPool>,
    /// (min, max) session timeout in ms; requests are clamped into it.
    pub bounds: (u64, u64),
    /// Heard from on this node since the last report. A std mutex: held for set operations
    /// only, never across an await.
    pending: Mutex<BTreeSet<u64>>,
    /// On the leader: when each session was last heard from, and the term this is for.
    heard: Mutex<(u64, HashMap<u64, Instant>)>,
}

impl Sessions {
    pub fn new(id: u64, raft: Raft, state: State, pool: Arc<PeerPool>, bounds: (u64, u64)) -> Self {
        Sessions { id, raft, state, pool, bounds, pending: Mutex::default(), heard: Mutex::default() }
    }

    /// A request or ping from session `id` reached this node.
    pub fn touch(&self, id: u64) {
        if id != 0 {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        }
    }

    /// Liveness reported by another node (or this one), on the leader.
    pub fn heard_from(&self, ids: impl IntoIterator<Item = u64>) {
        let now = Instant::now();
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            heard.1.insert(id, now);
        }
    }

    pub fn clamp(&self, timeout_ms: u64) -> u64 {
        timeout_ms.clamp(self.bounds.0, self.bounds.1)
    }

    /// Until `stop`: report liveness, and on the leader expire sessions and tick TTLs.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            self.report().await;
            if let Err(e) = self.lead().await {
                tracing::warn!(error = %e, "session expiry check failed");
            }
        }
    }

    async fn report(&self) {
        let ids: Vec<u64> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        if ids.is_empty() {
            return;
        }
        let (leader, addr) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let leader = m.current_leader;
            let addr = leader.and_then(|l| m.membership_config.membership().get_node(&l).map(|n| n.addr.clone()));
            (leader, addr)
        };
        match (leader, addr) {
            (Some(l), _) if l == self.id => self.heard_from(ids),
            (Some(l), Some(addr)) => {
                let req = PeerRequest::Touch(ids.clone());
                if self.pool.call::<_, PeerResponse>(l, &addr, &req, TICK * 5).await.is_err() {
                    // Keep them for the next report (maybe to the next leader).
                    self.pending.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
                }
            }
            _ => self.pending.lock().unwrap_or_else(|p| p.into_inner()).extend(ids),
        }
    }

    async fn lead(&self) -> anyhow::Result<()> {
        let (is_leader, term, applied_term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.state == ServerState::Leader, m.current_term, m.last_applied.map(|l| l.leader_id.term))
        };
        if !is_leader {
            return Ok(());
        }
        let now = Instant::now();
        let expired: Vec<u64> = {
            let sessions = self.state.sessions()?;
            let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
            if heard.0 != term {
                // A new term: every session gets a full timeout from now.
                *heard = (term, HashMap::new());
            }
            let live: BTreeSet<u64> = sessions.iter().map(|(id, _)| *id).collect();
            heard.1.retain(|id, _| live.contains(id));
            sessions
                .into_iter()
                .filter(|(id, timeout)| {
                    let last = *heard.1.entry(*id).or_insert(now);
                    now.duration_since(last) > Duration::from_millis(*timeout)
                })
                .map(|(id, _)| id)
                .collect()
        };
        let now_ms = self.state.leader_now_ms(term, applied_term);
        if !expired.is_empty() {
            tracing::info!(sessions = ?expired, "expiring sessions");
            self.raft.client_write(Command::plain(now_ms, Op::ExpireSessions { ids: expired })).await?;
        } else if self.state.next_deadline()?.is_some_and(|d| d <= now_ms) {
            self.raft.client_write(Command::plain(now_ms, Op::Tick)).await?;
        }
        Ok(())
    }
}

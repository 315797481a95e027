//! One leadership check for many linearizable reads.
//!
//! openraft's `get_read_log_id` confirms leadership with a heartbeat to every follower. Called
//! once per read, 64 concurrent readers cost 128 heartbeat RPCs per round trip; on a follower,
//! each read also cost its own `ReadIndex` RPC to the leader. Here reads that arrive while a
//! check is in flight wait for the next one, which then serves all of them: at most one round
//! is in flight, and a read's check starts after the read arrived, which is what makes the
//! read index it gets fresh enough (etcd batches its ReadIndex the same way). Rounds to
//! different leaders (only while the leader changes) do not wait for each other.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_proto::Error;
use tokio::sync::oneshot;

use crate::net::PeerPool;
use crate::raft::rpc::{PeerRequest, PeerResponse};
use crate::raft::Raft;

/// Who confirms: this node as leader (`None`), or the leader at (id, address).
type Asked = Option<(u64, String)>;
type Waiter = oneshot::Sender<Result<u64, Error>>;

/// The reads waiting for the next round, per who is asked; an entry exists while its rounds run.
type Queues = BTreeMap<Asked, Vec<Waiter>>;

#[derive(Clone)]
struct Checker {
    raft: Raft,
    pool: Arc<PeerPool>,
    timeout: Duration,
}

/// One leadership check (a function, so that tests can stand in for Raft).
type Check = Arc<dyn Fn(Asked) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send>> + Send + Sync>;

pub struct ReadRounds {
    check: Check,
    queues: Arc<Mutex<Queues>>,
}

impl ReadRounds {
    pub fn new(raft: Raft, pool: Arc<PeerPool>, timeout: Duration) -> Self {
        let checker = Checker { raft, pool, timeout };
        Self::with_check(Arc::new(move |asked| {
            let checker = checker.clone();
            Box::pin(async move { checker.check(asked).await })
        }))
    }

    fn with_check(check: Check) -> Self {
        ReadRounds { check, queues: Arc::default() }
    }

    /// This node's read index as leader, from a leadership check that started after this call.
    pub async fn local(&self) -> Result<u64, Error> {
        self.join(None).await
    }

    /// The read index of `leader` at `addr`, asked after this call. `NotLeader` also stands for
    /// "could not reach it": either way the caller waits for a leader change and asks again.
    pub async fn forwarded(&self, leader: u64, addr: String) -> Result<u64, Error> {
        self.join(Some((leader, addr))).await
    }

    async fn join(&self, asked: Asked) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let running = q.contains_key(&asked);
            q.entry(asked.clone()).or_default().push(tx);
            !running
        };
        if start {
            // Its own task: the round goes on for the others if this caller gives up.
            tokio::spawn(run_rounds(self.check.clone(), self.queues.clone(), asked));
        }
        rx.await.unwrap_or_else(|_| Err(Error::unavailable("the node is shutting down")))
    }
}

async fn run_rounds(check: Check, queues: Arc<Mutex<Queues>>, asked: Asked) {
    loop {
        let waiters = {
            let mut q = queues.lock().unwrap_or_else(|p| p.into_inner());
            match q.get_mut(&asked) {
                Some(w) if !w.is_empty() => std::mem::take(w),
                _ => {
                    q.remove(&asked);
                    return;
                }
            }
        };
        let res = check(asked.clone()).await;
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

impl Checker {
    async fn check(&self, asked: Asked) -> Result<u64, Error> {
        let Some((leader, addr)) = asked else { return self.local().await };
        match self.pool.call::<_, PeerResponse>(leader, &addr, &PeerRequest::ReadIndex, self.timeout).await {
            Ok(PeerResponse::ReadIndex(res)) => res,
            Ok(other) => Err(Error::internal(format!("leader answered {other:?}"))),
            Err(_) => Err(Error::NotLeader { leader: None }),
        }
    }

    async fn local(&self) -> Result<u64, Error> {
        match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => {
                // Why the last log index too: see `Api::leader_read_index`.
                let last = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
                Ok(read.map_or(0, |l| l.index).max(last))
            }
            Err(openraft::error::RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Error::NotLeader { leader: f.leader_id })
            }
            Err(e) => Err(Error::unavailable(e)),
        }
    }
}

#[cfg(test)]
#[path = "read_rounds_tests.rs"]
mod tests;

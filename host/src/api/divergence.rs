//! The divergence check: every so often the leader takes the digest of its state after its
//! newest entry and asks every other member for theirs after the same entry. A different
//! digest means a replica's state differs (a non-deterministic host, a bug, a corrupted disk):
//! an alarm in the log and in `corral status`. It changes nothing: deciding which replica is
//! right is for an operator.

use std::sync::Arc;
use std::time::Duration;

use super::Api;
use crate::raft::rpc::{PeerRequest, PeerResponse};

/// How often the leader compares.
pub const EVERY: Duration = Duration::from_secs(5);

impl Api {
    /// This replica's digest after entry `index`, waiting (briefly) until it has applied it.
    pub async fn digest_at(&self, index: u64) -> Option<[u8; 32]> {
        let _ = self.raft.wait(Some(Duration::from_secs(2))).applied_index_at_least(Some(index), "digest").await;
        self.state.digest_at(index)
    }

    /// One round of the check (leader only): the members whose digest differs.
    pub async fn compare_digests(&self) -> Vec<u64> {
        let Some((index, mine)) = self.state.latest_digest() else { return Vec::new() };
        let members: Vec<(u64, String)> = {
            let m = self.raft.metrics().borrow().clone();
            m.membership_config.membership().nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        let mut differ = Vec::new();
        for (id, addr) in members.into_iter().filter(|(id, _)| *id != self.id) {
            let ask = PeerRequest::Digest(index);
            let call = self.pool.call::<_, PeerResponse>(id, &addr, &ask, Duration::from_secs(3));
            if let Ok(PeerResponse::Digest(Some(theirs))) = call.await {
                if theirs != mine {
                    differ.push(id);
                    let msg = format!(
                        "node {id}'s state digest after entry {index} is {}, this node's is {}",
                        hex::encode(theirs),
                        hex::encode(mine)
                    );
                    tracing::error!("DIVERGENCE: {msg}");
                    *self.divergence.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                }
            }
        }
        differ
    }
}

/// Compare digests every [`EVERY`] while this node leads, until `stop`.
pub async fn run(api: Arc<Api>, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let leads = api.raft.metrics().borrow().current_leader == Some(api.id);
        if leads {
            api.compare_digests().await;
        }
    }
}

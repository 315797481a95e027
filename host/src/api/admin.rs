//! Status, bootstrap and membership changes (learners, promotion, removal).

use std::collections::{BTreeMap, BTreeSet};

use corral_proto::{Error, MemberInfo, NodeStatus, Reply};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use super::route::Step;
use super::Api;

impl Api {
    pub(super) fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
            _ if voters.contains(&self.id) => "follower",
            _ => "learner",
        };
        let members = membership
            .nodes()
            .map(|(id, n)| MemberInfo { id: *id, addr: n.addr.clone(), voter: voters.contains(id) })
            .collect();
        let (digest_index, digest) = self.state.digest().unwrap_or_default();
        NodeStatus {
            id: self.id,
            addr: self.pool.endpoint().local_addr().map(|a| a.to_string()).unwrap_or_default(),
            role: role.to_string(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            leader: m.current_leader,
            members,
            digest_index,
            digest: hex::encode(digest),
            divergence: self.divergence.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            pid: std::process::id(),
            cpu_ms: process_cpu_ms(),
        }
    }

    pub(super) async fn initialize(&self, members: Vec<(u64, String)>) -> Result<Reply, Error> {
        if members.is_empty() {
            return Err(Error::bad_request("initialize needs at least one member"));
        }
        let mut nodes = BTreeMap::new();
        for (id, addr) in members {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| Error::bad_request(format!("member {id} address {addr:?}: {e}")))?;
            if nodes.insert(id, BasicNode::new(addr)).is_some() {
                return Err(Error::bad_request(format!("member {id} listed twice")));
            }
        }
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(Reply::Done { index: 0 }),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(Error::Membership { reason: "this node is already initialized".into() })
            }
            Err(e) => Err(Error::Membership { reason: e.to_string() }),
        }
    }

    pub(super) async fn member_add(&self, id: u64, addr: &str, learner: bool) -> Result<Reply, Step> {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|e| Step::Done(Error::bad_request(format!("address {addr:?}: {e}"))))?;
        // Blocks until the learner has caught up, so promoting it next does not stall writes.
        let r = self.raft.add_learner(id, BasicNode::new(addr), true).await.map_err(Step::from_write_error)?;
        if learner {
            return Ok(Reply::Done { index: r.log_id.index });
        }
        self.member_promote(id).await
    }

    pub(super) async fn member_promote(&self, id: u64) -> Result<Reply, Step> {
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await
    }

    pub(super) async fn member_remove(&self, id: u64) -> Result<Reply, Step> {
        let is_voter = self.raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == id);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.change(change).await
    }

    async fn change(&self, change: ChangeMembers<u64, BasicNode>) -> Result<Reply, Step> {
        tracing::info!(?change, "membership change requested");
        match self.raft.change_membership(change, false).await {
            Ok(r) => Ok(Reply::Done { index: r.log_id.index }),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(Step::Done(Error::Membership { reason: e.to_string() }))
            }
            Err(e) => Err(Step::from_write_error(e)),
        }
    }
}

/// CPU time this process has used, user plus system, in ms.
#[allow(unsafe_code)]
fn process_cpu_ms() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0;
        }
        u
    };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1_000 + t.tv_usec as u64 / 1_000;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

//! `RaftNetwork` over the peer pool: each RPC is one QUIC stream to the target node.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;

use super::rpc::{PeerRequest, PeerResponse};
use super::TypeConfig;
use crate::net::{PeerError, PeerPool};

/// Bytes of entries one AppendEntries carries at most (beyond its first entry).
const APPEND_BYTES: u64 = 512 * 1024;

/// How many of `entries`, from the first, fit in `budget` bytes (at least one, if any).
fn prefix_within(entries: &[openraft::Entry<TypeConfig>], budget: u64) -> usize {
    let mut used = 0u64;
    for (i, e) in entries.iter().enumerate() {
        used = used.saturating_add(bincode::serialized_size(e).unwrap_or(u64::MAX));
        if i > 0 && used > budget {
            return i;
        }
    }
    entries.len()
}

pub struct Network {
    pub id: u64,
    pub pool: Arc<PeerPool>,
    /// How long replication to an unreachable peer pauses between attempts: the heartbeat
    /// interval (see [`PeerLink::backoff`]).
    pub retry: Duration,
}

pub struct PeerLink {
    id: u64,
    target: u64,
    addr: String,
    pool: Arc<PeerPool>,
    retry: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerLink {
        PeerLink { id: self.id, target, addr: node.addr.clone(), pool: self.pool.clone(), retry: self.retry }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl PeerLink {
    async fn call<E: std::error::Error>(&self, req: PeerRequest, ttl: Duration) -> Result<PeerResponse, RpcErr<E>> {
        match self.pool.call(self.target, &self.addr, &req, ttl).await {
            Ok(PeerResponse::Refused(why)) => Err(RPCError::Network(NetworkError::new(&super::io_err(why)))),
            Ok(r) => Ok(r),
            Err(PeerError::Timeout(_)) => Err(RPCError::Timeout(Timeout {
                action: openraft::RPCTypes::AppendEntries,
                id: self.id,
                target: self.target,
                timeout: ttl,
            })),
            Err(e @ PeerError::Connect(..)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    /// A vote or a pre-vote: both are answered as `PeerResponse::Vote`.
    async fn ask_vote(&self, req: PeerRequest, option: RPCOption) -> Result<VoteResponse<u64>, RpcErr> {
        match self.call(req, option.hard_ttl()).await? {
            PeerResponse::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(other)),
        }
    }

    fn unexpected<E: std::error::Error>(&self, r: PeerResponse) -> RpcErr<E> {
        RPCError::Network(NetworkError::new(&super::io_err(format!("unexpected reply {r:?}"))))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    /// openraft pauses replication to a peer it cannot reach for 500 ms by default, longer
    /// than a follower's election timeout (150–300 ms on a LAN). A follower back from a pause
    /// (SIGSTOP, a VM migration, a healed partition) then heard nothing from the leader for
    /// up to half a second and stood for election: its candidacy fails, but its newer term
    /// unseats the leader (failover-stop runs: ~0.3 s without a leader after the stopped node
    /// was continued). An attempt while the peer is away is cheap: it waits on the pool's one
    /// dial to the peer, it does not start one.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(self.retry))
    }

    /// openraft 0.9 bounds an AppendEntries by the heartbeat interval and its batches by entry
    /// count, not bytes: a batch of large values could never arrive in time (nor fit a
    /// frame). So send a prefix of at most `APPEND_BYTES` (always one entry at least) and
    /// report how far it got with `PartialSuccess`; openraft sends the rest next.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let keep = prefix_within(&rpc.entries, APPEND_BYTES);
        let partial = (keep < rpc.entries.len()).then(|| rpc.entries[keep - 1].log_id);
        rpc.entries.truncate(keep);
        // openraft bounds the whole call by the heartbeat interval itself, entries or not (a
        // follower catching up still gets them: its Raft core goes on with an append whose
        // caller gave up, and the next probe finds them there).
        let resp = match self.call(PeerRequest::AppendEntries(rpc), option.hard_ttl()).await? {
            PeerResponse::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?,
            other => return Err(self.unexpected(other)),
        };
        Ok(match (resp, partial) {
            (AppendEntriesResponse::Success, Some(last)) => AppendEntriesResponse::PartialSuccess(Some(last)),
            (resp, _) => resp,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        match self.call(PeerRequest::InstallSnapshot(rpc), option.hard_ttl()).await? {
            PeerResponse::InstallSnapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RpcErr> {
        self.ask_vote(PeerRequest::Vote(rpc), option).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RpcErr> {
        self.ask_vote(PeerRequest::PreVote(rpc), option).await
    }
}

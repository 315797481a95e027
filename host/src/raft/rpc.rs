//! What travels on a peer stream: Raft RPCs, writes forwarded to the leader, and ReadIndex.
//! Every inbound request is checked against the sender's certificate (see `server::peer`).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::TypeConfig;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client request received by a follower, for the leader to run, with its session.
    Forward(crate::api::Ctx, corral_proto::Request),
    /// Several client requests forwarded together (`api::forward`), each with its session; the
    /// leader runs them concurrently and answers each, in order.
    ForwardBatch(Vec<(crate::api::Ctx, corral_proto::Request)>),
    /// Sessions heard from by the sender since its last report (leader only).
    Touch(Vec<u64>),
    /// "What index must I apply to serve a linearizable read?" (leader only)
    ReadIndex,
    /// "What is your state digest after entry N?" (the divergence check).
    Digest(u64),
    /// "Would you grant me this vote?" (a pre-vote: the answer changes nothing); answered as
    /// `PeerResponse::Vote`.
    PreVote(VoteRequest<u64>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Forward(corral_proto::Response),
    ForwardBatch(Vec<corral_proto::Response>),
    ReadIndex(Result<u64, corral_proto::Error>),
    Touched,
    /// The digest after that entry; None if this replica no longer remembers it.
    Digest(Option<[u8; 32]>),
    /// The request was refused (bad frame, wrong sender, ...).
    Refused(String),
}

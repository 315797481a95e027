//! Consensus: openraft 0.9 wired to our storage and network. No consensus logic of our own
//! lives here: only the adapters openraft asks for.
//! - [`log_store`]: `RaftLogStorage` over the WAL;
//! - [`state_machine`]: `RaftStateMachine` over `state` (sled), with snapshots;
//! - [`network`]: `RaftNetwork` over QUIC peer streams; [`rpc`] is what those streams carry.

// openraft's traits fix the error type (`StorageError`, ~224 bytes); our helpers return it too.
#![allow(clippy::result_large_err)]

mod applier;
pub mod log_memory;
pub mod log_store;
pub mod network;
pub mod rpc;
pub mod state_machine;

use std::io::Cursor;

use corral_proto::{Error, Reply};

use crate::state::Command;

/// The state machine's answer to one entry: one command's result, or each result of a batch
/// entry's commands, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ApplyResult {
    One(Result<Reply, Error>),
    Batch(Vec<Result<Reply, Error>>),
}

openraft::declare_raft_types!(
    /// corral's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StorageError = openraft::StorageError<u64>;

pub(crate) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod conformance;

//! Errors a client can act on. Each says what was wrong and changed nothing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    #[error("no node at {path}")]
    NoNode { path: String },
    #[error("node {path} already exists")]
    NodeExists { path: String },
    #[error("version mismatch on {path}: expected {expected}, found {actual}")]
    BadVersion { path: String, expected: u64, actual: u64 },
    #[error("node {path} has children")]
    NotEmpty { path: String },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{what} is {size} bytes, over the limit of {max} bytes")]
    TooLarge { what: String, size: usize, max: usize },
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    #[error("membership change refused: {reason}")]
    Membership { reason: String },
    #[error("internal error: {reason}")]
    Internal { reason: String },
    /// The session has ended (expired or closed): its ephemeral nodes are gone.
    #[error("session {id:#x} has expired or was closed")]
    SessionExpired { id: u64 },
    /// The request needs a session and the connection has none.
    #[error("this request needs a session")]
    NoSession,
    /// Operation `op` (0-based) of a multi failed; nothing was applied.
    #[error("multi operation {op} failed: {cause}")]
    MultiFailed { op: u32, cause: Box<Error> },
    /// The events after the position asked for are no longer kept: re-read the state.
    #[error("events after index {since} are no longer kept (oldest kept: after {oldest}); resync needed")]
    ResyncNeeded { since: u64, oldest: u64 },
    /// A configured limit (children per node, nodes in all) would be exceeded.
    #[error("{what}: the limit of {limit} is reached")]
    LimitReached { what: String, limit: u64 },
    /// The client's identity lacks a permission (r, w, c, d or a) on `path`.
    #[error("{identity} may not {what} {path}")]
    NoAuth { path: String, identity: String, what: String },
    #[error("no plugin named {name}")]
    NoPlugin { name: String },
    #[error("a plugin named {name} is already deployed")]
    PluginExists { name: String },
    /// The upload was refused: nothing was deployed.
    #[error("plugin {name} refused: {reason}")]
    BadPlugin { name: String, reason: String },
    /// The call failed (a trap, out of fuel, the plugin's own error): it changed nothing.
    #[error("plugin {name}: {reason}")]
    PluginFailed { name: String, reason: String },
}

impl Error {
    pub fn unavailable(reason: impl ToString) -> Self {
        Error::Unavailable { reason: reason.to_string() }
    }
    pub fn bad_request(reason: impl ToString) -> Self {
        Error::BadRequest { reason: reason.to_string() }
    }
    pub fn internal(reason: impl ToString) -> Self {
        Error::Internal { reason: reason.to_string() }
    }
}

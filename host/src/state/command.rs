//! What a log entry asks the state machine to do. Built once, on the leader ("prep"), carrying
//! everything apply needs: anything non-deterministic (the time) is decided there.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The leader's wall clock when it prepared the command, ms since the Unix epoch.
    pub ts_ms: u64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Create { path: String, data: Vec<u8> },
    Set { path: String, data: Vec<u8>, version: Option<u64> },
    Delete { path: String, version: Option<u64> },
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            Op::Create { path, data } => write!(f, "create {path} ({} bytes)", data.len()),
            Op::Set { path, data, .. } => write!(f, "set {path} ({} bytes)", data.len()),
            Op::Delete { path, .. } => write!(f, "delete {path}"),
        }
    }
}

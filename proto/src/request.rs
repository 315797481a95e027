//! Client requests. One request per QUIC bidirectional stream.

use serde::{Deserialize, Serialize};

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read started (ReadIndex through the leader).
    #[default]
    Linearizable,
    /// Served from the local replica: fast, possibly stale.
    Serializable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Client-chosen id, echoed in logs; exactly-once deduplication builds on it.
    pub id: u64,
    pub body: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Create {
        path: String,
        data: Vec<u8>,
    },
    Get {
        path: String,
        consistency: Consistency,
    },
    /// `version`: only if the node's version equals it.
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<u64>,
    },
    /// `version`: only if the node's version equals it. A node with children is not deleted.
    Delete {
        path: String,
        version: Option<u64>,
    },
    Exists {
        path: String,
        consistency: Consistency,
    },
    Children {
        path: String,
        consistency: Consistency,
    },
    /// Waits until this node has applied everything committed when the leader received it.
    Sync,
    /// This node's view: role, term, indexes, leader, members.
    Status,
    /// Bootstrap a new cluster with these voters (id, address). Only on a fresh node.
    Initialize {
        members: Vec<(u64, String)>,
    },
    MemberAdd {
        id: u64,
        addr: String,
        learner: bool,
    },
    MemberPromote {
        id: u64,
    },
    MemberRemove {
        id: u64,
    },
}

impl Request {
    /// Whether sending this request twice has the same effect as sending it once. The client
    /// library retries these on another node after a connection loss.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Request::Get { .. } | Request::Exists { .. } | Request::Children { .. } | Request::Sync | Request::Status
        )
    }
}

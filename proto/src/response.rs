//! Replies to client requests.

use serde::{Deserialize, Serialize};

use crate::{Error, Stat};

/// What a node sends a client: a response and the log index it reflects (the client sends the
/// highest it has seen back as `RequestFrame::min_index`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub index: u64,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Ok(Reply),
    Err(Error),
}

impl Reply {
    /// The highest log index this reply names (creation, modification, session, done).
    pub fn index(&self) -> u64 {
        match self {
            Reply::Created { stat, .. } => stat.czxid,
            Reply::Data { stat, .. } | Reply::Stat(Some(stat)) => stat.mzxid.max(stat.pzxid),
            Reply::Done { index } | Reply::Session { id: index, .. } | Reply::Plugin { index, .. } => *index,
            Reply::Event(ev) => ev.index,
            Reply::Multi(replies) => replies.iter().map(Reply::index).max().unwrap_or(0),
            Reply::Stat(None) | Reply::Children(_) | Reply::Status(_) | Reply::Acl(_) => 0,
            Reply::Plugins(_) | Reply::Notifications(_) => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Created {
        path: String,
        stat: Stat,
    },
    Data {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        stat: Stat,
    },
    Stat(Option<Stat>),
    Children(Vec<String>),
    Status(NodeStatus),
    /// The request succeeded and has nothing to return. `index` is the log index it reached.
    Done {
        index: u64,
    },
    /// The connection's session: its id (the log index that created it), secret, timeout.
    Session {
        id: u64,
        secret: Vec<u8>,
        timeout_ms: u64,
    },
    /// One reply per operation of a successful `Multi`.
    Multi(Vec<Reply>),
    /// One frame of an event stream.
    Event(crate::Event),
    /// A node's ACL.
    Acl(Vec<crate::AclEntry>),
    /// What a plugin call or query returned; `index`: the entry it was applied at (a call), or
    /// the index the replica had applied (a query).
    Plugin {
        index: u64,
        #[serde(with = "serde_bytes")]
        output: Vec<u8>,
    },
    Plugins(Vec<crate::PluginInfo>),
    Notifications(Vec<crate::Notification>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub addr: String,
    /// "leader", "follower", "candidate" or "learner".
    pub role: String,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub leader: Option<u64>,
    pub members: Vec<MemberInfo>,
    /// The state digest (hex; tree, sessions and plugin state) and the last entry that changed
    /// it: replicas that have applied the same entries show the same pair.
    pub digest_index: u64,
    pub digest: String,
    /// Set when this node found another replica with a different digest at the same index.
    pub divergence: Option<String>,
    /// The server's process id and the CPU time it has used (user + system, ms): what
    /// `corral bench` reports per operation, and the process its failover workload stops.
    pub pid: u32,
    pub cpu_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub addr: String,
    pub voter: bool,
}

//! Client requests: one per QUIC bidirectional stream, or many on a multiplexed one
//! ([`crate::mux`]).

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
    /// Client-chosen id. On a connection bound to a session, ids increase per session and a
    /// write resent with the same id is applied once (its first reply is returned again).
    pub id: u64,
    /// Every request of this session with an id below this has had its reply: the server may
    /// forget those replies. 0 when unknown.
    pub done_below: u64,
    /// The highest log index this client has seen: the node answers only once it has applied
    /// at least this much (read-your-writes and monotonic reads, whichever node it asks).
    pub min_index: u64,
    pub body: Request,
}

/// How a node is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateMode {
    /// Owned by the connection's session; deleted when the session ends. No children.
    pub ephemeral: bool,
    /// A zero-padded, per-parent 64-bit counter is appended to the name.
    pub sequential: bool,
    /// Deleted when its last child is deleted.
    pub container: bool,
    /// Deleted once unmodified for this many ms (leader time) while it has no children.
    pub ttl_ms: Option<u64>,
}

/// One operation of a `Multi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiOp {
    /// Fails the whole multi unless `path` exists (at `version`, if given).
    Check {
        path: String,
        version: Option<u64>,
    },
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        mode: CreateMode,
    },
    Set {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        version: Option<u64>,
    },
    Delete {
        path: String,
        version: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        mode: CreateMode,
    },
    Get {
        path: String,
        consistency: Consistency,
        /// Also set a one-shot watch (needs a session).
        watch: bool,
    },
    /// `version`: only if the node's version equals it.
    Set {
        path: String,
        #[serde(with = "serde_bytes")]
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
        /// Also set a one-shot watch (needs a session).
        watch: bool,
    },
    Children {
        path: String,
        consistency: Consistency,
        /// Also set a one-shot watch (needs a session).
        watch: bool,
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
    /// Start a session (bound to this connection) with this timeout; the server clamps it to
    /// its bounds and answers with the session's id, secret and actual timeout.
    CreateSession {
        timeout_ms: u64,
    },
    /// Bind this connection to an existing session (after a reconnect, maybe to another node).
    AttachSession {
        id: u64,
        secret: Vec<u8>,
    },
    /// End the connection's session now: its ephemeral nodes go.
    CloseSession,
    /// The session's heartbeat.
    Ping,
    /// All of `ops`, atomically, or none.
    Multi {
        ops: Vec<MultiOp>,
    },
    /// Add a watch for the connection's session (it fires for changes after this request).
    AddWatch {
        spec: crate::WatchSpec,
    },
    /// Open the session's event stream on this stream: the server answers with one
    /// `Reply::Event` frame per event, in order, from just after `since` (index, seq), for
    /// `watches` (the session's watches, each with the position it was set at; they replace
    /// any the node knew).
    Events {
        since: (u64, u32),
        watches: Vec<(crate::WatchSpec, (u64, u32))>,
    },
    /// The node's ACL.
    GetAcl {
        path: String,
    },
    /// Replace the node's ACL (needs the admin permission on it).
    SetAcl {
        path: String,
        acl: Vec<crate::AclEntry>,
    },
    /// Deploy a new plugin (admins only). `wasm`: a component, a core module made with
    /// wit-bindgen, or a bare core module following the canonical ABI of `corral:plugin`.
    PluginDeploy {
        name: String,
        #[serde(with = "serde_bytes")]
        wasm: Vec<u8>,
        /// Fuel per call (default: the server's).
        fuel: Option<u64>,
        /// Bytes its key-value namespace may hold (default: the server's).
        quota: Option<u64>,
        /// Who may call (`w`) and query (`r`) it; empty: anyone.
        acl: Vec<crate::AclEntry>,
    },
    /// Replace a plugin's code, keeping its state; its `migrate` runs in the same entry.
    PluginUpgrade {
        name: String,
        #[serde(with = "serde_bytes")]
        wasm: Vec<u8>,
        fuel: Option<u64>,
    },
    /// Remove a plugin and everything it keeps.
    PluginRemove {
        name: String,
    },
    /// The deployed plugins.
    PluginList {
        consistency: Consistency,
    },
    /// Call a plugin's `apply` (a replicated write).
    PluginCall {
        name: String,
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// Call a plugin's `query` on one replica (read-only).
    PluginQuery {
        name: String,
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
        consistency: Consistency,
    },
    /// The connection's session's notifications after `after`; if there are none, wait up to
    /// `wait_ms` for one.
    Notifications {
        after: (u64, u32),
        wait_ms: u64,
    },
    /// The client has handled every notification up to `upto`: they leave the mailbox.
    AckNotifications {
        upto: (u64, u32),
    },
    /// Only as a stream's first frame: make this stream a multiplexed one (see
    /// [`crate::mux`]) speaking this version of it.
    Multiplex {
        version: u32,
    },
}

impl Request {
    /// Whether sending this request twice has the same effect as sending it once. The client
    /// library retries these on another node after a connection loss.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Request::Get { .. }
                | Request::Exists { .. }
                | Request::Children { .. }
                | Request::Sync
                | Request::Status
                | Request::Ping
                | Request::AttachSession { .. }
                | Request::PluginList { .. }
                | Request::PluginQuery { .. }
                | Request::Notifications { .. }
                | Request::AckNotifications { .. }
                | Request::Multiplex { .. }
        )
    }

    /// Whether this request may go through the log, where a session keeps its reply until
    /// `done_below` passes its id. The others are answered by one node and leave nothing
    /// behind, so a client need not count them in `done_below`: a long poll pending for
    /// seconds would otherwise hold back the forgetting of every reply sent meanwhile.
    pub fn is_logged(&self) -> bool {
        !matches!(
            self,
            Request::Get { .. }
                | Request::Exists { .. }
                | Request::Children { .. }
                | Request::Sync
                | Request::Status
                | Request::Ping
                | Request::AttachSession { .. }
                | Request::AddWatch { .. }
                | Request::Events { .. }
                | Request::GetAcl { .. }
                | Request::PluginList { .. }
                | Request::PluginQuery { .. }
                | Request::Notifications { .. }
                | Request::Multiplex { .. }
        )
    }
}

//! What a log entry asks the state machine to do. Built once, on the leader ("prep"), carrying
//! everything apply needs: anything non-deterministic (the time, a session's secret) is
//! decided there.

use corral_proto::{AclEntry, CreateMode, MultiOp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The leader's wall clock when it prepared the command, ms since the Unix epoch.
    pub ts_ms: u64,
    /// The session the request came on (0: none). Its writes are deduplicated by `req`.
    pub session: u64,
    /// The client's request id within the session.
    pub req: u64,
    /// The client has every reply below this request id: older replies may be forgotten.
    pub done_below: u64,
    /// The leader's configured limits, carried so every replica enforces the same ones.
    pub limits: TreeLimits,
    /// Who asks (from the client's certificate), for ACL checks.
    pub identity: String,
    /// The leader found `identity` among its configured admins: no ACL check applies.
    pub admin: bool,
    /// The leader's configured ACL for the root while the root has none of its own.
    pub default_acl: Vec<AclEntry>,
    pub op: Op,
}

/// Limits on the tree's size (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeLimits {
    pub max_children: u64,
    pub max_nodes: u64,
}

impl Command {
    /// A command outside any session, with no ACL check (the system's own, and tests').
    pub fn plain(ts_ms: u64, op: Op) -> Command {
        Command {
            ts_ms,
            session: 0,
            req: 0,
            done_below: 0,
            limits: TreeLimits::default(),
            identity: String::new(),
            admin: true,
            default_acl: Vec::new(),
            op,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
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
    Multi {
        ops: Vec<MultiOp>,
    },
    /// A new session; its id is this entry's index. `secret` was drawn by the leader.
    CreateSession {
        timeout_ms: u64,
        secret: Vec<u8>,
    },
    /// The command's session ends at the client's request.
    CloseSession,
    /// The leader decided these sessions were not heard from for their timeout.
    ExpireSessions {
        ids: Vec<u64>,
    },
    /// Nothing but the passage of (leader) time: lets TTL deadlines fire when idle.
    Tick,
    /// Replace a node's ACL.
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
    },
    /// A new plugin: `code` is the component the leader validated and compiled.
    PluginDeploy {
        name: String,
        #[serde(with = "serde_bytes")]
        code: Vec<u8>,
        hash: String,
        fuel: u64,
        quota: u64,
        acl: Vec<AclEntry>,
    },
    /// New code for a deployed plugin; its `migrate` runs in this entry.
    PluginUpgrade {
        name: String,
        #[serde(with = "serde_bytes")]
        code: Vec<u8>,
        hash: String,
        fuel: Option<u64>,
    },
    PluginRemove {
        name: String,
    },
    PluginCall {
        name: String,
        #[serde(with = "serde_bytes")]
        input: Vec<u8>,
    },
    /// The command's session has handled its notifications up to this position.
    AckNotifications {
        upto: (u64, u32),
    },
    /// Several tree writes from different clients in one entry (group commit: see
    /// `api::batch`), applied in order, each with its own result as if it were alone. They
    /// share the entry's index, as the operations of one `Multi` do; only operations that
    /// need nothing else of the index (see [`Op::batchable`]) are batched.
    Batch {
        cmds: Vec<Command>,
    },
}

impl Op {
    /// Tree writes use the index only as a node's creation / modification stamp, and an
    /// acknowledgement of notifications not at all, so several may share one. A plugin call
    /// gets a position of its own even inside a shared entry (`state::plugins::position`).
    /// Everything else stays alone in its entry: a session's id is its entry's index, so two
    /// sessions made in one entry would collide, and lifecycle entries are rare.
    pub fn batchable(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Set { .. }
                | Op::Delete { .. }
                | Op::Multi { .. }
                | Op::SetAcl { .. }
                | Op::AckNotifications { .. }
                | Op::PluginCall { .. }
        )
    }
}

/// The plugin code that applying an operation may run (see [`Op::plugin_work`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginWork<'a> {
    None,
    /// One call of this plugin: bounded by its fuel.
    Call(&'a str),
    /// An amount not known in advance.
    Unbounded,
}

impl Op {
    /// What plugin code applying this may run: a call runs one plugin up to its fuel; a deploy
    /// or an upgrade compiles (and migrates), a removal drops a whole namespace, and a session's
    /// end runs the `expire` export of every plugin that watches it. A batch: see its commands.
    pub fn plugin_work(&self) -> PluginWork<'_> {
        match self {
            Op::PluginCall { name, .. } => PluginWork::Call(name),
            Op::PluginDeploy { .. }
            | Op::PluginUpgrade { .. }
            | Op::PluginRemove { .. }
            | Op::CloseSession
            | Op::ExpireSessions { .. } => PluginWork::Unbounded,
            _ => PluginWork::None,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            Op::Create { path, data, .. } => write!(f, "create {path} ({} bytes)", data.len()),
            Op::Set { path, data, .. } => write!(f, "set {path} ({} bytes)", data.len()),
            Op::Delete { path, .. } => write!(f, "delete {path}"),
            Op::Multi { ops } => write!(f, "multi ({} ops)", ops.len()),
            Op::CreateSession { timeout_ms, .. } => write!(f, "create session ({timeout_ms} ms)"),
            Op::CloseSession => write!(f, "close session {:#x}", self.session),
            Op::ExpireSessions { ids } => write!(f, "expire sessions {ids:x?}"),
            Op::Tick => f.write_str("tick"),
            Op::SetAcl { path, .. } => write!(f, "set acl {path}"),
            Op::PluginDeploy { name, code, .. } => write!(f, "deploy plugin {name} ({} bytes)", code.len()),
            Op::PluginUpgrade { name, code, .. } => write!(f, "upgrade plugin {name} ({} bytes)", code.len()),
            Op::PluginRemove { name } => write!(f, "remove plugin {name}"),
            Op::PluginCall { name, input } => write!(f, "call plugin {name} ({} bytes)", input.len()),
            Op::AckNotifications { upto } => write!(f, "ack notifications up to {upto:?}"),
            Op::Batch { cmds } => write!(f, "batch of {} writes", cmds.len()),
        }
    }
}

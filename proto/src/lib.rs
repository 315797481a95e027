//! Wire types and framing shared by the corral server (`corral`) and its clients
//! (`corral-client`, and clients in other languages that follow `docs/protocol.md`).
//!
//! This crate owns *data*: requests, replies, errors, stats, path rules and the frame codec.
//! It must never own behaviour: no networking, no storage, no consensus.

pub mod acl;
pub mod error;
pub mod frame;
pub mod mux;
pub mod path;
pub mod plugin;
pub mod request;
pub mod response;
pub mod stat;
pub mod watch;

pub use acl::AclEntry;
pub use error::Error;
pub use plugin::{Notification, PluginInfo};
pub use request::{Consistency, CreateMode, MultiOp, Request, RequestFrame};
pub use response::{MemberInfo, NodeStatus, Reply, Response, ResponseFrame};
pub use stat::Stat;
pub use watch::{Event, EventKind, WatchKind, WatchSpec};

/// ALPN for client connections.
pub const ALPN_CLIENT: &[u8] = b"corral-client/1";
/// ALPN for node-to-node traffic (Raft, forwarding, ReadIndex).
pub const ALPN_PEER: &[u8] = b"corral-peer/1";
/// Default maximum size of a node's data, in bytes (configurable on the server).
pub const DEFAULT_MAX_DATA_BYTES: usize = 1024 * 1024;

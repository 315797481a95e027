//! A node's metadata, as ZooKeeper's `Stat`. "zxid" fields hold the Raft log index of the
//! entry that did the change; times are the leader's clock (ms since the Unix epoch) carried in
//! that entry.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stat {
    /// Log index of the entry that created the node.
    pub czxid: u64,
    /// Log index of the entry that last changed the node's data.
    pub mzxid: u64,
    /// Log index of the entry that last added or removed a child.
    pub pzxid: u64,
    /// Creation time (leader's clock, ms).
    pub ctime: u64,
    /// Last modification time (leader's clock, ms).
    pub mtime: u64,
    /// Number of changes to the data.
    pub version: u64,
    /// Number of changes to the children.
    pub cversion: u64,
    /// Session that owns the node if it is ephemeral, else 0.
    pub ephemeral_owner: u64,
    /// Length of the data in bytes.
    pub data_length: u32,
    /// Number of children.
    pub num_children: u32,
}

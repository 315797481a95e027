//! corral-client: the async Rust client for corral.
//!
//! A [`Client`] holds one QUIC connection (mutual TLS) to one node of an ensemble, chosen from
//! an endpoint list, and moves to another node when that connection is lost. Requests that are
//! safe to repeat (reads, `sync`, `status`) are retried on another node; a write whose reply was
//! lost is reported as [`ClientError::Indeterminate`] rather than silently sent twice. Requests
//! the server refused before doing anything (`NotLeader`, e.g. during an election) are retried
//! until the request timeout.
//!
//! An application depends on this crate only: never on the server's wasmtime, openraft or sled.

mod client;
mod config;
mod error;
mod events;
mod inflight;
mod mailbox;
mod mux;
mod plugins;
pub mod recipes;
pub mod tls;

pub use client::Client;
pub use config::ClientConfig;
pub use corral_proto::{
    acl, AclEntry, Consistency, CreateMode, Error as ServerError, Event, EventKind, MemberInfo, MultiOp, NodeStatus,
    Notification, PluginInfo, Reply, Stat, WatchKind, WatchSpec,
};
pub use error::ClientError;
pub use plugins::DeployOptions;

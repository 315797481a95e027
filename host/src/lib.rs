//! corral: the server library behind the `corral` binary.
//!
//! Module map (arrows: may import), as in ARCHITECTURE.md:
//! `cli` → `server` → `api` → `raft` → `wal`, `state`, `net`.
pub mod api;
pub mod blocking;
pub mod certs;
pub mod cli;
pub mod config;
pub mod net;
pub mod plugin;
pub mod raft;
pub mod server;
pub mod session;
pub mod state;
pub mod wal;
pub mod watch;

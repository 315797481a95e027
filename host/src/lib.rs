//! corral: the server library behind the `corral` binary.
pub mod net;
pub mod raft;
pub mod state;
pub mod wal;

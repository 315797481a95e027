//! corral: the server library behind the `corral` binary.
pub mod state;
pub mod wal;

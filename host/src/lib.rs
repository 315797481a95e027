//! corral: the server library behind the `corral` binary.
pub mod wal;

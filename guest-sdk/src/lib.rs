//! corral-guest: the SDK for writing corral plugins in Rust.
//!
//! Not built yet: the plugin platform (WIT contract, sandbox, replicated deploy) is issue #4.
//! This crate exists so the workspace has its final shape; it exports nothing.

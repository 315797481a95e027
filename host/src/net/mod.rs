//! QUIC endpoints with mutual TLS, ALPNs, identities and the peer connection pool.
//! Knows bytes and certificates, not Raft: what travels over a peer stream is decided in
//! `raft::rpc`.

pub mod faults;
mod identity;
mod pool;
mod tls;

pub use identity::{identity_of, Identity};
pub use pool::{PeerError, PeerPool};
pub use tls::{server_config, TlsFiles};

//! Loading PEM material and building QUIC client configs with mutual TLS. The server reuses
//! these to dial its peers, so both sides of every connection are configured in one place.
//!
//! One crypto provider (ring), passed explicitly to every config: the dependency tree may also
//! contain aws-lc-rs, and rustls refuses to guess between them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ClientError;

/// Server name every node certificate carries, used by clients that know only an address.
pub const NODE_SERVER_NAME: &str = "corral-node";

/// The server name under which node `id` must present its certificate.
pub fn node_server_name(id: u64) -> String {
    format!("node-{id}.corral")
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClientError::Config(format!("cannot read certificate {}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| ClientError::Config(format!("bad certificate {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| ClientError::Config(format!("cannot read private key {}: {e}", path.display())))
}

pub fn root_store(ca: &[CertificateDer<'static>]) -> Result<rustls::RootCertStore, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).map_err(|e| ClientError::Config(format!("bad CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A QUIC client config presenting `chain`/`key`, trusting only `ca`, speaking `alpn`.
pub fn quic_client_config(
    ca: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[u8],
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, ClientError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(e.to_string()))?
        .with_root_certificates(root_store(ca)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| ClientError::Config(format!("client certificate/key: {e}")))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    // No 0-RTT: a replayed early write would be applied twice.
    tls.enable_early_data = false;
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| ClientError::Config(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport(idle_timeout)));
    Ok(cfg)
}

/// Transport settings: keep-alives well inside the idle timeout so a quiet connection stays up
/// and a dead peer is noticed within `idle_timeout`.
pub fn transport(idle_timeout: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(idle_timeout / 3));
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    t
}

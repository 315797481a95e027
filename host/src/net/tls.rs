//! The server side of mutual TLS: only certificates chained to the cluster CA are accepted,
//! on either ALPN; there is no plaintext mode and no 0-RTT.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use corral_client::tls as ctls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// The PEM files a node is configured with, loaded.
pub struct TlsFiles {
    pub ca: Vec<CertificateDer<'static>>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsFiles {
    /// The key QUIC's stateless resets are made with, derived from this node's private key so
    /// that it survives a restart. A restarted node can then reset the connections its
    /// previous life had: a peer or client still sending on one learns at its next packet
    /// that it is dead, and dials again, instead of waiting out the idle timeout (2 s) while
    /// the restarted node, hearing from no leader, starts elections that unseat the live one
    /// (measured: a 2 s outage after each restart of a killed node).
    pub fn reset_key(&self) -> ring::hmac::Key {
        use sha2::Digest;
        let secret = sha2::Sha256::new()
            .chain_update(b"corral stateless reset key\0")
            .chain_update(self.key.secret_der())
            .finalize();
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    }

    /// Load the three files; an error names the config field and the file.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<TlsFiles, String> {
        let ca = ctls::load_certs(ca).map_err(|e| format!("field `tls.ca`: {e}"))?;
        let chain = ctls::load_certs(cert).map_err(|e| format!("field `tls.cert`: {e}"))?;
        let key = ctls::load_key(key).map_err(|e| format!("field `tls.key`: {e}"))?;
        Ok(TlsFiles { ca, chain, key })
    }

    /// Client config for dialing peers (ALPN `corral-peer/1`), presenting this node's cert.
    pub fn peer_client_config(&self, idle: Duration) -> Result<quinn::ClientConfig, String> {
        ctls::quic_client_config(&self.ca, self.chain.clone(), self.key.clone_key(), corral_proto::ALPN_PEER, idle)
            .map_err(|e| e.to_string())
    }
}

pub fn server_config(files: &TlsFiles, idle: Duration) -> Result<quinn::ServerConfig, String> {
    let provider = ctls::provider();
    let roots = ctls::root_store(&files.ca).map_err(|e| e.to_string())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(files.chain.clone(), files.key.clone_key())
        .map_err(|e| format!("node certificate/key: {e}"))?;
    tls.alpn_protocols = vec![corral_proto::ALPN_CLIENT.to_vec(), corral_proto::ALPN_PEER.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(ctls::transport(idle)));
    Ok(cfg)
}

//! Who is on the other end of a connection, read from its (already verified) certificate's
//! DNS subject-alternative names: `node-<id>.corral` for nodes, `<name>.client.corral` for
//! clients (`corral certs` issues both).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Node(u64),
    Client(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Node(id) => write!(f, "node-{id}"),
            Identity::Client(name) => f.write_str(name),
        }
    }
}

pub fn identity_of(conn: &quinn::Connection) -> Result<Identity, String> {
    let any = conn.peer_identity().ok_or("no peer certificate")?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| "unexpected peer identity type")?;
    let leaf = certs.first().ok_or("empty certificate chain")?;
    identity_from_der(leaf)
}

pub fn identity_from_der(der: &[u8]) -> Result<Identity, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?
        .ok_or("certificate has no subjectAltName")?;
    for name in &san.value.general_names {
        if let GeneralName::DNSName(dns) = name {
            if let Some(id) = dns.strip_prefix("node-").and_then(|s| s.strip_suffix(".corral")) {
                if let Ok(id) = id.parse() {
                    return Ok(Identity::Node(id));
                }
            }
            if let Some(client) = dns.strip_suffix(".client.corral") {
                return Ok(Identity::Client(client.to_string()));
            }
        }
    }
    Err("certificate names neither a node nor a client".into())
}

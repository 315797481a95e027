//! Certificates for an ensemble (rcgen): a cluster CA, node certificates that name their node
//! id (`node-<id>.corral`, plus `corral-node` and `localhost` so clients that know only an
//! address can verify any node), and client certificates naming an identity
//! (`<name>.client.corral`, used by ACLs).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// Create a new CA in `dir` (refuses to overwrite one).
pub fn create_ca(dir: &Path) -> Result<()> {
    let (cert_path, key_path) = ca_paths(dir);
    if cert_path.exists() || key_path.exists() {
        bail!("{} already holds a CA; refusing to overwrite it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "corral cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    Ok(())
}

pub fn load_ca(dir: &Path) -> Result<Ca> {
    let (cert_path, key_path) = ca_paths(dir);
    let cert_pem = std::fs::read_to_string(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| format!("parsing {}", key_path.display()))?;
    let params =
        CertificateParams::from_ca_cert_pem(&cert_pem).with_context(|| format!("parsing {}", cert_path.display()))?;
    // Re-signing the same parameters with the same key gives an equivalent issuer.
    let cert = params.self_signed(&key)?;
    Ok(Ca { cert, key })
}

/// Issue `dir/node<id>.pem` + `.key`.
pub fn issue_node(ca: &Ca, dir: &Path, id: u64, extra_hosts: &[String]) -> Result<(PathBuf, PathBuf)> {
    let mut names = vec![format!("node-{id}.corral"), "corral-node".to_string(), "localhost".to_string()];
    names.extend(extra_hosts.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse()?));
    params.distinguished_name.push(DnType::CommonName, format!("corral node {id}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, params, dir, &format!("node{id}"))
}

/// Issue `dir/<name>.pem` + `.key` for a client identity.
pub fn issue_client(ca: &Ca, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("client name {name:?} must be letters, digits and '-'");
    }
    let mut params = CertificateParams::new(vec![format!("{name}.client.corral")])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, params, dir, name)
}

fn issue(ca: &Ca, params: CertificateParams, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(&key_path, &key.serialize_pem())?;
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

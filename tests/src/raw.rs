//! Raw access below the client library: hand-made frames on a QUIC stream, tearing a WAL's
//! tail the way a power cut mid-write would.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use corral_client::{tls, ClientConfig};
use corral_proto::{frame, Response, ResponseFrame};

/// A QUIC connection to `addr` with `cfg`'s certificate, speaking `alpn`.
pub async fn connect(cfg: &ClientConfig, addr: &str, alpn: &[u8]) -> Result<quinn::Connection> {
    let ca = tls::load_certs(&cfg.ca)?;
    let chain = tls::load_certs(&cfg.cert)?;
    let key = tls::load_key(&cfg.key)?;
    let qc = tls::quic_client_config(&ca, chain, key, alpn, Duration::from_secs(5))?;
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(qc);
    let conn = ep.connect(addr.parse()?, tls::NODE_SERVER_NAME)?.await?;
    Ok(conn)
}

/// Send `bytes` as-is on a new stream and read one response frame.
pub async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Response> {
    let (mut tx, mut rx) = conn.open_bi().await?;
    tx.write_all(bytes).await?;
    tx.finish()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), frame::read::<ResponseFrame, _>(&mut rx))
        .await
        .context("no reply")??;
    Ok(resp.response)
}

/// Write a torn record (a header promising more bytes than follow) after the last complete
/// record of the newest WAL segment in `wal_dir`. Returns the offset torn at.
pub fn tear_wal_tail(wal_dir: &Path) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut segs: Vec<_> = std::fs::read_dir(wal_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    let seg = segs.last().context("no WAL segment")?;
    let buf = std::fs::read(seg)?;
    // Walk the records: [len u32][crc u32][len bytes].
    let mut off = 8usize;
    while off + 8 <= buf.len() {
        let len = u32::from_le_bytes(buf[off..off + 4].try_into()?) as usize;
        if len == 0 || off + 8 + len > buf.len() {
            break;
        }
        off += 8 + len;
    }
    let mut torn = 4096u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 100]);
    let f = std::fs::OpenOptions::new().write(true).open(seg)?;
    f.write_all_at(&torn, off as u64)?;
    f.sync_all()?;
    Ok(off as u64)
}

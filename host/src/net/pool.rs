//! Connections to peers, one per peer, reused across RPCs; each RPC is one bidirectional
//! stream carrying one request frame and one response frame.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use corral_client::tls::node_server_name;
use corral_proto::frame;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Nothing reached the peer: safe to retry elsewhere.
    #[error("cannot reach node {0}: {1}")]
    Connect(u64, String),
    /// The request may have reached the peer.
    #[error("rpc to node {0} failed: {1}")]
    Transport(u64, String),
    #[error("rpc to node {0} timed out")]
    Timeout(u64),
}

impl PeerError {
    pub fn nothing_sent(&self) -> bool {
        matches!(self, PeerError::Connect(..))
    }
}

pub struct PeerPool {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    /// One connection per peer id. A tokio mutex only guards the map; dialing happens outside
    /// it so a dead peer does not stall RPCs to live ones.
    conns: Mutex<HashMap<u64, quinn::Connection>>,
    /// Test-only network faults (`[test] net_faults`).
    faults: Option<std::sync::Arc<super::faults::NetFaults>>,
}

impl PeerPool {
    pub fn new(endpoint: quinn::Endpoint, config: quinn::ClientConfig) -> Self {
        PeerPool { endpoint, config, conns: Mutex::new(HashMap::new()), faults: None }
    }

    pub fn with_faults(mut self, faults: Option<std::sync::Arc<super::faults::NetFaults>>) -> Self {
        self.faults = faults;
        self
    }

    /// What the test fault layer decides for a message to `peer` (delivered at once without it).
    pub fn verdict(&self, peer: u64) -> super::faults::Verdict {
        match &self.faults {
            Some(f) => f.verdict(peer),
            None => super::faults::Verdict::Deliver { delay: Duration::ZERO, twice: false },
        }
    }

    async fn connection(&self, target: u64, addr: &str, timeout: Duration) -> Result<quinn::Connection, PeerError> {
        if let Some(c) = self.conns.lock().await.get(&target) {
            if c.close_reason().is_none() && c.remote_address().to_string() == addr {
                return Ok(c.clone());
            }
        }
        let sock: SocketAddr =
            addr.parse().map_err(|e| PeerError::Connect(target, format!("address {addr:?}: {e}")))?;
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), sock, &node_server_name(target))
            .map_err(|e| PeerError::Connect(target, e.to_string()))?;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(PeerError::Connect(target, e.to_string())),
            Err(_) => return Err(PeerError::Connect(target, "connect timed out".into())),
        };
        self.conns.lock().await.insert(target, conn.clone());
        Ok(conn)
    }

    /// One request/response exchange with `target` at `addr`, bounded by `timeout`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: u64,
        addr: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let work = async {
            let twice = match self.verdict(target) {
                super::faults::Verdict::Drop => std::future::pending().await,
                super::faults::Verdict::Deliver { delay, twice } => {
                    tokio::time::sleep(delay).await;
                    twice
                }
            };
            let conn = self.connection(target, addr, timeout).await?;
            if twice {
                // The duplicate's answer is ignored; the receiver must cope with seeing it twice.
                let (conn2, bytes) =
                    (conn.clone(), frame::encode(req).map_err(|e| PeerError::Connect(target, e.to_string()))?);
                tokio::spawn(async move {
                    if let Ok((mut tx, _rx)) = conn2.open_bi().await {
                        let _ = tx.write_all(&bytes).await;
                        let _ = tx.finish();
                    }
                });
            }
            let res = exchange(&conn, req).await;
            if res.is_err() {
                let mut g = self.conns.lock().await;
                if g.get(&target).is_some_and(|c| c.stable_id() == conn.stable_id()) {
                    g.remove(&target);
                }
            }
            res.map_err(|(sent, e)| if sent { PeerError::Transport(target, e) } else { PeerError::Connect(target, e) })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout(target)),
        }
    }

    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

async fn exchange<Req: Serialize, Resp: DeserializeOwned>(
    conn: &quinn::Connection,
    req: &Req,
) -> Result<Resp, (bool, String)> {
    let (mut tx, mut rx) = conn.open_bi().await.map_err(|e| (false, e.to_string()))?;
    let bytes = frame::encode(req).map_err(|e| (false, e.to_string()))?;
    tx.write_all(&bytes).await.map_err(|e| (true, e.to_string()))?;
    let _ = tx.finish();
    frame::read(&mut rx).await.map_err(|e| (true, e.to_string()))
}

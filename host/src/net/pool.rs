//! Connections to peers, one per peer, reused across RPCs; each RPC is one bidirectional
//! stream carrying one request frame and one response frame.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use corral_client::tls::node_server_name;
use corral_proto::frame;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};

#[derive(Debug, Clone, thiserror::Error)]
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

/// How long a dial may take before it is given up (it runs on its own, see `connection`).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The round trip a new connection may start with, beyond which it is taken to have waited for
/// a silent peer (stopped, partitioned) rather than for a far one, and is replaced at once by
/// a fresh dial (see `dial`): four times the least any dial to the peer ended with, plus
/// slack for a loaded machine's handshake; before any was seen, `FIRST_RTT_LIMIT`.
fn rtt_limit(floor: Option<Duration>) -> Duration {
    floor.map_or(FIRST_RTT_LIMIT, |f| f * 4 + Duration::from_millis(20))
}

/// See [`rtt_limit`]: more than a handshake costs across any network an ensemble spans.
const FIRST_RTT_LIMIT: Duration = Duration::from_millis(500);

/// A connection younger than this is kept when its peer dials us (see `peer_reconnected`).
const FRESH: Duration = Duration::from_secs(1);

/// A peer's connection, or the dial that will make it.
enum Slot {
    /// The connection, and when it was made.
    Ready(quinn::Connection, std::time::Instant),
    /// (dial number, address, the outcome once known).
    Dialing(u64, String, watch::Receiver<Option<Result<quinn::Connection, String>>>),
}

type Conns = Arc<Mutex<HashMap<u64, Slot>>>;

/// The least round trip each peer's dials ended with (see [`rtt_limit`]).
type RttFloors = Arc<std::sync::Mutex<HashMap<u64, Duration>>>;

pub struct PeerPool {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    /// One connection per peer id. A tokio mutex only guards the map; dialing happens outside
    /// it so a dead peer does not stall RPCs to live ones.
    conns: Conns,
    dials: std::sync::atomic::AtomicU64,
    rtt_floors: RttFloors,
    /// Test-only network faults (`[test] net_faults`).
    faults: Option<std::sync::Arc<super::faults::NetFaults>>,
}

impl PeerPool {
    pub fn new(endpoint: quinn::Endpoint, config: quinn::ClientConfig) -> Self {
        PeerPool {
            endpoint,
            config,
            conns: Conns::default(),
            dials: Default::default(),
            rtt_floors: Default::default(),
            faults: None,
        }
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

    /// The connection to `target`, dialing it if there is none. The dial runs as its own task,
    /// not inside the caller's timeout: Raft's heartbeats allow 50 ms, and a QUIC + mutual-TLS
    /// handshake on a loaded machine can take longer, so a dial cancelled with each timed-out
    /// RPC could never complete and the peer would stay unreachable after a partition healed
    /// (found by the nemesis, seed 1, partition + membership).
    async fn connection(&self, target: u64, addr: &str, timeout: Duration) -> Result<quinn::Connection, PeerError> {
        let mut outcome = {
            let mut g = self.conns.lock().await;
            match g.get(&target) {
                Some(Slot::Ready(c, _)) if c.close_reason().is_none() && c.remote_address().to_string() == addr => {
                    return Ok(c.clone())
                }
                Some(Slot::Dialing(_, a, rx)) if a == addr => rx.clone(),
                _ => {
                    let no = self.dials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let rx = self.dial(no, target, addr)?;
                    g.insert(target, Slot::Dialing(no, addr.to_string(), rx.clone()));
                    rx
                }
            }
        };
        let waited = match tokio::time::timeout(timeout, outcome.wait_for(|o| o.is_some())).await {
            Ok(Ok(o)) => o.clone(),
            Ok(Err(_)) => None,
            Err(_) => return Err(PeerError::Connect(target, "connect timed out".into())),
        };
        match waited {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(PeerError::Connect(target, e)),
            None => Err(PeerError::Connect(target, "dial abandoned".into())),
        }
    }

    /// Start dial `no` on its own task. When it ends, the task puts the connection in the map
    /// (or clears the slot on failure) if the slot is still this dial's, then tells the waiters.
    fn dial(
        &self,
        no: u64,
        target: u64,
        addr: &str,
    ) -> Result<watch::Receiver<Option<Result<quinn::Connection, String>>>, PeerError> {
        let sock: SocketAddr =
            addr.parse().map_err(|e| PeerError::Connect(target, format!("address {addr:?}: {e}")))?;
        let (endpoint, config, name) = (self.endpoint.clone(), self.config.clone(), node_server_name(target));
        let connect = move || endpoint.connect_with(config.clone(), sock, &name).map_err(|e| e.to_string());
        let connecting = connect().map_err(|e| PeerError::Connect(target, e))?;
        let (tx, rx) = watch::channel(None);
        let (conns, addr) = (self.conns.clone(), addr.to_string());
        let floors = self.rtt_floors.clone();
        tokio::spawn(async move {
            let mut res = finish_dial(connecting).await;
            // A dial that waited for a silent peer starts its connection with a round-trip
            // estimate as long as the wait (the peer answers Initial packets that sat in its
            // socket), and quinn paces and times retransmissions by it: RPCs on it crawl for a
            // second or more. A stopped leader, continued, then heard no append from the new
            // one for ~0.7 s and stood for election, unseating it (failover-stop runs). The
            // peer answers now, so a second dial takes a real sample.
            let floor = floors.lock().unwrap_or_else(|e| e.into_inner()).get(&target).copied();
            if let Some(slow) = res.as_ref().ok().filter(|c| c.rtt() > rtt_limit(floor)) {
                tracing::info!(target, rtt = ?slow.rtt(), ?floor, "a dial waited for a silent peer: dialing again");
                slow.close(0u32.into(), b"redialing: the handshake waited for a silent peer");
                res = match connect() {
                    Ok(connecting) => finish_dial(connecting).await,
                    Err(e) => Err(e),
                };
            }
            if let Ok(c) = &res {
                let rtt = c.rtt();
                let mut floors = floors.lock().unwrap_or_else(|e| e.into_inner());
                floors.entry(target).and_modify(|f| *f = (*f).min(rtt)).or_insert(rtt);
            }
            {
                let mut g = conns.lock().await;
                if matches!(g.get(&target), Some(Slot::Dialing(n, a, _)) if *n == no && *a == addr) {
                    match &res {
                        Ok(c) => g.insert(target, Slot::Ready(c.clone(), std::time::Instant::now())),
                        Err(_) => g.remove(&target),
                    };
                }
            }
            let _ = tx.send(Some(res));
        });
        Ok(rx)
    }

    /// `peer` opened a new connection to us: close ours to it (see `server::peer_conn`),
    /// unless ours is itself new. Without that exception two nodes would close each other's
    /// fresh connections for ever: ours to it is new when it is what made the peer find its
    /// own one stale and dial again (found by the counter test: writes timed out).
    pub async fn peer_reconnected(&self, peer: u64) {
        let mut g = self.conns.lock().await;
        if let Some(Slot::Ready(c, made)) = g.get(&peer) {
            if made.elapsed() >= FRESH {
                c.close(0u32.into(), b"peer reconnected");
                g.remove(&peer);
            }
        }
    }

    /// One request/response exchange with `target` at `addr`, bounded by `timeout`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: u64,
        addr: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        self.exchange_with(target, addr, req, timeout, true).await
    }

    /// `call` for a forwarded client request: the test fault layer may lose or delay it but
    /// never duplicates it. QUIC delivers a stream once; a duplicate would be an application
    /// resend, which a write without a session cannot survive (the nemesis saw a forwarded
    /// compare-and-set applied by its duplicate and answered BadVersion, seed 101).
    pub async fn call_once<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: u64,
        addr: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        self.exchange_with(target, addr, req, timeout, false).await
    }

    async fn exchange_with<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: u64,
        addr: &str,
        req: &Req,
        timeout: Duration,
        may_duplicate: bool,
    ) -> Result<Resp, PeerError> {
        let work = async {
            let verdict = self.verdict(target);
            let twice = matches!(verdict, super::faults::Verdict::Deliver { twice: true, .. }) && may_duplicate;
            verdict.hold().await;
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
                if matches!(g.get(&target), Some(Slot::Ready(c, _)) if c.stable_id() == conn.stable_id()) {
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

/// The handshake's outcome, waited for at most `DIAL_TIMEOUT`.
async fn finish_dial(connecting: quinn::Connecting) -> Result<quinn::Connection, String> {
    match tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".to_string()),
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
    frame::read_last(&mut rx).await.map_err(|e| (true, e.to_string()))
}

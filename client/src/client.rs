//! The client proper: one connection at a time, failover across the endpoint list.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use corral_proto::{
    frame, AclEntry, Consistency, CreateMode, Error as ServerError, MultiOp, NodeStatus, Reply, Request, RequestFrame,
    Response, ResponseFrame, Stat,
};
use tokio::sync::Mutex;

use crate::mux::Mux;
use crate::{tls, ClientConfig, ClientError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// A resendable request unanswered this long makes the client ask its node, on the same
/// connection, whether it is alive (see `node_silent`)...
const SUSPECT_AFTER: Duration = Duration::from_millis(60);
/// ...and a node that does not answer that ping within this is given up for another.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoints", &self.inner.addrs).finish()
    }
}

pub(crate) struct Inner {
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
    addrs: Vec<SocketAddr>,
    /// The live connection and which endpoint it goes to. A tokio mutex: connecting awaits
    /// while holding it, so concurrent requests share one connection attempt.
    conn: Mutex<(Option<quinn::Connection>, usize)>,
    pub(crate) next_id: AtomicU64,
    timeout: Duration,
    /// The highest log index any reply has shown this client: sent with every request so no
    /// node answers from an older state (read-your-writes, monotonic reads).
    seen: AtomicU64,
    /// The session this client holds, if any. Every new connection attaches to it first.
    session: std::sync::Mutex<Option<Session>>,
    /// The session's watches and where its event stream is.
    pub(crate) watches: std::sync::Mutex<crate::events::Watches>,
    /// Held while a watch is being added (sent and recorded) and while the event stream
    /// opens (until the node confirms): the stream's list of watches replaces the node's, so
    /// the two must not interleave.
    pub(crate) watch_gate: Mutex<()>,
    /// Requests still waiting for their reply: what `done_below` says.
    inflight: crate::inflight::Inflight,
    /// Who listens to the session's notifications (see `mailbox`).
    pub(crate) mailbox: crate::mailbox::Mailbox,
    /// Whether requests share one multiplexed stream per connection (the config's
    /// `multiplex`), and that stream.
    multiplex: bool,
    mux: std::sync::Mutex<MuxSlot>,
    /// Held while a multiplexed stream opens, so concurrent requests share one.
    mux_gate: Mutex<()>,
}

/// The multiplexed stream of the current connection.
enum MuxSlot {
    None,
    Open(Arc<Mux>),
    /// The node of this connection (by its id) does not speak it.
    Refused(usize),
}

#[derive(Debug, Clone)]
struct Session {
    id: u64,
    secret: Vec<u8>,
    timeout_ms: u64,
}

pub(crate) enum Attempt {
    /// Nothing reached a server: safe to send again anywhere.
    NotSent(String),
    /// The request may have reached a server.
    Lost(String),
}

impl Client {
    /// Connect to the first reachable endpoint of `cfg`.
    pub async fn connect(cfg: &ClientConfig) -> Result<Client, ClientError> {
        let client = Client::new(cfg)?;
        client.connection().await?;
        Ok(client)
    }

    /// Build a client without connecting yet (the first request connects).
    pub fn new(cfg: &ClientConfig) -> Result<Client, ClientError> {
        let ca = tls::load_certs(&cfg.ca)?;
        let chain = tls::load_certs(&cfg.cert)?;
        let key = tls::load_key(&cfg.key)?;
        let quic = tls::quic_client_config(&ca, chain, key, corral_proto::ALPN_CLIENT, Duration::from_secs(5))?;
        let mut addrs = Vec::new();
        for e in &cfg.endpoints {
            let a = e.parse::<SocketAddr>().map_err(|err| ClientError::Config(format!("endpoint {e:?}: {err}")))?;
            addrs.push(a);
        }
        if addrs.is_empty() {
            return Err(ClientError::Config("no endpoints".into()));
        }
        let bind: SocketAddr = if addrs[0].is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .map_err(|e| ClientError::Config(format!("{e}")))?;
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| ClientError::Connect(format!("bind: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                quic,
                addrs,
                conn: Mutex::new((None, 0)),
                next_id: AtomicU64::new(1),
                seen: AtomicU64::new(0),
                timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
                session: std::sync::Mutex::new(None),
                watches: std::sync::Mutex::new(crate::events::Watches::default()),
                watch_gate: Mutex::new(()),
                inflight: Default::default(),
                mailbox: Default::default(),
                multiplex: cfg.multiplex,
                mux: std::sync::Mutex::new(MuxSlot::None),
                mux_gate: Mutex::new(()),
            }),
        })
    }

    /// The address of the node this client is (or will next be) connected to.
    pub async fn current_endpoint(&self) -> SocketAddr {
        let g = self.inner.conn.lock().await;
        self.inner.addrs[g.1 % self.inner.addrs.len()]
    }

    pub(crate) async fn connection(&self) -> Result<quinn::Connection, ClientError> {
        let mut g = self.inner.conn.lock().await;
        if let Some(c) = &g.0 {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
            g.0 = None;
            g.1 += 1;
        }
        let n = self.inner.addrs.len();
        let mut errors = Vec::new();
        for k in 0..n {
            let i = (g.1 + k) % n;
            let addr = self.inner.addrs[i];
            match self.dial(addr).await {
                Ok(c) => {
                    self.attach(&c).await?;
                    *g = (Some(c.clone()), i);
                    return Ok(c);
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(ClientError::Connect(errors.join("; ")))
    }

    async fn dial(&self, addr: SocketAddr) -> Result<quinn::Connection, String> {
        let connecting = self
            .inner
            .endpoint
            .connect_with(self.inner.quic.clone(), addr, tls::NODE_SERVER_NAME)
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    /// Bind a fresh connection to this client's session, if it has one.
    async fn attach(&self, conn: &quinn::Connection) -> Result<(), ClientError> {
        let Some(sess) = self.session_info() else { return Ok(()) };
        let req = RequestFrame {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            done_below: 0,
            min_index: self.seen_index(),
            body: Request::AttachSession { id: sess.id, secret: sess.secret },
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, self.send(conn, &req)).await {
            Ok(Ok(Response::Ok(_))) => Ok(()),
            Ok(Ok(Response::Err(e))) => {
                if matches!(e, ServerError::SessionExpired { .. }) {
                    *self.inner.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Err(ClientError::Server(e))
            }
            Ok(Err(Attempt::NotSent(e) | Attempt::Lost(e))) => Err(ClientError::Connect(e)),
            Err(_) => Err(ClientError::Connect("attaching the session timed out".into())),
        }
    }

    fn session_info(&self) -> Option<Session> {
        self.inner.session.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn drop_connection(&self, broken: &quinn::Connection) {
        let mut g = self.inner.conn.lock().await;
        if g.0.as_ref().is_some_and(|c| c.stable_id() == broken.stable_id()) {
            g.0 = None;
            g.1 += 1;
        }
    }

    /// Send one request, with failover and the retries that are safe: reads always; writes
    /// too when this client holds a session, because the server answers a resent request id
    /// from the session's replies instead of applying it again.
    /// How long a request may take (the config's `timeout_ms`).
    pub fn request_timeout(&self) -> Duration {
        self.inner.timeout
    }

    pub async fn request(&self, body: Request) -> Result<Reply, ClientError> {
        self.request_within(body, self.inner.timeout).await
    }

    /// `request` with its own time limit (a heartbeat must notice a dead node quickly).
    pub async fn request_within(&self, body: Request, timeout: Duration) -> Result<Reply, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let done_below = self.inner.inflight.begin(id, &body);
        let min_index = self.seen_index();
        let res = self.request_as(RequestFrame { id, done_below, min_index, body }, timeout).await;
        self.inner.inflight.end(id);
        res
    }

    async fn request_as(&self, req: RequestFrame, timeout: Duration) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + timeout;
        let resendable = req.body.is_idempotent()
            || (self.session_info().is_some() && !matches!(req.body, Request::CreateSession { .. }));
        let mut last = String::new();
        // Whether the last attempt failed to reach any node at all.
        let mut unreachable = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(if unreachable { ClientError::Connect(last) } else { ClientError::Timeout(timeout) });
            }
            unreachable = false;
            let conn = match self.connection().await {
                Ok(c) => c,
                Err(ClientError::Connect(e)) => {
                    unreachable = true;
                    last = e;
                    tokio::time::sleep(RETRY_BACKOFF.min(left)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let answer = tokio::select! {
                r = tokio::time::timeout(left, self.send(&conn, &req)) => r,
                _ = self.node_silent(&conn), if resendable => {
                    self.drop_connection(&conn).await;
                    unreachable = true;
                    last = "the node stopped answering".into();
                    continue;
                }
            };
            match answer {
                Ok(Ok(Response::Ok(reply))) => return Ok(reply),
                Ok(Ok(Response::Err(ServerError::NotLeader { .. }))) => {
                    // Refused before anything was done (e.g. an election is running).
                    last = "no leader".into();
                    tokio::time::sleep(RETRY_BACKOFF.min(left)).await;
                }
                Ok(Ok(Response::Err(ServerError::Unavailable { reason }))) if resendable => {
                    last = reason;
                    tokio::time::sleep(RETRY_BACKOFF.min(left)).await;
                }
                Ok(Ok(Response::Err(e))) => return Err(ClientError::Server(e)),
                // No server answered: a dead node, or one that refused our certificate after
                // the handshake (TLS 1.3 lets the client finish first).
                Ok(Err(Attempt::NotSent(e))) => {
                    self.drop_connection(&conn).await;
                    unreachable = true;
                    last = e;
                }
                Ok(Err(Attempt::Lost(e))) => {
                    self.drop_connection(&conn).await;
                    if !resendable {
                        return Err(ClientError::Indeterminate(e));
                    }
                    unreachable = true;
                    last = e;
                }
                Err(_) => {
                    self.drop_connection(&conn).await;
                    if resendable {
                        return Err(ClientError::Timeout(timeout));
                    }
                    return Err(ClientError::Indeterminate("no reply before the timeout".into()));
                }
            }
        }
    }

    /// Resolves only once `conn`'s node looks dead: a request has waited `SUSPECT_AFTER`, and
    /// a ping on the same connection gets no answer within `PROBE_TIMEOUT`. A killed or hung
    /// node sends nothing back (not even a QUIC close), and the connection's idle timeout is
    /// seconds; a node that is merely slow answers the ping, and the request waits on.
    /// Only for resendable requests: the request is then sent again to another node, which
    /// a session makes safe.
    async fn node_silent(&self, conn: &quinn::Connection) {
        loop {
            tokio::time::sleep(SUSPECT_AFTER).await;
            let ping = RequestFrame {
                id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                done_below: 0,
                min_index: 0,
                body: Request::Ping,
            };
            if !matches!(tokio::time::timeout(PROBE_TIMEOUT, send(conn, &ping)).await, Ok(Ok(_))) {
                return;
            }
        }
    }

    /// Start a session with (about) this timeout: the server clamps it to its bounds. The
    /// client then heartbeats it, carries it to another node if its node fails, and its
    /// writes become safe to resend. Returns the session id.
    pub async fn start_session(&self, timeout_ms: u64) -> Result<u64, ClientError> {
        let (id, secret, timeout_ms) = match self.request(Request::CreateSession { timeout_ms }).await? {
            Reply::Session { id, secret, timeout_ms } => (id, secret, timeout_ms),
            other => return Err(unexpected(other)),
        };
        *self.inner.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Session { id, secret, timeout_ms });
        // The connection that created it is bound to it already.
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(heartbeat(weak, id, Duration::from_millis((timeout_ms / 3).max(50))));
        Ok(id)
    }

    /// The highest log index this client has seen in a reply: a causality token another
    /// process can pass to [`Client::observe`].
    pub fn seen_index(&self) -> u64 {
        self.inner.seen.load(Ordering::Acquire)
    }

    /// Never read older state than `index` from now on (e.g. a token from another process).
    pub fn observe(&self, index: u64) {
        self.inner.seen.fetch_max(index, Ordering::AcqRel);
    }

    async fn send(&self, conn: &quinn::Connection, req: &RequestFrame) -> Result<Response, Attempt> {
        let frame = match self.mux_for(conn).await? {
            Some(mux) => mux.call(req).await?,
            None => send(conn, req).await?,
        };
        self.inner.seen.fetch_max(frame.index, Ordering::AcqRel);
        Ok(frame.response)
    }

    /// The multiplexed stream to send on over `conn`, opened if need be; `None`: a stream per
    /// request (turned off, or the node does not speak it).
    async fn mux_for(&self, conn: &quinn::Connection) -> Result<Option<Arc<Mux>>, Attempt> {
        if !self.inner.multiplex {
            return Ok(None);
        }
        let current = || match &*self.inner.mux.lock().unwrap_or_else(|p| p.into_inner()) {
            MuxSlot::Open(m) if m.serves(conn) => Some(Some(m.clone())),
            MuxSlot::Refused(id) if *id == conn.stable_id() => Some(None),
            _ => None,
        };
        if let Some(found) = current() {
            return Ok(found);
        }
        let _gate = self.inner.mux_gate.lock().await;
        if let Some(found) = current() {
            return Ok(found);
        }
        let opened = Mux::open(conn).await?;
        *self.inner.mux.lock().unwrap_or_else(|p| p.into_inner()) = match &opened {
            Some(m) => MuxSlot::Open(m.clone()),
            None => MuxSlot::Refused(conn.stable_id()),
        };
        Ok(opened)
    }

    /// The session id, while this client holds one.
    pub fn session_id(&self) -> Option<u64> {
        self.session_info().map(|s| s.id)
    }

    /// The session's timeout as granted by the server.
    pub fn session_timeout(&self) -> Option<Duration> {
        self.session_info().map(|s| Duration::from_millis(s.timeout_ms))
    }

    /// End the session now: its ephemeral nodes are deleted.
    pub async fn close_session(&self) -> Result<(), ClientError> {
        if self.session_info().is_none() {
            return Ok(());
        }
        let res = self.request(Request::CloseSession).await;
        *self.inner.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
        res.map(|_| ())
    }

    /// Create a node of any kind; returns its actual path (sequential nodes get a suffix).
    pub async fn create_with(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<(String, Stat), ClientError> {
        match self.request(Request::Create { path: path.into(), data: data.to_vec(), mode }).await? {
            Reply::Created { path, stat } => Ok((path, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Apply every operation atomically, or none (`ServerError::MultiFailed` says which failed).
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<Reply>, ClientError> {
        match self.request(Request::Multi { ops }).await? {
            Reply::Multi(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Create a persistent node.
    pub async fn create(&self, path: &str, data: &[u8]) -> Result<Stat, ClientError> {
        self.create_with(path, data, CreateMode::default()).await.map(|(_, stat)| stat)
    }

    pub async fn get(&self, path: &str) -> Result<(Vec<u8>, Stat), ClientError> {
        self.get_with(path, Consistency::Linearizable).await
    }

    pub async fn get_with(&self, path: &str, consistency: Consistency) -> Result<(Vec<u8>, Stat), ClientError> {
        match self.request(Request::Get { path: path.into(), consistency, watch: false }).await? {
            Reply::Data { data, stat } => Ok((data, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Set data; with `version`, only if the node is still at that version.
    pub async fn set(&self, path: &str, data: &[u8], version: Option<u64>) -> Result<Stat, ClientError> {
        match self.request(Request::Set { path: path.into(), data: data.to_vec(), version }).await? {
            Reply::Stat(Some(stat)) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete(&self, path: &str, version: Option<u64>) -> Result<(), ClientError> {
        match self.request(Request::Delete { path: path.into(), version }).await? {
            Reply::Done { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn exists(&self, path: &str, consistency: Consistency) -> Result<Option<Stat>, ClientError> {
        match self.request(Request::Exists { path: path.into(), consistency, watch: false }).await? {
            Reply::Stat(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn children(&self, path: &str, consistency: Consistency) -> Result<Vec<String>, ClientError> {
        match self.request(Request::Children { path: path.into(), consistency, watch: false }).await? {
            Reply::Children(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// The node's ACL.
    pub async fn get_acl(&self, path: &str) -> Result<Vec<AclEntry>, ClientError> {
        match self.request(Request::GetAcl { path: path.into() }).await? {
            Reply::Acl(acl) => Ok(acl),
            other => Err(unexpected(other)),
        }
    }

    /// Replace the node's ACL (needs the admin permission on it, or an admin identity).
    pub async fn set_acl(&self, path: &str, acl: Vec<AclEntry>) -> Result<Stat, ClientError> {
        match self.request(Request::SetAcl { path: path.into(), acl }).await? {
            Reply::Stat(Some(stat)) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// Wait until the connected node has applied everything committed now.
    pub async fn sync(&self) -> Result<u64, ClientError> {
        match self.request(Request::Sync).await? {
            Reply::Done { index } => Ok(index),
            other => Err(unexpected(other)),
        }
    }

    /// The connected node's view of the ensemble.
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        match self.request(Request::Status).await? {
            Reply::Status(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Bootstrap a fresh ensemble whose voters are `members` (id, address).
    pub async fn initialize(&self, members: Vec<(u64, String)>) -> Result<(), ClientError> {
        self.done(Request::Initialize { members }).await
    }

    pub async fn member_add(&self, id: u64, addr: &str, learner: bool) -> Result<(), ClientError> {
        self.done(Request::MemberAdd { id, addr: addr.into(), learner }).await
    }

    pub async fn member_promote(&self, id: u64) -> Result<(), ClientError> {
        self.done(Request::MemberPromote { id }).await
    }

    pub async fn member_remove(&self, id: u64) -> Result<(), ClientError> {
        self.done(Request::MemberRemove { id }).await
    }

    async fn done(&self, req: Request) -> Result<(), ClientError> {
        match self.request(req).await? {
            Reply::Done { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Close the connection politely.
    pub async fn close(&self) {
        let g = self.inner.conn.lock().await;
        if let Some(c) = &g.0 {
            c.close(0u32.into(), b"bye");
        }
        drop(g);
        self.inner.endpoint.wait_idle().await;
    }
}

/// Ping the session every `every` (a third of its timeout) while the client lives and holds
/// that session. A ping that gets no answer within `every` drops the connection, and the
/// next one goes at once to another node (re-attaching the session there): as ZooKeeper's
/// client, the session moves well before it could expire.
async fn heartbeat(inner: Weak<Inner>, id: u64, every: Duration) {
    let mut failed = false;
    loop {
        if !failed {
            tokio::time::sleep(every).await;
        }
        let Some(inner) = inner.upgrade() else { return };
        let client = Client { inner };
        if client.session_id() != Some(id) {
            return;
        }
        match client.request_within(Request::Ping, every).await {
            Err(ClientError::Server(ServerError::SessionExpired { .. })) => {
                *client.inner.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return;
            }
            // Retry at once only after a success, so a cluster that is down is not hammered.
            Err(_) => failed = !failed,
            Ok(_) => failed = false,
        }
    }
}

async fn send(conn: &quinn::Connection, req: &RequestFrame) -> Result<ResponseFrame, Attempt> {
    let (mut tx, mut rx) = conn.open_bi().await.map_err(|e| Attempt::NotSent(e.to_string()))?;
    let bytes = frame::encode(req).map_err(|e| Attempt::NotSent(e.to_string()))?;
    tx.write_all(&bytes).await.map_err(|e| Attempt::Lost(e.to_string()))?;
    let _ = tx.finish();
    frame::read_last(&mut rx).await.map_err(|e| Attempt::Lost(e.to_string()))
}

pub(crate) fn unexpected(r: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {r:?}"))
}

//! The composition root: binds the endpoint, opens storage, starts Raft, accepts connections,
//! and shuts down in order (stop accepting → close connections → Raft → flush storage).

mod client_conn;
mod mux;
mod peer_conn;
mod stream_order;
mod streams;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Api;
use crate::config::NodeConfig;
use crate::net::{server_config, PeerPool, TlsFiles};
use crate::plugin::Plugins;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachine;
use crate::raft::Raft;
use crate::session::Sessions;
use crate::state::{SledStore, State};
use crate::wal::{FaultMode, WalOptions};
use crate::watch::WatchHub;

const ADDR_FILE: &str = "addr";

/// Run a node until `shutdown` is cancelled. `on_ready` gets the bound address.
pub async fn run(cfg: NodeConfig, shutdown: CancellationToken, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let tls = TlsFiles::load(&cfg.tls.ca, &cfg.tls.cert, &cfg.tls.key).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let (heartbeat, el_min, el_max) = cfg.raft.timings();
    // Peers are declared dead by Raft's timers, not QUIC's; the idle timeout only reaps
    // connections to nodes that are gone.
    let idle = Duration::from_millis((el_max * 4).max(2_000));

    let socket = bind(&cfg)?;
    let addr = socket.local_addr()?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::new(Arc::new(tls.reset_key())),
        Some(server_config(&tls, idle).map_err(anyhow::Error::msg)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    crate::wal::atomic_file::save(&cfg.data_dir, ADDR_FILE, addr.to_string().as_bytes())?;
    let faults = cfg.test.net_faults.as_ref().map(|f| {
        tracing::warn!(file = %f.display(), "[test] net_faults is on: peer messages may be lost or late");
        crate::net::faults::NetFaults::watch(f.clone())
    });
    let pool = Arc::new(
        PeerPool::new(endpoint.clone(), tls.peer_client_config(idle).map_err(anyhow::Error::msg)?).with_faults(faults),
    );

    let wal_opts = WalOptions {
        segment_bytes: cfg.test.wal_segment_bytes.unwrap_or(WalOptions::default().segment_bytes),
        fault: match cfg.test.wal_drop_unsynced_ms {
            Some(ms) => FaultMode::DropUnsynced { sync_delay_ms: ms },
            None => FaultMode::Off,
        },
    };
    let log = LogStore::open(&cfg.data_dir, wal_opts).context("opening the Raft log")?;
    let store = SledStore::open(&cfg.data_dir.join("state")).context("opening the state store")?;
    let plugins = Plugins::new(&cfg.plugin_cache_dir()).context("starting the plugin runtime")?;
    let state = State::new(Arc::new(store))
        .with_plugins(plugins.clone())
        .with_divergence(cfg.test.diverge)
        .with_clock_offset_file(cfg.test.clock_offset_file.clone());
    if cfg.test.diverge {
        tracing::warn!("[test] diverge is on: this replica's state deliberately differs");
    }
    let applied_at_start = StateMachine::applied_index(&state).context("reading the applied index")?;
    let watches = Arc::new(WatchHub::new(cfg.limits.watch_history, applied_at_start));
    let state = state.with_sink(watches.clone());
    let power_loss_model = cfg.test.wal_drop_unsynced_ms.is_some();
    let sm = StateMachine::open(&cfg.data_dir, state.clone(), power_loss_model).context("opening the state machine")?;

    let raft_config = openraft::Config {
        cluster_name: "corral".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: el_min,
        election_timeout_max: el_max,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.raft.snapshot_every),
        max_in_snapshot_log_to_keep: cfg.raft.keep_logs,
        install_snapshot_timeout: 2_000.max(el_max * 4),
        // A node away in a partition must not unseat the leader when it is back (patched
        // openraft, vendor/openraft/CORRAL-PATCH.md).
        pre_vote: true,
        ..Default::default()
    }
    .validate()
    .context("raft settings")?;
    let network = Network { id: cfg.id, pool: pool.clone(), retry: Duration::from_millis(heartbeat) };
    let log_bytes = log.clone();
    let raft = Raft::new(cfg.id, Arc::new(raft_config), network, log, sm).await.context("starting raft")?;

    if !cfg.initial_members.is_empty() && !raft.is_initialized().await? {
        let members: std::collections::BTreeMap<u64, openraft::BasicNode> =
            cfg.initial_members.iter().map(|m| (m.id, openraft::BasicNode::new(m.addr.clone()))).collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::info!(error = %e, "not bootstrapping from initial_members");
        }
    }

    let bounds = (cfg.sessions.min_timeout_ms, cfg.sessions.max_timeout_ms);
    let sessions = Arc::new(Sessions::new(cfg.id, raft.clone(), state.clone(), pool.clone(), bounds));
    let api = Arc::new(Api {
        id: cfg.id,
        raft: raft.clone(),
        state,
        pool: pool.clone(),
        limits: cfg.limits.clone(),
        sessions: sessions.clone(),
        watches,
        plugins,
        acl: cfg.acl.parsed().map_err(anyhow::Error::msg)?,
        stale_reads: cfg.test.stale_reads,
        timeout: Duration::from_millis(cfg.raft.request_timeout_ms),
        divergence: Default::default(),
        batcher: crate::api::Batcher::start(raft.clone()),
        forwarder: crate::api::Forwarder::new(pool.clone()),
        read_rounds: crate::api::ReadRounds::new(
            raft.clone(),
            pool.clone(),
            Duration::from_millis(cfg.raft.request_timeout_ms),
        ),
    });
    if cfg.test.stale_reads {
        tracing::warn!("[test] stale_reads is on: linearizable reads are NOT linearizable");
    }
    tracing::info!(id = cfg.id, %addr, "corral node listening");
    on_ready(addr);

    let tracker = TaskTracker::new();
    tracker.spawn(sessions.run(shutdown.clone()));
    tracker.spawn(crate::api::divergence_check(api.clone(), shutdown.clone()));
    tracker.spawn(crate::raft::log_memory::run(
        raft.clone(),
        log_bytes,
        crate::raft::state_machine::snapshot_file(&cfg.data_dir),
        cfg.raft.clone(),
        shutdown.clone(),
    ));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let api = api.clone();
                let stop = shutdown.clone();
                tracker.spawn(async move {
                    if let Err(e) = accept(incoming, api, stop).await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
        }
    }

    tracing::info!("shutting down");
    endpoint.close(0u32.into(), b"shutting down");
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    raft.shutdown().await.ok();
    api.state.flush().context("flushing the state store")?;
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(())
}

/// Bind the UDP socket. Port 0 picks a port on the first start and reuses it afterwards (the
/// address is in the membership, so a restarted node must come back where it was).
fn bind(cfg: &NodeConfig) -> Result<UdpSocket> {
    let mut addr: SocketAddr = cfg.listen.parse().context("field `listen`")?;
    if addr.port() == 0 {
        if let Ok(Some(prev)) = crate::wal::atomic_file::load(&cfg.data_dir, ADDR_FILE) {
            if let Some(prev) = std::str::from_utf8(&prev).ok().and_then(|s| s.parse::<SocketAddr>().ok()) {
                addr = prev;
            }
        }
    }
    UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))
}

async fn accept(incoming: quinn::Incoming, api: Arc<Api>, stop: CancellationToken) -> Result<()> {
    let conn = incoming.await?;
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol);
    match alpn.as_deref() {
        Some(a) if a == corral_proto::ALPN_PEER => peer_conn::serve(conn, api, stop).await,
        Some(a) if a == corral_proto::ALPN_CLIENT => client_conn::serve(conn, api, stop).await,
        _ => {
            conn.close(1u32.into(), b"unknown ALPN");
            Ok(())
        }
    }
}

//! `node.toml`: one node's configuration. A bad file is a one-line error naming the file and
//! the field (`corral serve` exits non-zero with it).
//!
//! ```toml
//! id = 1
//! listen = "127.0.0.1:0"      # port 0: pick one on first start, then keep it (data_dir/addr)
//! data_dir = "node1"          # relative paths are relative to this file
//! plugin_cache = "cache"      # optional; compiled plugins (default data_dir/plugin-cache)
//! [tls]
//! ca = "ca.pem"
//! cert = "node1.pem"
//! key = "node1.key"
//! [raft]                      # optional; profile "lan" (default) or "wan" sets the timings
//! profile = "lan"
//! [limits]
//! max_data_bytes = 1048576
//! [[initial_members]]         # optional: bootstrap a fixed-address ensemble on first start
//! id = 1
//! addr = "10.0.0.1:7000"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// More worker threads than this is a typo, not a machine.
pub const MAX_WORKER_THREADS: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: u64,
    pub listen: String,
    pub data_dir: PathBuf,
    /// Threads for the node's network and request handling (the state machine, the WAL and
    /// the write-back have their own). Default: one per core. Nodes that share a machine
    /// should divide its cores (`corral dev` does): each node's idle threads are otherwise
    /// woken for every packet, and the wake-ups cost more than the work they share.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// Where compiled plugins are kept (default: `data_dir/plugin-cache`). Nodes of one machine
    /// may share it (`corral dev` does): the leader compiles an upload before proposing it, so
    /// the others load its artifact instead of compiling their own. Artifacts are keyed by the
    /// code's hash and the engine's settings, and written whole or not at all.
    #[serde(default)]
    pub plugin_cache: Option<PathBuf>,
    pub tls: TlsConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sessions: SessionBounds,
    #[serde(default)]
    pub acl: AclSettings,
    #[serde(default)]
    pub initial_members: Vec<Member>,
    /// Test-only hooks; never set in production.
    #[serde(default)]
    pub test: TestHooks,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: u64,
    pub addr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// One datacenter: failures detected in a few hundred ms.
    #[default]
    Lan,
    /// Datacenters 50–150 ms apart: slower heartbeats and elections, no spurious elections.
    Wan,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    pub profile: Profile,
    /// Override the profile's heartbeat interval.
    pub heartbeat_ms: Option<u64>,
    pub election_min_ms: Option<u64>,
    pub election_max_ms: Option<u64>,
    /// Take a snapshot (and purge the WAL behind it) every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the WAL behind a snapshot, for followers that are only a little behind.
    pub keep_logs: u64,
    /// Also take a snapshot once the log since the last one holds this many bytes (encoded;
    /// a small write takes several times as much in memory), or the last snapshot's size if
    /// larger (so that a large state is not rewritten for every few MB of log). The log is
    /// kept in memory until a snapshot lets it go: counted in entries alone, a log of large
    /// values could outgrow the machine's memory before `snapshot_every` came round.
    pub snapshot_log_bytes: u64,
    /// At most this many bytes of entries are kept behind a snapshot, whatever `keep_logs`
    /// allows.
    pub keep_log_bytes: u64,
    /// How long a client request may wait for a leader or a quorum.
    pub request_timeout_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            profile: Profile::Lan,
            heartbeat_ms: None,
            election_min_ms: None,
            election_max_ms: None,
            snapshot_every: 20_000,
            keep_logs: 5_000,
            snapshot_log_bytes: 32 << 20,
            keep_log_bytes: 8 << 20,
            request_timeout_ms: 5_000,
        }
    }
}

/// Timings in ms: (heartbeat, election min, election max).
impl RaftConfig {
    pub fn timings(&self) -> (u64, u64, u64) {
        let (h, lo, hi) = match self.profile {
            Profile::Lan => (50, 150, 300),
            Profile::Wan => (300, 1500, 3000),
        };
        (self.heartbeat_ms.unwrap_or(h), self.election_min_ms.unwrap_or(lo), self.election_max_ms.unwrap_or(hi))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_data_bytes: usize,
    /// Events each node keeps for watchers that reconnect (older: `ResyncNeeded`).
    pub watch_history: usize,
    /// Children one node may have (0: no limit).
    pub max_children: u64,
    /// Nodes in the whole tree (0: no limit).
    pub max_nodes: u64,
    /// Bytes a plugin's key-value namespace may hold unless its deploy says otherwise.
    pub plugin_quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_data_bytes: corral_proto::DEFAULT_MAX_DATA_BYTES,
            watch_history: 100_000,
            max_children: 1_000_000,
            max_nodes: 50_000_000,
            plugin_quota_bytes: 64 << 20,
        }
    }
}

/// `[acl]`: who bypasses every check, and the root's ACL until one is set on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclSettings {
    pub admins: Vec<String>,
    /// e.g. `"*:rwcda"` (anyone may do anything: ZooKeeper's open default) or `"*:r"`.
    pub default: String,
}

impl Default for AclSettings {
    fn default() -> Self {
        AclSettings { admins: Vec::new(), default: "*:rwcda".into() }
    }
}

/// The `[acl]` settings, parsed.
#[derive(Debug, Clone, Default)]
pub struct AclConfig {
    pub admins: Vec<String>,
    pub default: Vec<corral_proto::AclEntry>,
}

impl AclSettings {
    pub fn parsed(&self) -> Result<AclConfig, String> {
        let default = corral_proto::acl::parse(&self.default).map_err(|e| format!("field `acl.default`: {e}"))?;
        Ok(AclConfig { admins: self.admins.clone(), default })
    }
}

/// Session timeouts clients may ask for are clamped into [min, max].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionBounds {
    pub min_timeout_ms: u64,
    pub max_timeout_ms: u64,
}

impl Default for SessionBounds {
    fn default() -> Self {
        SessionBounds { min_timeout_ms: 1_000, max_timeout_ms: 60_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TestHooks {
    /// Power-loss model: the WAL keeps unsynced bytes in memory for this many ms before
    /// syncing, so a kill -9 drops them (see `wal::FaultMode`), and on start the state store
    /// falls back to its last fsynced point, the latest snapshot.
    pub wal_drop_unsynced_ms: Option<u64>,
    /// WAL segment size (small values exercise rolling and purging).
    pub wal_segment_bytes: Option<u64>,
    /// A deliberate bug, to prove the linearizability checker can fail: serve linearizable
    /// reads from the local replica without asking the leader (ReadIndex skipped).
    pub stale_reads: bool,
    /// A deliberate divergence, to prove the digest check can fail: this node's state
    /// machine also writes a key no other replica writes.
    pub diverge: bool,
    /// Network faults between this node and its peers, from this JSON file (see
    /// `net::faults`), re-read when it changes.
    pub net_faults: Option<std::path::PathBuf>,
    /// This node's wall clock is off by the milliseconds in this file, re-read at every use
    /// (a clock that jumps). Leader time must not care (see `state::clock`).
    pub clock_offset_file: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {msg}")]
pub struct ConfigError {
    pub file: String,
    pub msg: String,
}

impl NodeConfig {
    /// Where compiled plugins are kept.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugin_cache.clone().unwrap_or_else(|| self.data_dir.join("plugin-cache"))
    }

    /// Read and check `path`. Relative paths inside are resolved against its directory.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let err = |msg: String| ConfigError { file: path.display().to_string(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let de = toml::Deserializer::new(&text);
        let mut cfg: NodeConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().replace('\n', " ");
            if field == "." {
                err(msg)
            } else {
                err(format!("field `{field}`: {msg}"))
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.data_dir, &mut cfg.tls.ca, &mut cfg.tls.cert, &mut cfg.tls.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let optional = [cfg.plugin_cache.as_mut(), cfg.test.net_faults.as_mut(), cfg.test.clock_offset_file.as_mut()];
        for p in optional.into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        cfg.check().map_err(err)?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("field `listen`: {:?} is not an address: {e}", self.listen))?;
        if let Some(n) = self.worker_threads {
            if n == 0 || n > MAX_WORKER_THREADS {
                return Err(format!("field `worker_threads`: {n} must be between 1 and {MAX_WORKER_THREADS}"));
            }
        }
        let (h, lo, hi) = self.raft.timings();
        if h == 0 || h >= lo {
            return Err(format!("field `raft.heartbeat_ms`: {h} must be above 0 and below the election timeout {lo}"));
        }
        if lo >= hi {
            return Err(format!("field `raft.election_min_ms`: {lo} must be below `raft.election_max_ms` {hi}"));
        }
        if self.raft.snapshot_every == 0 {
            return Err("field `raft.snapshot_every`: must be above 0".into());
        }
        if self.raft.snapshot_log_bytes == 0 {
            return Err("field `raft.snapshot_log_bytes`: must be above 0".into());
        }
        if self.limits.max_data_bytes == 0 || self.limits.max_data_bytes > corral_proto::frame::MAX_FRAME_BYTES / 2 {
            return Err(format!(
                "field `limits.max_data_bytes`: must be between 1 and {}",
                corral_proto::frame::MAX_FRAME_BYTES / 2
            ));
        }
        if self.sessions.min_timeout_ms == 0 || self.sessions.min_timeout_ms > self.sessions.max_timeout_ms {
            return Err("field `sessions.min_timeout_ms`: must be above 0 and at most `sessions.max_timeout_ms`".into());
        }
        self.acl.parsed()?;
        for m in &self.initial_members {
            m.addr
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("field `initial_members`: member {} address {:?}: {e}", m.id, m.addr))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("node.toml");
        std::fs::write(&p, text).expect("write");
        NodeConfig::load(&p)
    }

    const GOOD: &str = "id = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    #[test]
    fn good_config_resolves_relative_paths() {
        let cfg = load(GOOD).expect("good");
        assert!(cfg.data_dir.is_absolute());
        assert_eq!(cfg.raft.timings(), (50, 150, 300));
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        let cases = [
            (GOOD.replace("id = 1", "id = \"one\""), "field `id`"),
            (GOOD.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""), "field `listen`"),
            (format!("{GOOD}[raft]\nheartbeat_ms = 500\n"), "field `raft.heartbeat_ms`"),
            (format!("{GOOD}[raft]\nprofile = \"moon\"\n"), "field `raft.profile`"),
            (format!("{GOOD}[raft]\nsnapshot_log_bytes = 0\n"), "field `raft.snapshot_log_bytes`"),
            (format!("{GOOD}bogus = 1\n"), "bogus"),
            (GOOD.replace("cert = \"c.pem\"\n", ""), "missing field `cert`"),
            (GOOD.replace("data_dir = \"d\"\n", "data_dir = \"d\"\nworker_threads = 0\n"), "field `worker_threads`"),
        ];
        for (text, want) in cases {
            let e = load(&text).expect_err("must fail").to_string();
            assert!(e.contains(want), "{e:?} does not mention {want:?}");
            assert!(e.contains("node.toml"), "{e:?} does not name the file");
            assert!(!e.contains('\n'), "{e:?} spans lines");
        }
    }

    #[test]
    fn the_plugin_cache_is_under_the_data_dir_unless_set() {
        let cfg = load(GOOD).expect("good");
        assert_eq!(cfg.plugin_cache_dir(), cfg.data_dir.join("plugin-cache"));
        let shared = load(&GOOD.replace("data_dir = \"d\"\n", "data_dir = \"d\"\nplugin_cache = \"cache\"\n"));
        let shared = shared.expect("good");
        assert!(shared.plugin_cache_dir().is_absolute(), "relative to the file");
        assert!(shared.plugin_cache_dir().ends_with("cache"));
    }

    #[test]
    fn worker_threads_is_optional_and_kept() {
        assert_eq!(load(GOOD).expect("good").worker_threads, None);
        let two = GOOD.replace("data_dir = \"d\"\n", "data_dir = \"d\"\nworker_threads = 2\n");
        assert_eq!(load(&two).expect("good").worker_threads, Some(2));
    }
}

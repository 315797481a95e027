//! A cluster of real `corral serve` processes in a temporary directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_client::{Client, ClientConfig, NodeStatus};

use crate::proc::{corral_cmd, signal};

/// Per-node settings written into each node.toml.
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    pub snapshot_every: Option<u64>,
    pub keep_logs: Option<u64>,
    pub snapshot_log_bytes: Option<u64>,
    pub keep_log_bytes: Option<u64>,
    pub wal_segment_bytes: Option<u64>,
    pub wal_drop_unsynced_ms: Option<u64>,
    pub max_data_bytes: Option<usize>,
    pub max_children: Option<u64>,
    /// The deliberate stale-read bug (see `[test] stale_reads`).
    pub stale_reads: bool,
    /// This node's state deliberately diverges (`[test] diverge`).
    pub diverge_node: Option<u64>,
    /// Every node reads network faults from `node<id>.faults.json` (see [`Cluster::faults`]).
    pub net_faults: bool,
    /// The WAN timing profile (`[raft] profile = "wan"`).
    pub wan: bool,
    /// Every node's wall clock is offset by `node<id>.clock` (see [`Cluster::clock_jump`]).
    pub clock_offsets: bool,
    /// The node's runtime threads (`worker_threads`; default: one per core).
    pub worker_threads: Option<usize>,
}

struct Node {
    child: Option<Child>,
    addr: String,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    nodes: BTreeMap<u64, Node>,
    opts: NodeOpts,
    pub client_cfg: ClientConfig,
}

fn run_corral(args: &[&str]) -> Result<()> {
    let out = corral_cmd().args(args).stdout(Stdio::null()).output().context("running corral")?;
    if !out.status.success() {
        bail!("corral {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Cluster {
    /// Start `n` nodes and bootstrap them into one ensemble; returns once there is a leader.
    pub async fn start(n: u64, opts: NodeOpts) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().to_str().context("utf-8 temp dir")?.to_string();
        run_corral(&["certs", "ca", "--dir", &d])?;
        run_corral(&["certs", "client", "--dir", &d, "--name", "admin"])?;
        let client_cfg = ClientConfig {
            endpoints: vec![],
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("admin.pem"),
            key: dir.path().join("admin.key"),
            timeout_ms: 10_000,
            multiplex: true,
        };
        let mut c = Cluster { dir, nodes: BTreeMap::new(), opts, client_cfg };
        for id in 1..=n {
            c.spawn_new(id).await?;
        }
        let members: Vec<(u64, String)> = c.nodes.iter().map(|(id, n)| (*id, n.addr.clone())).collect();
        c.client_on(1)?.initialize(members).await.context("initialize")?;
        c.wait_leader(Duration::from_secs(20)).await?;
        Ok(c)
    }

    fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    fn config_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}.toml"))
    }

    /// Create certificates and config for node `id` and start it (not yet a member).
    pub async fn spawn_new(&mut self, id: u64) -> Result<String> {
        let d = self.dir.path().to_str().context("utf-8")?.to_string();
        run_corral(&["certs", "node", "--dir", &d, "--id", &id.to_string()])?;
        let o = &self.opts;
        let workers = o.worker_threads.map(|n| format!("worker_threads = {n}\n")).unwrap_or_default();
        let mut text = format!(
            "id = {id}\nlisten = \"127.0.0.1:0\"\ndata_dir = \"node{id}\"\n{workers}[tls]\nca = \"ca.pem\"\ncert = \"node{id}.pem\"\nkey = \"node{id}.key\"\n[raft]\nrequest_timeout_ms = 3000\n"
        );
        if o.wan {
            text += "profile = \"wan\"\n";
        }
        if let Some(v) = o.snapshot_every {
            text += &format!("snapshot_every = {v}\n");
        }
        if let Some(v) = o.keep_logs {
            text += &format!("keep_logs = {v}\n");
        }
        if let Some(v) = o.snapshot_log_bytes {
            text += &format!("snapshot_log_bytes = {v}\n");
        }
        if let Some(v) = o.keep_log_bytes {
            text += &format!("keep_log_bytes = {v}\n");
        }
        text += "[acl]\nadmins = [\"admin\"]\n[limits]\n";
        if let Some(v) = o.max_data_bytes {
            text += &format!("max_data_bytes = {v}\n");
        }
        if let Some(v) = o.max_children {
            text += &format!("max_children = {v}\n");
        }
        text += "[test]\n";
        if let Some(v) = o.wal_segment_bytes {
            text += &format!("wal_segment_bytes = {v}\n");
        }
        if o.stale_reads {
            text += "stale_reads = true\n";
        }
        if o.diverge_node == Some(id) {
            text += "diverge = true\n";
        }
        if o.net_faults {
            text += &format!("net_faults = \"node{id}.faults.json\"\n");
        }
        if o.clock_offsets {
            text += &format!("clock_offset_file = \"node{id}.clock\"\n");
        }
        if let Some(v) = o.wal_drop_unsynced_ms {
            text += &format!("wal_drop_unsynced_ms = {v}\n");
        }
        std::fs::write(self.config_path(id), text)?;
        self.nodes.insert(id, Node { child: None, addr: String::new() });
        self.restart(id).await?;
        Ok(self.addr(id))
    }

    /// (Re)start node `id`'s process and wait until it has bound its address.
    pub async fn restart(&mut self, id: u64) -> Result<()> {
        let nd = self.node_dir(id);
        std::fs::create_dir_all(&nd)?;
        let addr_file = nd.join("addr");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(nd.join("log"))?;
        // A fresh start writes addr anew; remember the old one to tell them apart.
        let before = std::fs::metadata(&addr_file).and_then(|m| m.modified()).ok();
        let child = corral_cmd()
            .arg("serve")
            .arg("--config")
            .arg(self.config_path(id))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning corral serve")?;
        self.nodes.get_mut(&id).context("unknown node")?.child = Some(child);
        let path = addr_file.clone();
        crate::eventually(Duration::from_secs(20), "node to bind", || {
            let path = path.clone();
            async move {
                let now = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                now.is_some() && now != before
            }
        })
        .await?;
        let bytes = std::fs::read(&addr_file)?;
        let addr = String::from_utf8(bytes.get(4..).unwrap_or_default().to_vec())?;
        self.nodes.get_mut(&id).context("unknown node")?.addr = addr;
        self.refresh_endpoints();
        Ok(())
    }

    fn refresh_endpoints(&mut self) {
        self.client_cfg.endpoints = self.nodes.values().map(|n| n.addr.clone()).collect();
    }

    /// Set node `id`'s network faults (a JSON spec, see the server's `net::faults`; `{}` for
    /// none). Needs `NodeOpts::net_faults`. The node picks it up within ~20 ms.
    pub fn faults(&self, id: u64, spec: serde_json::Value) -> Result<()> {
        let path = self.dir.path().join(format!("node{id}.faults.json"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, spec.to_string())?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Make node `id`'s wall clock jump to `offset_ms` from the true time (0: back to true).
    /// Needs `NodeOpts::clock_offsets`.
    pub fn clock_jump(&self, id: u64, offset_ms: i64) -> Result<()> {
        let path = self.dir.path().join(format!("node{id}.clock"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, offset_ms.to_string())?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Kill node `id` and delete everything it stored but its address (so it comes back on the
    /// same port, as an empty node: what re-adding a replaced machine looks like).
    pub fn wipe(&mut self, id: u64) -> Result<()> {
        self.kill(id);
        for entry in std::fs::read_dir(self.node_dir(id))? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == "addr" || n == "log") {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Split the ensemble into `groups`: no message crosses between groups.
    pub fn partition(&self, groups: &[&[u64]]) -> Result<()> {
        for g in groups {
            let others: Vec<u64> = groups.iter().filter(|o| *o != g).flat_map(|o| o.iter().copied()).collect();
            for id in *g {
                self.faults(*id, serde_json::json!({ "drop_to": others }))?;
            }
        }
        Ok(())
    }

    /// No more network faults.
    pub fn heal(&self) -> Result<()> {
        for id in self.ids() {
            self.faults(id, serde_json::json!({}))?;
        }
        Ok(())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes.get(&id).map(|n| n.addr.clone()).unwrap_or_default()
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes.get(&id).and_then(|n| n.child.as_ref()).map(|c| c.id())
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A power cut: kill -9, then zero every WAL byte that had not been fdatasynced (nodes must
    /// run with `wal_drop_unsynced_ms`, which records the synced length of each segment).
    pub fn power_cut(&mut self, id: u64) -> Result<()> {
        self.kill(id);
        for entry in std::fs::read_dir(self.wal_dir(id))? {
            let seg = entry?.path();
            if seg.extension().is_none_or(|x| x != "wal") {
                continue;
            }
            let mark = std::fs::read(seg.with_extension("synced"))
                .with_context(|| format!("{}: no synced mark (is the power-loss mode on?)", seg.display()))?;
            let synced = u64::from_le_bytes(mark.as_slice().try_into().context("bad synced mark")?);
            let f = std::fs::OpenOptions::new().write(true).open(&seg)?;
            let len = f.metadata()?.len();
            if len > synced {
                f.set_len(synced)?;
                f.set_len(len)?;
            }
        }
        Ok(())
    }

    /// Stop the process from running (a hung node) or let it run again.
    pub fn pause(&self, id: u64, paused: bool) {
        if let Some(pid) = self.pid(id) {
            signal(pid, if paused { libc::SIGSTOP } else { libc::SIGCONT });
        }
    }

    /// Forget a node entirely (after it was removed from the membership).
    pub fn forget(&mut self, id: u64) {
        self.kill(id);
        self.nodes.remove(&id);
        self.refresh_endpoints();
    }

    pub fn wal_dir(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("wal")
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("log")
    }

    /// `client.toml` for the CLI, over every node's address.
    pub fn client_config_file(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("client.toml");
        std::fs::write(&path, toml::to_string(&self.client_cfg)?)?;
        Ok(path)
    }

    /// A `corral` CLI command pointed at this cluster.
    pub fn cli(&self) -> Result<std::process::Command> {
        let mut cmd = corral_cmd();
        cmd.arg("--config").arg(self.client_config_file()?);
        Ok(cmd)
    }

    /// A client over every node's address.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.client_cfg)?)
    }

    /// A client over every node with a certificate for identity `name` (issued on demand).
    pub fn client_as(&self, name: &str) -> Result<Client> {
        let d = self.dir.path().to_str().context("utf-8")?.to_string();
        if !self.dir.path().join(format!("{name}.pem")).exists() {
            run_corral(&["certs", "client", "--dir", &d, "--name", name])?;
        }
        let cfg = ClientConfig {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
            ..self.client_cfg.clone()
        };
        Ok(Client::new(&cfg)?)
    }

    /// A client that talks to node `id` only.
    pub fn client_on(&self, id: u64) -> Result<Client> {
        Ok(Client::new(&self.client_cfg.pinned(&self.addr(id)))?)
    }

    pub async fn status(&self, id: u64) -> Result<NodeStatus> {
        let mut cfg = self.client_cfg.pinned(&self.addr(id));
        cfg.timeout_ms = 1_000;
        Ok(Client::new(&cfg)?.status().await?)
    }

    /// The leader that every running node agrees on.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<u64> {
        let running: Vec<u64> = self.nodes.iter().filter(|(_, n)| n.child.is_some()).map(|(id, _)| *id).collect();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for id in &running {
                leaders.push(self.status(*id).await.ok().and_then(|s| s.leader));
            }
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) && running.contains(l) {
                    return Ok(*l);
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("no agreed leader after {timeout:?}: {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, timeout: Duration) -> Result<()> {
        crate::eventually(timeout, &format!("node {id} to apply {index}"), || async move {
            self.status(id).await.map(|s| s.applied_index >= index).unwrap_or(false)
        })
        .await
    }

    /// Every running node has applied `last` and reports the same state digest after the same
    /// entry, and none has raised a divergence alarm: the replicas agree. Their statuses.
    pub async fn replicas_agree(&self, last: u64, timeout: Duration) -> Result<Vec<NodeStatus>> {
        let ids: Vec<u64> = self.nodes.iter().filter(|(_, n)| n.child.is_some()).map(|(id, _)| *id).collect();
        for &id in &ids {
            self.wait_applied(id, last, timeout).await?;
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut rows = Vec::new();
        loop {
            rows.clear();
            for &id in &ids {
                rows.push(self.status(id).await?);
            }
            if rows.iter().all(|s| s.digest_index == rows[0].digest_index && s.applied_index >= last) {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("nodes never reached the same digest index: {rows:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for s in &rows {
            if s.digest != rows[0].digest {
                bail!("node {} differs from node {} at index {}", s.id, rows[0].id, s.digest_index);
            }
            if let Some(alarm) = &s.divergence {
                bail!("node {} raised a divergence alarm: {alarm:?}", s.id);
            }
        }
        Ok(rows)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() || std::env::var_os("CORRAL_TEST_KEEP").is_some() {
            // Keep the logs of a failed test where a person can read them.
            if let Ok(spare) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, spare).keep();
                eprintln!("cluster logs kept in {}", kept.display());
            }
        }
    }
}

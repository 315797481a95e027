//! `corral dev`: a local ensemble in one command. Creates (once) a CA, node and client
//! certificates and node configs under DIR, starts N `corral serve` children on 127.0.0.1
//! (ports picked by the OS on first start, kept afterwards), bootstraps the ensemble, writes
//! `DIR/client.toml`, prints one line when every node sees the same leader, restarts a node
//! that dies, and stops the children on Ctrl-C or SIGTERM. Running it again on the same DIR restarts the same ensemble
//! with its data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use corral_client::{Client, ClientConfig};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::certs;
use crate::wal::atomic_file;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

pub async fn run(dir: &Path, n: u64, json_mode: bool) -> Result<()> {
    if n == 0 || n > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    prepare(&dir, n)?;
    let exe = std::env::current_exe().context("locating the corral binary")?;
    let mut children = Vec::new();
    for id in 1..=n {
        children.push(spawn_node(&exe, &dir, id)?);
    }
    let result = bring_up(&dir, n, json_mode).await;
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    } else {
        tokio::select! {
            _ = super::shutdown_signal() => {}
            _ = supervise(&exe, &dir, &mut children) => {}
        }
    }
    stop_children(&dir, children).await;
    result
}

fn node_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}"))
}

/// Certificates and configs, created once and reused afterwards.
fn prepare(dir: &Path, n: u64) -> Result<()> {
    if !certs::ca_paths(dir).0.exists() {
        certs::create_ca(dir)?;
    }
    let ca = certs::load_ca(dir)?;
    if !dir.join("admin.pem").exists() {
        certs::issue_client(&ca, dir, "admin")?;
    }
    for id in 1..=n {
        if !dir.join(format!("node{id}.pem")).exists() {
            certs::issue_node(&ca, dir, id, &[])?;
        }
        let cfg = dir.join(format!("node{id}.toml"));
        if !cfg.exists() {
            std::fs::write(&cfg, node_toml(id, n)).with_context(|| format!("writing {}", cfg.display()))?;
        }
        std::fs::create_dir_all(node_dir(dir, id))?;
    }
    Ok(())
}

/// Node `id`'s config in an ensemble of `n` on this machine: the nodes divide the cores, and
/// share compiled plugins (one compiles a recipe, the others load it).
fn node_toml(id: u64, n: u64) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let workers = (cores / n as usize).max(1);
    format!(
        "id = {id}\nlisten = \"127.0.0.1:0\"\ndata_dir = \"node{id}\"\n\
         # The {n} nodes share this machine's {cores} cores.\nworker_threads = {workers}\n\
         plugin_cache = \"plugin-cache\"\n\n\
         [tls]\nca = \"ca.pem\"\ncert = \"node{id}.pem\"\nkey = \"node{id}.key\"\n\n\
         [acl]\nadmins = [\"admin\"]\n"
    )
}

fn spawn_node(exe: &Path, dir: &Path, id: u64) -> Result<Child> {
    let nd = node_dir(dir, id);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(nd.join("log"))?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(dir.join(format!("node{id}.toml")))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node {id}"))?;
    if let Some(pid) = child.id() {
        std::fs::write(nd.join("pid"), pid.to_string())?;
    }
    Ok(child)
}

async fn bring_up(dir: &Path, n: u64, json_mode: bool) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut addrs = Vec::new();
    for id in 1..=n {
        addrs.push(wait_addr(dir, id, deadline).await?);
    }
    let client_cfg = ClientConfig {
        endpoints: addrs.clone(),
        ca: dir.join("ca.pem"),
        cert: dir.join("admin.pem"),
        key: dir.join("admin.key"),
        timeout_ms: 10_000,
        multiplex: true,
    };
    let text = toml::to_string(&client_cfg)?;
    std::fs::write(dir.join("client.toml"), text)?;

    // Wait for every node to answer, then bootstrap if nobody has a membership yet.
    let mut initialized = false;
    for a in &addrs {
        let s = poll_status(&client_cfg, a, deadline).await?;
        initialized |= !s.members.is_empty();
    }
    if !initialized {
        let members = (1..=n).zip(addrs.iter().cloned()).collect();
        Client::new(&client_cfg.pinned(&addrs[0]))?.initialize(members).await.context("bootstrapping")?;
    }
    let leader = wait_agreed_leader(&client_cfg, &addrs, deadline).await?;
    deploy_recipes(&Client::new(&client_cfg)?).await?;
    let cfg_path = dir.join("client.toml");
    let recipes = crate::plugin::RECIPES.join(", ");
    crate::cli::output::print(
        json_mode,
        json!({ "ready": true, "nodes": addrs, "leader": leader, "client_config": cfg_path,
            "recipes": crate::plugin::RECIPES }),
        || {
            format!(
                "corral dev: {n} nodes ready at {} (leader: node {leader}); recipes: {recipes}; client config {} — Ctrl-C stops",
                addrs.join(", "),
                cfg_path.display()
            )
        },
    );
    Ok(())
}

async fn wait_addr(dir: &Path, id: u64, deadline: Instant) -> Result<String> {
    loop {
        if let Ok(Some(b)) = atomic_file::load(&node_dir(dir, id), "addr") {
            if let Ok(s) = String::from_utf8(b) {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            bail!("node {id} did not start; see {}", node_dir(dir, id).join("log").display());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn poll_status(cfg: &ClientConfig, addr: &str, deadline: Instant) -> Result<corral_client::NodeStatus> {
    let mut pinned = cfg.pinned(addr);
    pinned.timeout_ms = 1_000;
    let client = Client::new(&pinned)?;
    loop {
        match client.status().await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => bail!("node at {addr} does not answer: {e}"),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Deploy each bundled recipe under its own name, or upgrade it if this build's differs.
async fn deploy_recipes(client: &Client) -> Result<()> {
    let deployed = client.plugin_list(corral_client::Consistency::Linearizable).await?;
    for name in crate::plugin::RECIPES {
        let path = format!("{}/{name}.wasm", crate::plugin::BUNDLED_DIR);
        let wasm = std::fs::read(&path).with_context(|| format!("reading the bundled recipe {path}"))?;
        let hash = crate::plugin::upload_hash(&wasm).map_err(anyhow::Error::msg)?;
        match deployed.iter().find(|p| p.name == *name) {
            None => {
                client
                    .plugin_deploy(name, wasm, Default::default())
                    .await
                    .with_context(|| format!("deploying {name}"))?;
            }
            Some(p) if p.hash != hash => {
                client.plugin_upgrade(name, wasm, None).await.with_context(|| format!("upgrading {name}"))?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn wait_agreed_leader(cfg: &ClientConfig, addrs: &[String], deadline: Instant) -> Result<u64> {
    loop {
        let mut leaders = Vec::new();
        for a in addrs {
            leaders.push(poll_status(cfg, a, deadline).await?.leader);
        }
        if let Some(Some(l)) = leaders.first() {
            if leaders.iter().all(|x| *x == Some(*l)) {
                return Ok(*l);
            }
        }
        if Instant::now() > deadline {
            bail!("the nodes did not agree on a leader: {leaders:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How often the supervisor looks for a node that exited: a killed leader that restarts at
/// once resumes its term before the others would elect a new one (`corral bench`'s
/// failover-kill measures exactly that path).
const SUPERVISE_POLL: Duration = Duration::from_millis(10);
/// A node that dies within this long of its start is restarted only after [`CRASH_BACKOFF`],
/// so one that cannot start does not spin.
const CRASH_LOOP: Duration = Duration::from_secs(1);
const CRASH_BACKOFF: Duration = Duration::from_millis(500);

/// Restart any node that exits (a crash, or `corral bench`'s failover workload killing the
/// leader), as a supervisor would, until the ensemble is stopped.
async fn supervise(exe: &Path, dir: &Path, children: &mut [Child]) {
    let mut started = vec![Instant::now(); children.len()];
    let mut restart_at: Vec<Option<Instant>> = vec![None; children.len()];
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            let id = i as u64 + 1;
            if restart_at[i].is_none() {
                if let Ok(Some(status)) = c.try_wait() {
                    let crashed_at_start = started[i].elapsed() < CRASH_LOOP;
                    let wait = if crashed_at_start { CRASH_BACKOFF } else { Duration::ZERO };
                    eprintln!("corral dev: node {id} exited ({status}); restarting it");
                    restart_at[i] = Some(Instant::now() + wait);
                }
            }
            if restart_at[i].is_some_and(|at| Instant::now() >= at) {
                restart_at[i] = None;
                started[i] = Instant::now();
                match spawn_node(exe, dir, id) {
                    Ok(new) => *c = new,
                    Err(e) => eprintln!("corral dev: cannot restart node {id}: {e:#}"),
                }
            }
        }
        tokio::time::sleep(SUPERVISE_POLL).await;
    }
}

async fn stop_children(dir: &Path, children: Vec<Child>) {
    for c in &children {
        if let Some(pid) = c.id() {
            terminate(pid);
        }
    }
    for (i, mut c) in children.into_iter().enumerate() {
        if tokio::time::timeout(Duration::from_secs(5), c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
        let _ = std::fs::remove_file(node_dir(dir, i as u64 + 1).join("pid"));
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped) and a valid signal.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_of_a_local_ensemble_divide_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let dir = tempfile::tempdir().expect("tempdir");
        for (n, want) in [(1, cores), (3, (cores / 3).max(1)), (9, (cores / 9).max(1))] {
            let path = dir.path().join(format!("node-of-{n}.toml"));
            std::fs::write(&path, node_toml(2, n)).expect("write");
            let cfg = crate::config::NodeConfig::load(&path).expect("dev writes a valid config");
            assert_eq!(cfg.id, 2);
            assert_eq!(cfg.worker_threads, Some(want), "{n} nodes on {cores} cores");
        }
    }
}

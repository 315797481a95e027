//! `corral bench`: load against a running ensemble (the client config's, e.g. the one
//! `corral dev` starts), from this process, through `corral-client`. Each client is its own
//! connection, pinned to the endpoints in turn, so followers forward writes as they would for
//! a real application.
//!
//! `--connections` lets the clients share fewer connections (etcd's benchmark has the same
//! knob): requests of several clients then share QUIC packets, as an application's threads
//! sharing one `Client` would.
//!
//! Every workload runs for `--duration` at each concurrency in `--clients`, `--runs` times,
//! each run after a `--warmup` of the same load that is not measured;
//! the table shows the median run and the spread (min–max) of throughput. A progress line on
//! stderr shows each run as it goes; `--json` prints one object per run and per summary row.
//! Server CPU is read from every member's status (`cpu_ms`) before and after a run.
//!
//! - `write`: set 100-byte values, each client on its own keys (distinct keys);
//! - `read` / `read-serializable`: get one node, linearizable (ReadIndex through the leader) or
//!   from the local replica;
//! - `ping`: a session's heartbeat, which the node answers after checking that the session
//!   lives: a round trip through the client, QUIC, TLS and the node's dispatch with no tree
//!   work, the floor under every other row (a serializable read adds a lookup and its reply);
//! - `ephemeral`: create an ephemeral sequential node, delete it (a cycle counts once);
//! - `lock`: `--contenders` clients acquire and release one lock (the `lock` recipe);
//! - `plugin` / `builtin`: the bundled `counter` plugin's `add` (a replicated read-modify-write
//!   of one key in the sandbox) against a built-in `set` of one key: the same shape of
//!   operation, so the ratio is the price of running it as a plugin;
//! - `failover-kill` / `failover-stop`: one writer while the tool kills (-9) or stops
//!   (SIGSTOP) the leader; reports the unavailability window and the writes that failed. The
//!   tool must run on the leader's machine; `corral dev` restarts a killed node.

mod failover;
mod load;
mod report;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use corral_client::{Client, ClientConfig, ClientError, DeployOptions, ServerError};

use report::{Row, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Write,
    Read,
    ReadSerializable,
    Ping,
    Ephemeral,
    Lock,
    Plugin,
    Builtin,
    FailoverKill,
    FailoverStop,
}

impl Workload {
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Concurrent clients, comma-separated: each workload runs at each.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 16, 64])]
    clients: Vec<u64>,
    /// Connections the clients share, spread over the endpoints like the clients (default: one
    /// per client). With fewer connections than clients, several clients' requests travel in
    /// one QUIC packet, as when an application's threads share one `Client`. Not for `lock`
    /// and the failovers, whose clients each have their own.
    #[arg(long)]
    connections: Option<u64>,
    /// Clients contending for the one lock in the `lock` workload.
    #[arg(long, default_value_t = 8)]
    contenders: u64,
    /// How long each run lasts (failover runs: until the ensemble has recovered).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// How long the clients of each run load the ensemble before it is measured (not for the
    /// failover workloads, whose writer always runs before its fault).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Runs per row (the row shows their median and spread).
    #[arg(long, default_value_t = 3)]
    runs: u64,
}

/// The plugin the plugin workload uses (deployed if missing).
const PLUGIN: &str = "bench-counter";

pub async fn run(cfg: &ClientConfig, args: BenchArgs, j: bool) -> Result<()> {
    if args.clients.contains(&0) || args.contenders == 0 || args.runs == 0 || args.connections == Some(0) {
        bail!("--clients, --connections, --contenders and --runs must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be longer than 0");
    }
    let workloads = if args.workload.is_empty() { Workload::value_variants().to_vec() } else { args.workload.clone() };
    let mut rows = Vec::new();
    for w in workloads {
        prepare(cfg, w).await.with_context(|| format!("preparing the {} workload", w.name()))?;
        let concurrency: Vec<u64> = match w {
            Workload::Lock => vec![args.contenders],
            Workload::FailoverKill | Workload::FailoverStop => vec![1],
            _ => args.clients.clone(),
        };
        for n in concurrency {
            let connections = match w {
                Workload::Lock | Workload::FailoverKill | Workload::FailoverStop => n,
                _ => args.connections.map_or(n, |c| c.min(n)),
            };
            let shape = Shape { clients: n, connections };
            let mut runs = Vec::new();
            for r in 0..args.runs {
                let run = match w {
                    Workload::FailoverKill | Workload::FailoverStop => failover::run(cfg, w, args.duration).await?,
                    _ => load::run(cfg, w, shape, args.warmup, args.duration).await?,
                };
                report::print_run(j, w, shape, r + 1, &run);
                runs.push(run);
            }
            let row = Row::from_runs(w, shape, runs);
            report::print_row(j, &row);
            rows.push(row);
        }
    }
    if !j {
        println!("\n{}", report::table(&rows));
    }
    Ok(())
}

async fn deploy(c: &Client, name: &str, file: &str) -> Result<()> {
    let wasm = std::fs::read(format!("{}/{file}.wasm", crate::plugin::BUNDLED_DIR))
        .with_context(|| format!("the bundled {file} plugin"))?;
    match c.plugin_deploy(name, wasm, DeployOptions::default()).await {
        Ok(_) | Err(ClientError::Server(ServerError::PluginExists { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_node(c: &Client, path: &str) -> Result<()> {
    match c.create(path, b"").await {
        Ok(_) | Err(ClientError::Server(ServerError::NodeExists { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Prepare `w`'s nodes and plugins with a client of its own: a failover run before may have
/// killed the node an older client was connected to. Every step is idempotent, so one that
/// fails while the ensemble settles after a failover is tried again.
async fn prepare(cfg: &ClientConfig, w: Workload) -> Result<()> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A client that cannot even be made (a bad config) fails at once.
        let c = Client::new(cfg)?;
        match prepare_with(&c, w).await {
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!("preparing {} (attempt {attempt}): {e:#}", w.name());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            res => return res,
        }
    }
}

async fn prepare_with(c: &Client, w: Workload) -> Result<()> {
    ensure_node(c, "/bench").await?;
    match w {
        Workload::Lock => deploy(c, "lock", "lock").await,
        Workload::Plugin => deploy(c, PLUGIN, "counter").await,
        Workload::Read | Workload::ReadSerializable => {
            c.set("/bench", &[b'x'; 100], None).await?;
            Ok(())
        }
        Workload::Ephemeral => ensure_node(c, "/bench/eph").await,
        _ => Ok(()),
    }
}

/// `500ms`, `5s`, `2m` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration like 500ms, 5s or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    }
}

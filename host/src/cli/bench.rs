//! `corral bench`: load against a running ensemble (the client config's), from this process.
//! Each client is its own connection, pinned to the endpoints in turn (so followers forward
//! writes, as for a real application). Reports per-run throughput and latency percentiles,
//! then the median of the runs.
//!
//! Workloads: `set` (a write through the log: one node per client), `get` (a linearizable
//! read), `plugin-call` (the bundled `counter` plugin's `apply`: a write through the log
//! plus a fresh sandboxed instance on every replica), `plugin-query`, `lock` (acquire then
//! release one lock; latency is the acquisition's, waiting included). `set` and
//! `plugin-call` are the same shape (one small replicated write and its reply), so their
//! difference is the price of running the operation as a plugin.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use corral_client::{Client, ClientConfig, ClientError, Consistency, DeployOptions, ServerError};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Set,
    Get,
    PluginCall,
    PluginQuery,
    /// Acquire and release one lock (the `lock` recipe), every client contending.
    Lock,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "set")]
    workload: Workload,
    /// Operations per run.
    #[arg(long, default_value_t = 5_000)]
    ops: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: u64,
    /// Runs (the summary is their median).
    #[arg(long, default_value_t = 3)]
    runs: u64,
}

/// The plugin the plugin workloads use (deployed if missing).
const PLUGIN: &str = "bench-counter";

struct Run {
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
}

pub async fn run(cfg: &ClientConfig, args: BenchArgs, j: bool) -> Result<()> {
    if args.clients == 0 || args.ops == 0 {
        bail!("--ops and --clients must be at least 1");
    }
    let clients: Vec<Client> = (0..args.clients)
        .map(|i| Client::new(&cfg.pinned(&cfg.endpoints[i as usize % cfg.endpoints.len()])))
        .collect::<Result<_, _>>()?;
    prepare(&clients[0], args.workload).await?;
    let mut runs = Vec::new();
    for r in 0..args.runs {
        let run = one_run(&clients, args.workload, args.ops).await?;
        let line = json!({ "run": r + 1, "workload": format!("{:?}", args.workload), "ops": args.ops,
            "clients": args.clients, "ops_per_sec": run.ops_per_sec.round(), "p50_us": run.p50_us, "p99_us": run.p99_us });
        super::output::print(j, line, || {
            format!("run {}: {:>8.0} ops/s  p50 {:>6} us  p99 {:>6} us", r + 1, run.ops_per_sec, run.p50_us, run.p99_us)
        });
        runs.push(run);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let tput = median(runs.iter().map(|r| r.ops_per_sec).collect());
    let p50 = median(runs.iter().map(|r| r.p50_us as f64).collect());
    let p99 = median(runs.iter().map(|r| r.p99_us as f64).collect());
    let summary = json!({ "summary": format!("{:?}", args.workload), "runs": args.runs, "ops_per_sec": tput.round(),
        "p50_us": p50, "p99_us": p99 });
    super::output::print(j, summary, || {
        format!("median of {} runs: {tput:.0} ops/s, p50 {p50:.0} us, p99 {p99:.0} us", args.runs)
    });
    Ok(())
}

async fn prepare(c: &Client, w: Workload) -> Result<()> {
    match w {
        Workload::Set | Workload::Get => match c.create("/bench", b"").await {
            Ok(_) | Err(ClientError::Server(ServerError::NodeExists { .. })) => {}
            Err(e) => return Err(e.into()),
        },
        Workload::Lock => {
            let wasm = std::fs::read(format!("{}/lock.wasm", crate::plugin::BUNDLED_DIR)).context("the lock recipe")?;
            match c.plugin_deploy("lock", wasm, DeployOptions::default()).await {
                Ok(_) | Err(ClientError::Server(ServerError::PluginExists { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Workload::PluginCall | Workload::PluginQuery => {
            let wasm = std::fs::read(format!("{}/counter.wasm", crate::plugin::BUNDLED_DIR))
                .context("the bundled counter plugin")?;
            match c.plugin_deploy(PLUGIN, wasm, DeployOptions::default()).await {
                Ok(_) | Err(ClientError::Server(ServerError::PluginExists { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if w == Workload::Get {
        c.set("/bench", b"01234567", None).await?;
    }
    Ok(())
}

async fn one_run(clients: &[Client], w: Workload, ops: u64) -> Result<Run> {
    let per = ops.div_ceil(clients.len() as u64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/bench/c{i}");
            let mut lat = Vec::with_capacity(per as usize);
            if w == Workload::Set {
                let _ = c.create(&path, b"").await;
            }
            if w == Workload::Lock && c.session_id().is_none() {
                c.start_session(10_000).await?;
            }
            for _ in 0..per {
                let t = Instant::now();
                match w {
                    Workload::Set => c.set(&path, b"01234567", None).await.map(|_| ())?,
                    Workload::Get => c.get("/bench").await.map(|_| ())?,
                    Workload::PluginCall => c.plugin_call(PLUGIN, br#"{"add":1}"#).await.map(|_| ())?,
                    Workload::PluginQuery => {
                        c.plugin_query(PLUGIN, br#""get""#, Consistency::Linearizable).await.map(|_| ())?
                    }
                    Workload::Lock => {
                        let guard = c.lock("bench").acquire().await?;
                        lat.push(t.elapsed());
                        guard.release().await?;
                        continue;
                    }
                }
                lat.push(t.elapsed());
            }
            Ok::<Vec<Duration>, ClientError>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize].as_micros() as u64;
    Ok(Run { ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(), p50_us: pct(0.5), p99_us: pct(0.99) })
}

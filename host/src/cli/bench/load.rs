//! The steady-load workloads: N clients in a closed loop for a fixed time, every operation's
//! latency kept; a progress line on stderr once a second.
//!
//! The clients first run the workload unmeasured for the warm-up: their connections' handshakes,
//! the first calls of a plugin just deployed, and whatever the ensemble is still doing after
//! it started (`corral dev` reports ready while followers are still compiling the recipes) stay
//! out of the figures. Only operations that start after the warm-up count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use corral_client::{Client, ClientConfig, ClientError, Consistency, CreateMode};
use corral_proto::Request;

use super::report::{server_cpu_ms, Run, Shape};
use super::{Workload, PLUGIN};

/// Failed operations each client prints (to stderr) per run, after which it only counts them.
const SHOWN_ERRORS: u64 = 3;

pub async fn run(cfg: &ClientConfig, w: Workload, shape: Shape, warmup: Duration, duration: Duration) -> Result<Run> {
    let n = shape.clients;
    // One `Client` per connection; the clients take them in turn, so each connection (and
    // each endpoint) serves an equal share of them.
    let connections: Vec<Client> = (0..shape.connections.clamp(1, n))
        .map(|i| Client::new(&cfg.pinned(&cfg.endpoints[i as usize % cfg.endpoints.len()])))
        .collect::<Result<_, _>>()?;
    let clients: Vec<Client> = (0..n as usize).map(|i| connections[i % connections.len()].clone()).collect();
    for c in &connections {
        if matches!(w, Workload::Ephemeral | Workload::Lock | Workload::Ping) {
            c.start_session(10_000).await?;
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let (c, done, stop, measuring) = (c.clone(), done.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let counts = measuring.load(Ordering::Relaxed);
                let t = Instant::now();
                match one_op(&c, w, i, k).await {
                    Ok(()) if counts => {
                        lat.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if counts => {
                        errors += 1;
                        // A count alone does not say what went wrong; a few of them do.
                        if errors <= SHOWN_ERRORS {
                            eprintln!("\ncorral bench: {} client {i}: {e}", w.name());
                        }
                    }
                    _ => {}
                }
            }
            (lat, errors)
        }));
    }
    if !warmup.is_zero() {
        eprint!("\r{} x{n}: warming up for {:.1}s   ", w.name(), warmup.as_secs_f64());
        tokio::time::sleep(warmup).await;
    }
    let cpu_before = server_cpu_ms(cfg).await;
    let start = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    let progress = tokio::spawn({
        let (done, stop) = (done.clone(), stop.clone());
        async move {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprint!(
                    "\r{} x{n}: {:.0}s, {now} ops, {} ops/s   ",
                    w.name(),
                    start.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        }
    });
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let _ = progress.await;
    eprint!("\r{:<100}\r", "");
    let cpu_after = server_cpu_ms(cfg).await;
    for c in &connections {
        let _ = c.close_session().await;
    }
    Ok(Run::from_latencies(lat, errors, elapsed, cpu_before.zip(cpu_after).map(|(a, b)| b.saturating_sub(a))))
}

async fn one_op(c: &Client, w: Workload, client: usize, k: u64) -> Result<(), ClientError> {
    match w {
        Workload::Write => {
            // Distinct keys: each client cycles through its own 100.
            let path = format!("/bench/w{client}-{}", k % 100);
            match c.set(&path, &[b'v'; 100], None).await {
                Err(ClientError::Server(corral_client::ServerError::NoNode { .. })) => {
                    c.create(&path, &[b'v'; 100]).await.map(|_| ())
                }
                r => r.map(|_| ()),
            }
        }
        Workload::Read => c.get("/bench").await.map(|_| ()),
        Workload::ReadSerializable => c.get_with("/bench", Consistency::Serializable).await.map(|_| ()),
        Workload::Ping => c.request(Request::Ping).await.map(|_| ()),
        Workload::Ephemeral => {
            let mode = CreateMode { ephemeral: true, sequential: true, ..CreateMode::default() };
            let (path, _) = c.create_with("/bench/eph/e-", b"", mode).await?;
            c.delete(&path, None).await
        }
        Workload::Lock => {
            let guard = c.lock("bench").acquire().await?;
            guard.release().await
        }
        Workload::Plugin => c.plugin_call(PLUGIN, br#"{"add":1}"#).await.map(|_| ()),
        Workload::Builtin => {
            let path = format!("/bench/b{client}");
            match c.set(&path, b"00000001", None).await {
                Err(ClientError::Server(corral_client::ServerError::NoNode { .. })) => {
                    c.create(&path, b"00000001").await.map(|_| ())
                }
                r => r.map(|_| ()),
            }
        }
        Workload::FailoverKill | Workload::FailoverStop => Ok(()),
    }
}

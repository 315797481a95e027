//! The steady-load workloads, as `corral bench` runs them: N clients in a closed loop, each
//! pinned to one member in turn, a warm-up that is not measured, then every operation's
//! latency for the duration. Server CPU is read from /proc around the measured part.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::ensemble::Ensemble;
use crate::ops::Conn;
use crate::report::Run;
use crate::Workload;

pub async fn run(e: &Ensemble, w: Workload, n: u64, warmup: Duration, duration: Duration) -> Result<Run> {
    let eps = e.endpoints();
    let mut conns = Vec::new();
    for i in 0..n as usize {
        conns.push(Conn::connect(e.system, &eps[i % eps.len()..=i % eps.len()], warmup + duration, None).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let (done, stop, measuring) = (done.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let counts = measuring.load(Ordering::Relaxed);
                let t = Instant::now();
                match c.op(w, i, k).await {
                    Ok(()) if counts => {
                        lat.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) if counts => {
                        if errors == 0 {
                            eprintln!("\r{} x{n}: client {i}: {err:#}", w.name());
                        }
                        errors += 1;
                    }
                    _ => {}
                }
            }
            c.close().await;
            (lat, errors)
        }));
    }
    eprint!("\r{} x{n}: warming up   ", w.name());
    tokio::time::sleep(warmup).await;
    let cpu_before = e.cpu_ms();
    let start = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    let mut last = 0;
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed()))).await;
        let now = done.load(Ordering::Relaxed);
        eprint!("\r{} x{n}: {:.0}s, {now} ops, {} ops/s   ", w.name(), start.elapsed().as_secs_f64(), now - last);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let cpu = e.cpu_ms().saturating_sub(cpu_before);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, er) = t.await?;
        lat.extend(l);
        errors += er;
    }
    eprint!("\r{:<100}\r", "");
    Ok(Run::from_latencies(lat, errors, elapsed, cpu))
}

//! The failover workload, as `corral bench` runs it: one writer, connected to every member,
//! writes without pause while the tool kills (-9) or stops (SIGSTOP) the leader. The
//! unavailability window is the longest time between two successful writes from the last
//! one before the fault on; a failed write is one the client library returned as an error.
//! A write that hangs is given up after `write_timeout` (etcd's client has no timeout of its
//! own; ZooKeeper's client reports connection loss by itself). A ZooKeeper session that
//! expired while there was no leader is replaced by a new one, as an application would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::ensemble::{signal, Ensemble};
use crate::ops::Conn;
use crate::report::Run;
use crate::Workload;

/// Writes must have flowed this long after the fault before the run ends.
const SETTLE: Duration = Duration::from_secs(2);
const GIVE_UP: Duration = Duration::from_secs(60);

pub async fn run(e: &mut Ensemble, kill: bool, warmup: Duration, write_timeout: Duration) -> Result<Run> {
    e.wait_steady().await?;
    let mut writer = Conn::connect(e.system, &e.endpoints(), GIVE_UP * 2, Some(write_timeout)).await?;
    let start = Instant::now();
    let ok_at = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (system, endpoints) = (e.system, e.endpoints());
    let task = tokio::spawn({
        let (ok_at, failed, stop) = (ok_at.clone(), failed.clone(), stop.clone());
        async move {
            let mut lat = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let t = Instant::now();
                match tokio::time::timeout(write_timeout, writer.op(Workload::Write, 0, k)).await {
                    Ok(Ok(())) => {
                        lat.push(t.elapsed());
                        ok_at.lock().unwrap_or_else(|p| p.into_inner()).push(start.elapsed());
                    }
                    Ok(Err(_)) | Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                while writer.is_dead() && !stop.load(Ordering::Relaxed) {
                    let again = Conn::connect(system, &endpoints, GIVE_UP * 2, Some(write_timeout));
                    if let Ok(Ok(c)) = tokio::time::timeout(write_timeout, again).await {
                        writer = c;
                    }
                }
            }
            writer.close().await;
            lat
        }
    });
    let cpu_before = e.cpu_ms();
    tokio::time::sleep(warmup.min(Duration::from_secs(2))).await;
    let Some(leader) = e.leader().await else { bail!("no single leader before the fault") };
    let pid = e.pid(leader).unwrap_or_default();
    let fault_at = start.elapsed();
    if !signal(pid, if kill { libc::SIGKILL } else { libc::SIGSTOP }) {
        bail!("could not signal member {} (pid {pid})", leader + 1);
    }
    eprint!("\rfailover: {} member {} (pid {pid})   ", if kill { "killed" } else { "stopped" }, leader + 1);
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let first_after = ok_at.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().find(|t| *t > fault_at);
        if first_after.is_some_and(|t| start.elapsed() > t + SETTLE) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let cpu = e.cpu_ms().saturating_sub(cpu_before);
    if !kill {
        signal(pid, libc::SIGCONT);
    }
    let lat = task.await?;
    let elapsed = start.elapsed();
    let times = ok_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !times.iter().any(|t| *t > fault_at) {
        bail!("no write succeeded within {GIVE_UP:?} of the fault");
    }
    let from = times.iter().rposition(|t| *t <= fault_at).unwrap_or(0);
    let gap = times[from..].windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let mut run = Run::from_latencies(lat, failed.load(Ordering::Relaxed), elapsed, cpu);
    run.unavailable_ms = Some(gap.as_millis() as u64);
    eprint!("\r{:<100}\r", "");
    // The killed member comes back before the next run (`wait_steady` restarts it).
    Ok(run)
}

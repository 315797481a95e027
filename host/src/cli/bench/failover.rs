//! The failover workload: one writer (in a session, as an application would hold one) writes
//! without pause while the tool kills -9, or stops with SIGSTOP, the leader's process. The
//! unavailability window is the longest time between two successful writes around the fault;
//! a failed write is one the client library gave up on and returned to the application.
//!
//! The tool signals the leader's pid (from its status), so it must run on the leader's
//! machine. A stopped leader is continued at the end of the run; a killed one is expected to
//! come back by itself (`corral dev` restarts it), and the next run waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use corral_client::{Client, ClientConfig};

use super::report::{server_cpu_ms, Run};
use super::Workload;

/// Writes must have flowed this long after the fault before the run ends.
const SETTLE: Duration = Duration::from_secs(2);
/// A run gives up waiting for recovery after this long.
const GIVE_UP: Duration = Duration::from_secs(60);
/// How long the ensemble must stay unchanged (same leader, same term) before a fault.
const QUIET: Duration = Duration::from_secs(2);

pub async fn run(cfg: &ClientConfig, w: Workload, warmup: Duration) -> Result<Run> {
    wait_all_up(cfg).await?;
    let writer = Client::new(cfg)?;
    writer.start_session(10_000).await?;
    let start = Instant::now();
    // When each successful write completed (since `start`), and the failures.
    let ok_at = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let (writer, ok_at, failed, stop) = (writer.clone(), ok_at.clone(), failed.clone(), stop.clone());
        async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match writer.set("/bench", &[b'f'; 100], None).await {
                    Ok(_) => {
                        lat.push(t.elapsed());
                        ok_at.lock().unwrap_or_else(|p| p.into_inner()).push(start.elapsed());
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("\rfailover: a write failed: {e}");
                    }
                }
            }
            lat
        }
    });
    let cpu_before = server_cpu_ms(cfg).await;
    tokio::time::sleep(warmup.min(Duration::from_secs(2))).await;

    let (leader, pid) = leader_pid(cfg).await?;
    let signal = if w == Workload::FailoverKill { libc::SIGKILL } else { libc::SIGSTOP };
    let fault_at = start.elapsed();
    send_signal(pid, signal).with_context(|| format!("signalling node {leader} (pid {pid})"))?;
    eprint!("\rfailover: {} node {leader} (pid {pid})", if signal == libc::SIGKILL { "killed" } else { "stopped" });

    // Recovered once writes have flowed for SETTLE after the first one that followed the fault.
    let deadline = Instant::now() + GIVE_UP;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let first_after = ok_at.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().find(|t| *t > fault_at);
        if first_after.is_some_and(|t| start.elapsed() > t + SETTLE) {
            break;
        }
        if Instant::now() > deadline {
            if signal == libc::SIGSTOP {
                let _ = send_signal(pid, libc::SIGCONT);
            }
            bail!("no write succeeded within {GIVE_UP:?} of the fault");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let lat = task.await?;
    let elapsed = start.elapsed();
    if signal == libc::SIGSTOP {
        send_signal(pid, libc::SIGCONT)?;
    }
    let cpu_after = server_cpu_ms(cfg).await;
    let _ = writer.close_session().await;

    let times = ok_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // The longest gap between successful writes, from the last one before the fault on.
    let from = times.iter().rposition(|t| *t <= fault_at).unwrap_or(0);
    let gap = times[from..].windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let mut run = Run::from_latencies(
        lat,
        failed.load(Ordering::Relaxed),
        elapsed,
        cpu_before.zip(cpu_after).map(|(a, b)| b.saturating_sub(a)),
    );
    run.unavailable_ms = Some(gap.as_millis() as u64);
    eprint!("\r{:<100}\r", "");
    Ok(run)
}

/// The leader's id and pid.
async fn leader_pid(cfg: &ClientConfig) -> Result<(u64, u32)> {
    let st = Client::new(cfg)?.status().await?;
    let leader = st.leader.context("no leader")?;
    let addr = st.members.iter().find(|m| m.id == leader).map(|m| m.addr.clone()).context("leader not a member")?;
    let pid = Client::new(&cfg.pinned(&addr))?.status().await?.pid;
    Ok((leader, pid))
}

/// Wait (up to a minute) until every member answers, they agree on the leader and the term,
/// and that stays so for [`QUIET`]: the previous run's killed node is back, and its stopped
/// one has stopped campaigning. A node continued after SIGSTOP finds its election timer long
/// expired and stands at once, with a higher term and a stale log; it loses, but the leader
/// it disturbs re-elects itself and the others carry a longer election timeout for a while.
/// A fault injected in that aftermath measures the previous run, not this one.
async fn wait_all_up(cfg: &ClientConfig) -> Result<()> {
    let deadline = Instant::now() + GIVE_UP;
    let mut steady: Option<((u64, u64), Instant)> = None;
    loop {
        let view = agreed_view(cfg).await?;
        steady = match (view, steady) {
            (Some(v), Some((was, since))) if v == was => {
                if since.elapsed() >= QUIET {
                    return Ok(());
                }
                Some((was, since))
            }
            (Some(v), _) => Some((v, Instant::now())),
            (None, _) => None,
        };
        if Instant::now() > deadline {
            bail!("the ensemble is not whole (a killed node did not come back: run it under `corral dev`)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (leader, term) if every member answers with the same.
async fn agreed_view(cfg: &ClientConfig) -> Result<Option<(u64, u64)>> {
    let Ok(st) = Client::new(cfg)?.status().await else { return Ok(None) };
    let Some(leader) = st.leader else { return Ok(None) };
    for m in &st.members {
        let mut pinned = cfg.pinned(&m.addr);
        pinned.timeout_ms = 1_000;
        match Client::new(&pinned)?.status().await {
            Ok(s) if s.leader == Some(leader) && s.term == st.term => {}
            _ => return Ok(None),
        }
    }
    Ok(Some((leader, st.term)))
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill(2) with a plain pid and a valid signal number; no memory is shared.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc != 0 {
        bail!("kill({pid}, {sig}): {} (the leader must run on this machine)", std::io::Error::last_os_error());
    }
    Ok(())
}

//! A Jepsen-style run: clients drive a register workload (read, write, compare-and-set by
//! version, several keys) against a real ensemble while a nemesis injects faults at seeded
//! moments; every operation's invocation, completion and outcome is recorded, and the history
//! is checked for linearizability, key by key. Everything random comes from the seed, so a
//! failing run prints the command that replays its choices.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{ClientError, ServerError};

use crate::checker::{self, Call, Op, Outcome};
use crate::{Cluster, NodeOpts};

/// The faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 a node (the leader half the time), restart it a little later.
    Kill,
    /// SIGSTOP a node (a hung process), SIGCONT it a little later.
    Pause,
    /// Split the ensemble in two (or isolate the leader), heal a little later.
    Partition,
    /// 20% message loss and duplication and 30 ms delay on every link, for a while.
    Flaky,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        Ok(match s {
            "kill" => Fault::Kill,
            "pause" => Fault::Pause,
            "partition" => Fault::Partition,
            "flaky" => Fault::Flaky,
            other => return Err(format!("unknown fault {other:?} (kill, pause, partition, flaky)")),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub duration: Duration,
    pub nodes: u64,
    pub faults: Vec<Fault>,
    pub clients: u64,
    pub keys: u64,
    /// Where to write the history (JSON lines), if anywhere.
    pub history_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    pub unknown: usize,
    pub faults: BTreeMap<String, u64>,
    /// Why the history is not linearizable, if it is not.
    pub anomalies: Vec<String>,
}

fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *x >> 33
}

fn value(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// One client's loop until `stop`: its operations go into `history`.
async fn client_loop(
    client: corral_client::Client,
    no: u64,
    keys: u64,
    mut rng: u64,
    start: Instant,
    history: Arc<Mutex<Vec<Op>>>,
    stop: Arc<AtomicBool>,
) {
    let now = || start.elapsed().as_nanos() as u64;
    let record = |op: Op| history.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("/r{}", next(&mut rng) % keys);
        let unique = (no + 1) * 1_000_000_000 + i;
        let t0 = now();
        match next(&mut rng) % 3 {
            0 => match client.get(&key).await {
                Ok((d, _)) => record(Op {
                    key,
                    call: Call::Read,
                    outcome: Outcome::Read(value(&d)),
                    invoked: t0,
                    returned: Some(now()),
                }),
                Err(_) => record(Op { key, call: Call::Read, outcome: Outcome::Unknown, invoked: t0, returned: None }),
            },
            1 => {
                let res = client.set(&key, unique.to_string().as_bytes(), None).await;
                let (outcome, returned) =
                    if res.is_ok() { (Outcome::Done, Some(now())) } else { (Outcome::Unknown, None) };
                record(Op { key, call: Call::Write(unique), outcome, invoked: t0, returned });
            }
            _ => {
                let Ok((d, stat)) = client.get(&key).await else {
                    record(Op { key, call: Call::Read, outcome: Outcome::Unknown, invoked: t0, returned: None });
                    continue;
                };
                let seen = value(&d);
                record(Op {
                    key: key.clone(),
                    call: Call::Read,
                    outcome: Outcome::Read(seen),
                    invoked: t0,
                    returned: Some(now()),
                });
                let t1 = now();
                let res = client.set(&key, unique.to_string().as_bytes(), Some(stat.version)).await;
                let (outcome, returned) = match res {
                    Ok(_) => (Outcome::Done, Some(now())),
                    Err(ClientError::Server(ServerError::BadVersion { .. })) => (Outcome::Failed, Some(now())),
                    Err(_) => (Outcome::Unknown, None),
                };
                record(Op { key, call: Call::Cas { expected: seen, new: unique }, outcome, invoked: t1, returned });
            }
        }
    }
}

/// Run the workload and the nemesis for `cfg.duration`, then check the history.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let net = cfg.faults.iter().any(|f| matches!(f, Fault::Partition | Fault::Flaky));
    let mut c = Cluster::start(cfg.nodes, NodeOpts { net_faults: net, ..NodeOpts::default() }).await?;
    let start = Instant::now();
    let history = Arc::new(Mutex::new(Vec::new()));
    let admin = c.client()?;
    for k in 0..cfg.keys {
        let t0 = start.elapsed().as_nanos() as u64;
        admin.create(&format!("/r{k}"), b"0").await?;
        let returned = Some(start.elapsed().as_nanos() as u64);
        let op = Op { key: format!("/r{k}"), call: Call::Write(0), outcome: Outcome::Done, invoked: t0, returned };
        history.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for no in 0..cfg.clients {
        let client = c.client()?;
        let rng = cfg.seed ^ (no + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        clients.push(tokio::spawn(client_loop(client, no, cfg.keys, rng, start, history.clone(), stop.clone())));
    }

    let mut report = Report::default();
    let mut rng = cfg.seed | 1;
    while start.elapsed() < cfg.duration && !cfg.faults.is_empty() {
        tokio::time::sleep(Duration::from_millis(300 + next(&mut rng) % 1_200)).await;
        let fault = cfg.faults[(next(&mut rng) % cfg.faults.len() as u64) as usize];
        let ids = c.ids();
        let victim = if next(&mut rng).is_multiple_of(2) {
            c.wait_leader(Duration::from_secs(10)).await.unwrap_or(ids[0])
        } else {
            ids[(next(&mut rng) % ids.len() as u64) as usize]
        };
        let hold = Duration::from_millis(500 + next(&mut rng) % 2_500);
        *report.faults.entry(format!("{fault:?}").to_lowercase()).or_default() += 1;
        match fault {
            Fault::Kill => {
                c.kill(victim);
                tokio::time::sleep(hold).await;
                c.restart(victim).await?;
            }
            Fault::Pause => {
                c.pause(victim, true);
                tokio::time::sleep(hold).await;
                c.pause(victim, false);
            }
            Fault::Partition => {
                let rest: Vec<u64> = ids.iter().copied().filter(|i| *i != victim).collect();
                c.partition(&[&[victim], &rest])?;
                tokio::time::sleep(hold).await;
                c.heal()?;
            }
            Fault::Flaky => {
                for id in &ids {
                    let peers: serde_json::Map<String, serde_json::Value> =
                        ids.iter().filter(|p| *p != id).map(|p| (p.to_string(), serde_json::json!(0.2))).collect();
                    let delays: serde_json::Map<String, serde_json::Value> =
                        ids.iter().filter(|p| *p != id).map(|p| (p.to_string(), serde_json::json!(30))).collect();
                    let spec =
                        serde_json::json!({ "loss": peers, "dup": peers, "delay_ms": delays, "seed": next(&mut rng) });
                    c.faults(*id, spec)?;
                }
                tokio::time::sleep(hold).await;
                c.heal()?;
            }
        }
    }
    if cfg.faults.is_empty() {
        tokio::time::sleep(cfg.duration).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }

    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.operations = history.len();
    report.unknown = history.iter().filter(|o| o.outcome == Outcome::Unknown).count();
    if let Some(path) = &cfg.history_file {
        let lines: Vec<String> = history.iter().map(|o| format!("{o:?}")).collect();
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    if let Err(e) = checker::check(&history) {
        report.anomalies.push(e);
    }
    Ok(report)
}

impl Report {
    /// The summary; its last line is `anomalies: N`.
    pub fn summary(&self, cfg: &Config) -> String {
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut s = format!(
            "seed {}, {} nodes, {:?}: {} operations ({} with unknown outcome); faults: {}\n",
            cfg.seed,
            cfg.nodes,
            cfg.duration,
            self.operations,
            self.unknown,
            if faults.is_empty() { "none".into() } else { faults.join(", ") }
        );
        for a in &self.anomalies {
            s += &format!("ANOMALY: {a}\n");
        }
        s + &format!("anomalies: {}", self.anomalies.len())
    }
}

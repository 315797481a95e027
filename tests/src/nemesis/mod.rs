//! A Jepsen-style run: clients drive workloads against a real ensemble while a nemesis injects
//! faults (`faults`) at seeded moments; what they saw is checked at the end.
//! - registers (`registers`): read, write and compare-and-set by version on a few keys, every
//!   invocation and completion recorded, checked for linearizability key by key (`checker`);
//! - watch, sequential, ttl, and the lock / queue / election recipes (`recipes`), each with its
//!   own invariants, in its own module.
//!
//! Everything random comes from the seed, so a failing run prints the command that replays its
//! choices (the faults' timing relative to the workload still varies with the machine).

mod faults;
mod recipes;
mod registers;
mod sequential;
mod ttl;
mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use corral_client::DeployOptions;

pub use faults::{Fault, ALL as ALL_FAULTS};
pub use registers::client_loop;

use crate::checker::{self, Outcome};
use crate::{plugin_wasm, Cluster};

/// The workloads a run may drive, besides the registers (always on: they are what the
/// linearizability checker reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    Watch,
    Sequential,
    Ttl,
    Lock,
    Queue,
    Election,
}

pub const ALL_WORKLOADS: &[Workload] =
    &[Workload::Watch, Workload::Sequential, Workload::Ttl, Workload::Lock, Workload::Queue, Workload::Election];

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        ALL_WORKLOADS.iter().copied().find(|w| w.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL_WORKLOADS.iter().map(|w| w.name()).collect();
            format!("unknown workload {s:?} (one of {})", names.join(", "))
        })
    }
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Watch => "watch",
            Workload::Sequential => "sequential",
            Workload::Ttl => "ttl",
            Workload::Lock => "lock",
            Workload::Queue => "queue",
            Workload::Election => "election",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub duration: Duration,
    pub nodes: u64,
    pub faults: Vec<Fault>,
    pub workloads: Vec<Workload>,
    /// Register clients.
    pub clients: u64,
    pub keys: u64,
    /// Where to write the history (one operation per line), if anywhere.
    pub history_file: Option<std::path::PathBuf>,
}

impl Config {
    /// The command that replays this run.
    pub fn command(&self) -> String {
        let names = |v: Vec<&str>| if v.is_empty() { "none".to_string() } else { v.join(",") };
        format!(
            "cargo run -p corral-tests --bin nemesis -- --seed {} --duration {}s --nodes {} --faults {} --workloads {}",
            self.seed,
            self.duration.as_secs(),
            self.nodes,
            names(self.faults.iter().map(|f| f.name()).collect()),
            names(self.workloads.iter().map(|w| w.name()).collect()),
        )
    }
}

#[derive(Debug, Default)]
pub struct Report {
    /// Register operations checked for linearizability.
    pub operations: usize,
    pub unknown: usize,
    /// Operations of the other workloads, by workload.
    pub other_ops: BTreeMap<&'static str, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    /// Every fault, in order, as done.
    pub fault_log: Vec<String>,
    /// What the checkers found.
    pub anomalies: Vec<String>,
}

/// A seeded generator (PCG-style LCG): the run's only randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An independent generator for worker `no`.
    pub fn fork(&self, no: u64) -> Rng {
        Rng(self.0 ^ (no + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// Everything the workloads record, checked at the end.
#[derive(Default)]
struct Recorded {
    regs: Arc<registers::Registers>,
    watch: Arc<Mutex<watch::Seen>>,
    sequential: sequential::Created,
    ttl: Arc<Mutex<ttl::TtlReport>>,
    holds: recipes::Holds,
    queue: Arc<Mutex<recipes::QueueLog>>,
    terms: recipes::Terms,
}

/// Run the workloads and the nemesis for `cfg.duration`, then check what was recorded.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut c = Cluster::start(cfg.nodes, faults::node_opts(&cfg.faults)).await?;
    let start = Instant::now();
    let rec = Recorded::default();
    let admin = c.client()?;
    registers::setup(&admin, cfg.keys, start, &rec.regs).await.context("creating the registers")?;
    let on = |w| cfg.workloads.contains(&w);
    for (w, path) in [(Workload::Sequential, sequential::PARENT), (Workload::Ttl, ttl::PARENT)] {
        if on(w) {
            admin.create(path, b"").await?;
        }
    }
    for (w, plugin) in [(Workload::Lock, "lock"), (Workload::Queue, "queue"), (Workload::Election, "election")] {
        if on(w) {
            admin.plugin_deploy(plugin, plugin_wasm(plugin), DeployOptions::default()).await?;
        }
    }

    let seed = Rng::new(cfg.seed);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut consumers = Vec::new();
    let mut spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| tasks.push(tokio::spawn(f));
    for no in 0..cfg.clients {
        let f = client_loop(c.client()?, no, cfg.keys, seed.fork(no), start, rec.regs.clone(), stop.clone());
        spawn(Box::pin(f));
    }
    if on(Workload::Watch) {
        spawn(Box::pin(watch::watcher(c.client()?, registers::PARENT, rec.watch.clone(), stop.clone())));
    }
    if on(Workload::Sequential) {
        for _ in 0..2 {
            spawn(Box::pin(sequential::create_loop(c.client()?, start, rec.sequential.clone(), stop.clone())));
        }
    }
    if on(Workload::Ttl) {
        spawn(Box::pin(ttl::ttl_loop(c.client()?, seed.fork(100), rec.ttl.clone(), stop.clone())));
    }
    if on(Workload::Lock) {
        for who in 0..3 {
            spawn(Box::pin(recipes::lock_loop(
                c.client()?,
                who,
                seed.fork(200 + who),
                rec.holds.clone(),
                stop.clone(),
            )));
        }
    }
    if on(Workload::Election) {
        for who in 0..3 {
            let f = recipes::candidate(c.client()?, who, seed.fork(300 + who), rec.terms.clone(), stop.clone());
            spawn(Box::pin(f));
        }
        spawn(Box::pin(recipes::observer(c.client()?, rec.terms.clone(), stop.clone())));
    }
    if on(Workload::Queue) {
        for no in 0..2 {
            spawn(Box::pin(recipes::producer(c.client()?, no, rec.queue.clone(), stop.clone())));
            consumers.push(tokio::spawn(recipes::consumer(c.client()?, rec.queue.clone(), stop.clone())));
        }
    }

    let mut report = Report::default();
    let mut rng = seed.fork(1_000);
    while start.elapsed() < cfg.duration && !cfg.faults.is_empty() {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
        let fault = cfg.faults[rng.below(cfg.faults.len() as u64) as usize];
        let at = start.elapsed();
        eprintln!("{:.1}s: {}", at.as_secs_f64(), fault.name());
        let what = faults::inject(&mut c, fault, &mut rng).await.with_context(|| format!("fault {fault:?}"))?;
        *report.faults.entry(fault.name()).or_default() += 1;
        report.fault_log.push(format!(
            "{:.1}s {what} (undone at {:.1}s)",
            at.as_secs_f64(),
            start.elapsed().as_secs_f64()
        ));
    }
    if cfg.faults.is_empty() {
        tokio::time::sleep(cfg.duration).await;
    }
    // The watcher catches up past the last acknowledged write before everything stops: past,
    // because an event at `last` may be only the first of that entry's (see `watch::check`).
    // The register clients go on writing meanwhile, so later entries come.
    if on(Workload::Watch) {
        let last = rec.regs.writes.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|w| w.1).max().unwrap_or(0);
        let caught_up = crate::eventually(Duration::from_secs(15), "the watcher to catch up", || async {
            watch::last_index(&rec.watch) > last
        })
        .await;
        if caught_up.is_err() {
            let got = watch::last_index(&rec.watch);
            report
                .anomalies
                .push(format!("watch: the stream stopped at index {got}, writes were acknowledged up to {last}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    // Consumers drain the queue once the producers are done.
    for t in consumers {
        let _ = tokio::time::timeout(Duration::from_secs(90), t).await;
    }
    check(cfg, &rec, &mut report)?;
    Ok(report)
}

fn check(cfg: &Config, rec: &Recorded, report: &mut Report) -> anyhow::Result<()> {
    let history = rec.regs.history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.operations = history.len();
    report.unknown = history.iter().filter(|o| o.outcome == Outcome::Unknown).count();
    if let Some(path) = &cfg.history_file {
        let lines: Vec<String> = history.iter().map(|o| format!("{o:?}")).collect();
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    if let Err(e) = checker::check(&history) {
        report.anomalies.push(e);
    }
    let on = |w| cfg.workloads.contains(&w);
    if on(Workload::Watch) {
        let seen = rec.watch.lock().unwrap_or_else(|p| p.into_inner());
        let writes = rec.regs.writes.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(watch::check(&seen, &writes));
        report.other_ops.insert("watch events", seen.events.len() as u64);
        report.other_ops.insert("watch resyncs", seen.resyncs);
    }
    if on(Workload::Sequential) {
        let created = rec.sequential.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(sequential::check(&created));
        report.other_ops.insert("sequential creates", created.len() as u64);
    }
    if on(Workload::Ttl) {
        let t = rec.ttl.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(t.anomalies.iter().cloned());
        report.other_ops.insert("ttl nodes", t.created);
        report.other_ops.insert("ttl expiries", t.expired);
    }
    if on(Workload::Lock) {
        let holds = rec.holds.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(recipes::check_lock(&holds));
        report.other_ops.insert("lock holds", holds.len() as u64);
    }
    if on(Workload::Queue) {
        let q = rec.queue.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(recipes::check_queue(&q));
        report.other_ops.insert("queue items", q.put.len() as u64);
    }
    if on(Workload::Election) {
        let terms = rec.terms.lock().unwrap_or_else(|p| p.into_inner());
        report.anomalies.extend(recipes::check_election(&terms));
        let distinct: std::collections::BTreeSet<u64> = terms.iter().map(|t| t.0).collect();
        report.other_ops.insert("election terms", distinct.len() as u64);
    }
    Ok(())
}

impl Report {
    /// The summary; its last line is `anomalies: N`.
    pub fn summary(&self, cfg: &Config) -> String {
        let list = |m: Vec<String>| if m.is_empty() { "none".to_string() } else { m.join(", ") };
        let faults = list(self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect());
        let others = list(self.other_ops.iter().map(|(k, v)| format!("{k} {v}")).collect());
        let mut s = format!(
            "seed {}, {} nodes, {:?}: {} register operations ({} with unknown outcome); {others}; faults: {faults}\n",
            cfg.seed, cfg.nodes, cfg.duration, self.operations, self.unknown,
        );
        for a in &self.anomalies {
            s += &format!("ANOMALY: {a}\n");
        }
        s + &format!("anomalies: {}", self.anomalies.len())
    }
}

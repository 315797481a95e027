//! `rivals-bench`: the workloads of `corral bench`, run against ZooKeeper 3.8 and etcd 3.4 on
//! the same machine, so that corral's figures have a baseline measured alongside them (see
//! docs/BENCHMARKS.md). The tool starts a three-member ensemble of the system itself (Debian's
//! `zookeeper` and `etcd-server` packages, default settings, plaintext, loopback), runs the
//! workloads, prints one line per run and a table of medians, and stops the ensemble.
//!
//! How it measures (report.rs, load.rs, failover.rs) follows `host/src/cli/bench/` on
//! purpose, line for line where it can: a change to how `corral bench` measures belongs in
//! both, or the two tables stop being comparable. (They are separate code because this crate
//! stays out of corral's workspace and does not pull in the server.)
//!
//! ```text
//! apt-get install zookeeper etcd-server protobuf-compiler   # the servers, and protoc for etcd-client
//! cargo run --release --manifest-path scripts/rivals-bench/Cargo.toml -- zookeeper
//! cargo run --release --manifest-path scripts/rivals-bench/Cargo.toml -- etcd --workload write --clients 64
//! ```

mod ensemble;
mod failover;
mod load;
mod ops;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use ensemble::{Ensemble, System};
use ops::Conn;
use report::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Write,
    Read,
    ReadSerializable,
    Ephemeral,
    Lock,
}

impl Workload {
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    FailoverKill,
    FailoverStop,
}

#[derive(Parser, Debug)]
struct Args {
    /// The system to start and measure.
    #[arg(value_enum)]
    system: System,
    /// Steady-load workloads, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Failover workloads, comma-separated (default: both; `--failover none` for none).
    #[arg(long, value_delimiter = ',')]
    failover: Vec<String>,
    /// Concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 16, 64])]
    clients: Vec<u64>,
    /// Clients contending for the one lock.
    #[arg(long, default_value_t = 8)]
    contenders: u64,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Unmeasured seconds of the same load before each run.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Runs per row.
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// A failover writer gives up on a write after this many milliseconds.
    #[arg(long, default_value_t = 1_000)]
    write_timeout_ms: u64,
    /// Where the members keep their data and logs (emptied first).
    #[arg(long, default_value = "/tmp/rivals-bench")]
    dir: PathBuf,
    /// Client ports are BASE..BASE+2, peer ports BASE+100.. and BASE+200..
    #[arg(long, default_value_t = 22_181)]
    base_port: u16,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients.contains(&0) || args.contenders == 0 || args.runs == 0 || args.duration == 0 {
        bail!("--clients, --contenders, --runs and --duration must be at least 1");
    }
    let faults: Vec<Fault> = match args.failover.as_slice() {
        [] => Fault::value_variants().to_vec(),
        [none] if none == "none" => Vec::new(),
        names => names.iter().map(|n| Fault::from_str(n, true).map_err(anyhow::Error::msg)).collect::<Result<_>>()?,
    };
    let workloads = if args.workload.is_empty() { Workload::value_variants().to_vec() } else { args.workload.clone() };
    let (warmup, duration) = (Duration::from_secs(args.warmup), Duration::from_secs(args.duration));

    let mut e = Ensemble::start(args.system, &args.dir, args.base_port)?;
    e.wait_steady().await?;
    eprintln!("{:?}: three members up on {}", args.system, e.endpoints().join(", "));
    // Every workload's nodes, once: they outlive the runs, a member's restart included.
    let mut admin = Conn::connect(e.system, &e.endpoints(), Duration::from_secs(10), None).await?;
    admin.prepare().await?;
    admin.close().await;
    let mut rows = Vec::new();
    for w in workloads {
        let concurrency = if w == Workload::Lock { vec![args.contenders] } else { args.clients.clone() };
        for n in concurrency {
            let mut runs = Vec::new();
            for r in 1..=args.runs {
                let run = load::run(&e, w, n, warmup, duration).await?;
                println!("{} x{n} run {r}: {}", w.name(), run.line());
                runs.push(run);
            }
            rows.push(Row::new(w.name(), n, runs));
        }
    }
    for f in faults {
        let name = f.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        let mut runs = Vec::new();
        for r in 1..=args.runs {
            let write_timeout = Duration::from_millis(args.write_timeout_ms);
            let run = failover::run(&mut e, f == Fault::FailoverKill, warmup, write_timeout).await?;
            println!("{name} run {r}: {}", run.line());
            runs.push(run);
        }
        rows.push(Row::new(name, 1, runs));
    }
    println!("\n{:?} 3.x, three members on this machine\n\n{}", args.system, report::table(&rows));
    println!("load generator CPU (this process, whole run): {:.1} s", own_cpu_secs());
    Ok(())
}

/// User and system CPU of this process alone (the members are children, not counted until
/// reaped): what the load generator cost, to set beside `corral bench`'s.
fn own_cpu_secs() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: getrusage fills the struct it is given and nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

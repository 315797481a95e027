//! The nemesis runner: workloads against a real ensemble under seeded faults, then the
//! checkers. The last line of its output is `anomalies: N`.
//!
//! `cargo run -p corral-tests --bin nemesis -- --seed 7 --duration 60s --nodes 3`

use std::time::Duration;

use corral_tests::nemesis::{self, Config, ALL_FAULTS, ALL_WORKLOADS};

fn usage() -> ! {
    let faults: Vec<&str> = ALL_FAULTS.iter().map(|f| f.name()).collect();
    let workloads: Vec<&str> = ALL_WORKLOADS.iter().map(|w| w.name()).collect();
    eprintln!(
        "usage: nemesis [--seed S] [--duration 60s] [--nodes 3|5] [--faults {}|none] [--workloads {}|none] \
         [--clients N] [--keys N] [--history FILE]\n(defaults: every fault, every workload)",
        faults.join(","),
        workloads.join(",")
    );
    std::process::exit(2);
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "ms" => Duration::from_millis(n),
        _ => return None,
    })
}

fn list<T: std::str::FromStr<Err = String>>(v: &str) -> Vec<T> {
    v.split(',').filter(|f| !f.is_empty() && *f != "none").map(|f| f.parse()).collect::<Result<_, _>>().unwrap_or_else(
        |e| {
            eprintln!("{e}");
            usage()
        },
    )
}

fn main() {
    let mut cfg = Config {
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        duration: Duration::from_secs(60),
        nodes: 3,
        faults: ALL_FAULTS.to_vec(),
        workloads: ALL_WORKLOADS.to_vec(),
        clients: 4,
        keys: 3,
        history_file: Some("nemesis-history.txt".into()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--seed" => cfg.seed = v.parse().unwrap_or_else(|_| usage()),
            "--duration" => cfg.duration = parse_duration(&v).unwrap_or_else(|| usage()),
            "--nodes" => cfg.nodes = v.parse().ok().filter(|n| (1..=9).contains(n)).unwrap_or_else(|| usage()),
            "--clients" => cfg.clients = v.parse().unwrap_or_else(|_| usage()),
            "--keys" => cfg.keys = v.parse().ok().filter(|k| *k > 0).unwrap_or_else(|| usage()),
            "--history" => cfg.history_file = Some(v.into()),
            "--faults" => cfg.faults = list(&v),
            "--workloads" => cfg.workloads = list(&v),
            _ => usage(),
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(nemesis::run(&cfg)) {
        Ok(report) => {
            for f in &report.fault_log {
                eprintln!("fault: {f}");
            }
            println!("{}", report.summary(&cfg));
            if let Some(h) = &cfg.history_file {
                eprintln!("register history written to {}", h.display());
            }
            if !report.anomalies.is_empty() {
                eprintln!("reproduce: {}", cfg.command());
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("the run failed: {e:#}\nreproduce: {}", cfg.command());
            std::process::exit(2);
        }
    }
}

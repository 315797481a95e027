//! What a run measured, the row that sums up several runs, and how both are printed.

use std::time::Duration;

use corral_client::{Client, ClientConfig};
use serde_json::json;

use super::Workload;

#[derive(Debug, Clone, Default)]
pub struct Run {
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Server CPU (all members) used during the run, if every member told.
    pub cpu_ms: Option<u64>,
    /// Failover runs: how long no write succeeded, and the writes that failed.
    pub unavailable_ms: Option<u64>,
}

impl Run {
    pub fn from_latencies(mut lat: Vec<Duration>, errors: u64, elapsed: Duration, cpu_ms: Option<u64>) -> Run {
        lat.sort();
        let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).map_or(0, |d| d.as_micros() as u64);
        Run {
            ops: lat.len() as u64,
            errors,
            ops_per_sec: lat.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            max_us: lat.last().map_or(0, |d| d.as_micros() as u64),
            cpu_ms,
            unavailable_ms: None,
        }
    }

    /// Server CPU microseconds per operation.
    fn cpu_us_per_op(&self) -> Option<f64> {
        self.cpu_ms.filter(|_| self.ops > 0).map(|ms| ms as f64 * 1_000.0 / self.ops as f64)
    }
}

/// How many clients a row ran, and over how many connections they shared.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub clients: u64,
    pub connections: u64,
}

/// Several runs of one workload at one concurrency: the median run (by throughput, or by
/// unavailability for failovers) and the spread.
pub struct Row {
    pub workload: Workload,
    pub shape: Shape,
    pub median: Run,
    pub runs: Vec<Run>,
}

impl Row {
    pub fn from_runs(workload: Workload, shape: Shape, mut runs: Vec<Run>) -> Row {
        if runs.iter().all(|r| r.unavailable_ms.is_some()) {
            runs.sort_by_key(|r| r.unavailable_ms);
        } else {
            runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        }
        let median = runs[runs.len() / 2].clone();
        Row { workload, shape, median, runs }
    }
}

/// Total CPU ms of every member, None if any did not answer.
pub async fn server_cpu_ms(cfg: &ClientConfig) -> Option<u64> {
    let members = Client::new(cfg).ok()?.status().await.ok()?.members;
    let mut total = 0;
    for m in members {
        let mut pinned = cfg.pinned(&m.addr);
        pinned.timeout_ms = 2_000;
        total += Client::new(&pinned).ok()?.status().await.ok()?.cpu_ms;
    }
    Some(total)
}

fn run_json(w: Workload, shape: Shape, r: &Run) -> serde_json::Value {
    json!({ "workload": w.name(), "clients": shape.clients, "connections": shape.connections,
        "ops": r.ops, "errors": r.errors,
        "ops_per_sec": r.ops_per_sec.round(), "p50_us": r.p50_us, "p99_us": r.p99_us, "max_us": r.max_us,
        "server_cpu_us_per_op": r.cpu_us_per_op().map(|c| c.round()), "unavailable_ms": r.unavailable_ms })
}

pub fn print_run(j: bool, w: Workload, shape: Shape, no: u64, r: &Run) {
    let mut v = run_json(w, shape, r);
    let clients = match shape {
        Shape { clients, connections } if connections < clients => format!("{clients} on {connections} connections"),
        Shape { clients, .. } => clients.to_string(),
    };
    v["run"] = json!(no);
    crate::cli::output::print(j, v, || match r.unavailable_ms {
        Some(u) => format!("{} run {no}: unavailable {u} ms, {} failed writes", w.name(), r.errors),
        None => format!(
            "{} x{clients} run {no}: {:.0} ops/s, p50 {} us, p99 {} us, max {} us, {} errors",
            w.name(),
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.errors
        ),
    });
}

pub fn print_row(j: bool, row: &Row) {
    if j {
        let mut v = run_json(row.workload, row.shape, &row.median);
        v["summary"] = json!(true);
        v["runs"] = json!(row.runs.len());
        v["ops_per_sec_min"] = json!(row.runs.first().map(|r| r.ops_per_sec.round()));
        v["ops_per_sec_max"] = json!(row.runs.last().map(|r| r.ops_per_sec.round()));
        v["unavailable_ms_all"] = json!(row.runs.iter().filter_map(|r| r.unavailable_ms).collect::<Vec<_>>());
        v["errors_all"] = json!(row.runs.iter().map(|r| r.errors).collect::<Vec<_>>());
        println!("{v}");
    }
}

/// The final table: one line per row, medians with the spread of the runs.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<18} {:>7} {:>5} {:>10} {:>17} {:>9} {:>9} {:>9} {:>10} {:>7}\n",
        "workload", "clients", "conns", "ops/s", "(min-max)", "p50 us", "p99 us", "max us", "cpu us/op", "errors"
    );
    for row in rows {
        let m = &row.median;
        if let Some(u) = m.unavailable_ms {
            let all: Vec<String> = row.runs.iter().filter_map(|r| r.unavailable_ms).map(|u| u.to_string()).collect();
            let failed: Vec<String> = row.runs.iter().map(|r| r.errors.to_string()).collect();
            out += &format!(
                "{:<18} {:>7} {:>5} unavailable {u} ms median (runs: {} ms), failed writes: {}\n",
                row.workload.name(),
                row.shape.clients,
                row.shape.connections,
                all.join(", "),
                failed.join(", ")
            );
            continue;
        }
        let spread = format!(
            "({:.0}-{:.0})",
            row.runs.first().map_or(0.0, |r| r.ops_per_sec),
            row.runs.last().map_or(0.0, |r| r.ops_per_sec)
        );
        let cpu = m.cpu_us_per_op().map_or("-".to_string(), |c| format!("{c:.0}"));
        out += &format!(
            "{:<18} {:>7} {:>5} {:>10.0} {:>17} {:>9} {:>9} {:>9} {:>10} {:>7}\n",
            row.workload.name(),
            row.shape.clients,
            row.shape.connections,
            m.ops_per_sec,
            spread,
            m.p50_us,
            m.p99_us,
            m.max_us,
            cpu,
            m.errors
        );
    }
    out
}

//! What a run measured and the table that sums up several runs: the same columns as
//! `corral bench`'s table, so the two can be set side by side.

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Run {
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Server CPU (all members' processes) used during the run.
    pub cpu_ms: u64,
    /// Failover runs: how long no write succeeded.
    pub unavailable_ms: Option<u64>,
}

impl Run {
    pub fn from_latencies(mut lat: Vec<Duration>, errors: u64, elapsed: Duration, cpu_ms: u64) -> Run {
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

    pub fn line(&self) -> String {
        let mut s = format!(
            "{:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, errors {}, server CPU {:.0} µs/op",
            self.ops_per_sec,
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.max_us),
            self.errors,
            self.cpu_us_per_op()
        );
        if let Some(u) = self.unavailable_ms {
            s += &format!(", unavailable {u} ms");
        }
        s
    }

    fn cpu_us_per_op(&self) -> f64 {
        self.cpu_ms as f64 * 1_000.0 / self.ops.max(1) as f64
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// Several runs of one workload at one concurrency: the median run (by throughput, or by
/// unavailability for failovers) and the spread.
pub struct Row {
    pub name: String,
    pub clients: u64,
    pub runs: Vec<Run>,
}

impl Row {
    pub fn new(name: String, clients: u64, mut runs: Vec<Run>) -> Row {
        if runs.iter().all(|r| r.unavailable_ms.is_some()) {
            runs.sort_by_key(|r| r.unavailable_ms);
        } else {
            runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        }
        Row { name, clients, runs }
    }

    fn median(&self) -> &Run {
        &self.runs[self.runs.len() / 2]
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | clients | ops/s (median) | spread | p50 ms | p99 ms | max ms | errors | unavailable ms (spread) | server CPU µs/op |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let m = r.median();
        let first = &r.runs[0];
        let last = &r.runs[r.runs.len() - 1];
        let lo = r.runs.iter().map(|r| r.ops_per_sec).fold(f64::INFINITY, f64::min);
        let hi = r.runs.iter().map(|r| r.ops_per_sec).fold(0.0, f64::max);
        let spread = format!("{lo:.0}–{hi:.0}");
        let unavailable = match (m.unavailable_ms, first.unavailable_ms, last.unavailable_ms) {
            (Some(u), Some(a), Some(b)) => format!("{u} ({a}–{b})"),
            _ => "–".into(),
        };
        let errors: Vec<String> = r.runs.iter().map(|r| r.errors.to_string()).collect();
        out += &format!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {:.0} |\n",
            r.name,
            r.clients,
            m.ops_per_sec,
            spread,
            ms(m.p50_us),
            ms(m.p99_us),
            ms(m.max_us),
            errors.join(", "),
            unavailable,
            m.cpu_us_per_op()
        );
    }
    out
}

//! The TTL workload: TTL nodes must not vanish before their TTL has passed since they were
//! created (in real time), nor linger long after. Leader time drives TTLs, so a leader whose
//! wall clock jumps forward must not expire them early (the `clock` fault).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{Client, Consistency, CreateMode};

use super::Rng;

pub const PARENT: &str = "/ttl";
/// How long after its TTL a node may still exist: a sweep needs an entry (a tick) to run, and
/// a failover delays it.
const LATE: Duration = Duration::from_secs(20);

/// What the TTL client found.
#[derive(Default, Debug)]
pub struct TtlReport {
    pub created: u64,
    pub expired: u64,
    pub anomalies: Vec<String>,
}

struct Live {
    path: String,
    invoked: Instant,
    ttl: Duration,
}

/// Create TTL nodes and watch them go, until `stop`.
pub async fn ttl_loop(client: Client, mut rng: Rng, report: Arc<Mutex<TtlReport>>, stop: Arc<AtomicBool>) {
    let mut live: Vec<Live> = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let path = format!("{PARENT}/n{i}");
        let ttl = Duration::from_millis(1_000 + rng.below(4_000));
        let invoked = Instant::now();
        let mode = CreateMode { ttl_ms: Some(ttl.as_millis() as u64), ..CreateMode::default() };
        if client.create_with(&path, b"", mode).await.is_ok() {
            report.lock().unwrap_or_else(|p| p.into_inner()).created += 1;
            live.push(Live { path, invoked, ttl });
        }
        let mut still = Vec::new();
        for n in live {
            let asked = Instant::now();
            let verdict = match client.exists(&n.path, Consistency::Linearizable).await {
                Err(_) => None,
                Ok(None) => {
                    let back = n.invoked.elapsed();
                    Some((back < n.ttl).then(|| {
                        format!("ttl: {} was gone {back:?} after its creation began, its TTL is {:?}", n.path, n.ttl)
                    }))
                }
                Ok(Some(_)) => {
                    let age = asked.duration_since(n.invoked);
                    (age > n.ttl + LATE).then(|| {
                        Some(format!("ttl: {} still exists {age:?} after its creation, its TTL is {:?}", n.path, n.ttl))
                    })
                }
            };
            match verdict {
                None => still.push(n),
                Some(anomaly) => {
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    r.expired += 1;
                    r.anomalies.extend(anomaly);
                }
            }
        }
        live = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The register workload: read, write and compare-and-set-by-version on a few keys, every
//! operation recorded for the linearizability checker. Acknowledged writes are also kept with
//! their log index, for the watch workload's no-gap check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corral_client::{Client, ClientError, ServerError};

use super::Rng;
use crate::checker::{Call, Op, Outcome};

/// Where the registers live (one parent, so that one recursive watch sees them all).
pub const PARENT: &str = "/reg";

pub fn key(k: u64) -> String {
    format!("{PARENT}/k{k}")
}

/// What the register clients recorded.
#[derive(Default)]
pub struct Registers {
    pub history: Mutex<Vec<Op>>,
    /// (key, log index) of every acknowledged write.
    pub writes: Mutex<Vec<(String, u64)>>,
}

impl Registers {
    fn record(&self, op: Op) {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    fn wrote(&self, key: &str, index: u64) {
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).push((key.to_string(), index));
    }
}

fn value(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// Create the keys (value 0), recorded as the history's first writes.
pub async fn setup(client: &Client, keys: u64, start: Instant, regs: &Registers) -> anyhow::Result<()> {
    client.create(PARENT, b"").await?;
    for k in 0..keys {
        let t0 = start.elapsed().as_nanos() as u64;
        let stat = client.create(&key(k), b"0").await?;
        let returned = Some(start.elapsed().as_nanos() as u64);
        regs.record(Op { key: key(k), call: Call::Write(0), outcome: Outcome::Done, invoked: t0, returned });
        regs.wrote(&key(k), stat.mzxid);
    }
    Ok(())
}

/// One client's loop until `stop`.
pub async fn client_loop(
    client: Client,
    no: u64,
    keys: u64,
    mut rng: Rng,
    start: Instant,
    regs: Arc<Registers>,
    stop: Arc<AtomicBool>,
) {
    let now = || start.elapsed().as_nanos() as u64;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = key(rng.below(keys));
        let unique = (no + 1) * 1_000_000_000 + i;
        let t0 = now();
        match rng.below(3) {
            0 => {
                let outcome = match client.get(&key).await {
                    Ok((d, _)) => Outcome::Read(value(&d)),
                    Err(_) => Outcome::Unknown,
                };
                let returned = (outcome != Outcome::Unknown).then(now);
                regs.record(Op { key, call: Call::Read, outcome, invoked: t0, returned });
            }
            1 => {
                let res = client.set(&key, unique.to_string().as_bytes(), None).await;
                let (outcome, returned) = match &res {
                    Ok(stat) => {
                        regs.wrote(&key, stat.mzxid);
                        (Outcome::Done, Some(now()))
                    }
                    Err(_) => (Outcome::Unknown, None),
                };
                regs.record(Op { key, call: Call::Write(unique), outcome, invoked: t0, returned });
            }
            _ => {
                let Ok((d, stat)) = client.get(&key).await else {
                    regs.record(Op { key, call: Call::Read, outcome: Outcome::Unknown, invoked: t0, returned: None });
                    continue;
                };
                let seen = value(&d);
                let read = Op {
                    key: key.clone(),
                    call: Call::Read,
                    outcome: Outcome::Read(seen),
                    invoked: t0,
                    returned: Some(now()),
                };
                regs.record(read);
                let t1 = now();
                let res = client.set(&key, unique.to_string().as_bytes(), Some(stat.version)).await;
                let (outcome, returned) = match res {
                    Ok(stat) => {
                        regs.wrote(&key, stat.mzxid);
                        (Outcome::Done, Some(now()))
                    }
                    Err(ClientError::Server(ServerError::BadVersion { .. })) => (Outcome::Failed, Some(now())),
                    Err(_) => (Outcome::Unknown, None),
                };
                regs.record(Op {
                    key,
                    call: Call::Cas { expected: seen, new: unique },
                    outcome,
                    invoked: t1,
                    returned,
                });
            }
        }
    }
}

//! The faults the nemesis injects into a running ensemble, one at a time, each undone before
//! the next: the victim is the leader half the time, else any node.

use std::time::Duration;

use anyhow::{Context, Result};

use super::Rng;
use crate::{Cluster, NodeOpts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 a node, restart it a little later.
    Kill,
    /// SIGSTOP a node (a hung process), SIGCONT it a little later.
    Pause,
    /// Cut a node off: both ways, only its outgoing or only its incoming messages; or, with
    /// five nodes, split the ensemble 2 | 3. Healed a little later.
    Partition,
    /// 20% message loss and duplication and 30 ms delay on every link, for a while.
    Flaky,
    /// Replace a member under load: remove it, wipe its disk, add it back empty as a learner,
    /// promote it to voter.
    Membership,
    /// A power cut: kill -9 and lose every WAL byte that was not fdatasynced; restart later.
    PowerLoss,
    /// A node's wall clock jumps an hour (or ten minutes) forward or back, and later back to
    /// the true time.
    Clock,
}

pub const ALL: &[Fault] =
    &[Fault::Kill, Fault::Pause, Fault::Partition, Fault::Flaky, Fault::Membership, Fault::PowerLoss, Fault::Clock];

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        ALL.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
            format!("unknown fault {s:?} (one of {})", names.join(", "))
        })
    }
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Flaky => "flaky",
            Fault::Membership => "membership",
            Fault::PowerLoss => "power-loss",
            Fault::Clock => "clock",
        }
    }
}

/// The node settings the faults in `faults` need.
pub fn node_opts(faults: &[Fault]) -> NodeOpts {
    NodeOpts {
        net_faults: faults.iter().any(|f| matches!(f, Fault::Partition | Fault::Flaky)),
        // A short window, so that a cut loses something without slowing every write much.
        wal_drop_unsynced_ms: faults.contains(&Fault::PowerLoss).then_some(5),
        clock_offsets: faults.contains(&Fault::Clock),
        ..NodeOpts::default()
    }
}

/// Inject `fault` on a seeded victim, hold it a seeded while, undo it. Returns what was done.
pub async fn inject(c: &mut Cluster, fault: Fault, rng: &mut Rng) -> Result<String> {
    let ids = c.ids();
    let victim = if rng.below(2) == 0 {
        c.wait_leader(Duration::from_secs(10)).await.unwrap_or(ids[0])
    } else {
        ids[rng.below(ids.len() as u64) as usize]
    };
    let hold = Duration::from_millis(500 + rng.below(2_500));
    let what = match fault {
        Fault::Kill => {
            c.kill(victim);
            tokio::time::sleep(hold).await;
            c.restart(victim).await?;
            format!("kill {victim}")
        }
        Fault::PowerLoss => {
            c.power_cut(victim)?;
            tokio::time::sleep(hold).await;
            c.restart(victim).await?;
            format!("power cut {victim}")
        }
        Fault::Pause => {
            c.pause(victim, true);
            tokio::time::sleep(hold).await;
            c.pause(victim, false);
            format!("pause {victim}")
        }
        Fault::Partition => {
            let rest: Vec<u64> = ids.iter().copied().filter(|i| *i != victim).collect();
            let what = match rng.below(if ids.len() >= 5 { 4 } else { 3 }) {
                0 => {
                    c.partition(&[&[victim], &rest])?;
                    format!("isolate {victim}")
                }
                1 => {
                    c.faults(victim, serde_json::json!({ "drop_to": rest }))?;
                    format!("{victim} cannot send")
                }
                2 => {
                    for id in &rest {
                        c.faults(*id, serde_json::json!({ "drop_to": [victim] }))?;
                    }
                    format!("{victim} cannot receive")
                }
                _ => {
                    let (a, b) = rest.split_at(1);
                    let minority = [victim, a[0]];
                    c.partition(&[&minority, b])?;
                    format!("split {minority:?} | {b:?}")
                }
            };
            tokio::time::sleep(hold).await;
            c.heal()?;
            what
        }
        Fault::Flaky => {
            for id in &ids {
                let others = ids.iter().filter(|p| *p != id);
                let loss: serde_json::Map<String, serde_json::Value> =
                    others.clone().map(|p| (p.to_string(), serde_json::json!(0.2))).collect();
                let delay: serde_json::Map<String, serde_json::Value> =
                    others.map(|p| (p.to_string(), serde_json::json!(30))).collect();
                let spec = serde_json::json!({ "loss": loss, "dup": loss, "delay_ms": delay, "seed": rng.next_u64() });
                c.faults(*id, spec)?;
            }
            tokio::time::sleep(hold).await;
            c.heal()?;
            "flaky links".into()
        }
        Fault::Clock => {
            let offset = [3_600_000i64, -3_600_000, 600_000, -600_000][rng.below(4) as usize];
            c.clock_jump(victim, offset)?;
            tokio::time::sleep(hold * 2).await;
            c.clock_jump(victim, 0)?;
            format!("clock of {victim} {offset:+} ms")
        }
        Fault::Membership => {
            replace_member(c, victim).await?;
            format!("replace {victim}")
        }
    };
    Ok(what)
}

/// Remove `id`, wipe it, add it back empty as a learner, promote it. Each step is retried:
/// its reply may be lost to a leader change (removing the leader makes one).
async fn replace_member(c: &mut Cluster, id: u64) -> Result<()> {
    let admin = c.client()?;
    let addr = c.addr(id);
    retry(&format!("remove {id}"), || admin.member_remove(id), || async { membership(c, id).await == Some(None) })
        .await?;
    c.wipe(id)?;
    c.restart(id).await?;
    retry(
        "add",
        || admin.member_add(id, &addr, true),
        || async { membership(c, id).await.is_some_and(|m| m.is_some()) },
    )
    .await?;
    retry("promote", || admin.member_promote(id), || async { membership(c, id).await == Some(Some(true)) }).await?;
    Ok(())
}

/// `id` in the membership as the current leader sees it: None if no leader answered,
/// Some(None) if absent, Some(Some(voter)) if present.
async fn membership(c: &Cluster, id: u64) -> Option<Option<bool>> {
    for other in c.ids() {
        if let Ok(st) = c.status(other).await {
            if st.role == "leader" && st.id != id {
                return Some(st.members.iter().find(|m| m.id == id).map(|m| m.voter));
            }
        }
    }
    None
}

async fn retry<T, F, Fut, D, DFut>(what: &str, mut step: F, mut done: D) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, corral_client::ClientError>>,
    D: FnMut() -> DFut,
    DFut: std::future::Future<Output = bool>,
{
    let mut last = None;
    for _ in 0..20 {
        match step().await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        if done().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no attempt")))
        .context(format!("membership: {what}"))
}

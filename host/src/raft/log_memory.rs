//! Keeps the Raft log's memory bounded in bytes, not only in entries.
//!
//! Why: the log store holds every entry in memory until a snapshot lets openraft purge it, and
//! openraft's snapshot policy and the entries it keeps behind a snapshot are counts of entries
//! (`raft.snapshot_every`, `raft.keep_logs`). An entry's size varies by three orders of
//! magnitude: a group of ~15 small writes encodes to ~2.3 KB, one 1 MB value to 1 MB; 25,000
//! entries of 1 MB values would be 25 GB.
//!
//! So, every [`CHECK_EVERY`], on every node (each compacts its own log):
//! - the entries applied since the last check are kept encoded only ([`LogStore::cool`]):
//!   decoded, they take about six times the bytes;
//! - when the entries after the last snapshot hold more than `raft.snapshot_log_bytes` (or the
//!   last snapshot's size, if larger: a snapshot rewrites the whole state, which must not be
//!   done for every few MB of log when the state is large), a snapshot is triggered;
//! - when the entries kept behind the last snapshot hold more than `raft.keep_log_bytes`, a
//!   purge of the oldest of them is triggered. openraft purges only what a snapshot covers, and
//!   waits for any replication still reading those entries; a follower that needs them later
//!   gets the snapshot instead.
//!
//! Only the node's own compaction changes: what is applied, and so every replica's state, is
//! the same whenever a snapshot is taken.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::log_store::LogStore;
use super::Raft;
use crate::config::RaftConfig;

const CHECK_EVERY: Duration = Duration::from_millis(200);
/// A snapshot asked for and not seen this long after is asked for again (openraft ignores the
/// trigger while another snapshot is being built).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The budgets are `cfg`'s `snapshot_log_bytes` and `keep_log_bytes`.
pub async fn run(raft: Raft, log: LogStore, snapshot_file: PathBuf, cfg: RaftConfig, stop: CancellationToken) {
    let mut asked: Option<(Option<u64>, Instant)> = None;
    let mut purge_asked: Option<u64> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (snapshot, applied) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (m.snapshot.map(|id| id.index), m.last_applied.map(|id| id.index))
        };
        if let Some(applied) = applied {
            log.cool(applied);
        }
        let since = log.bytes_after(snapshot);
        if since > cfg.snapshot_log_bytes {
            // The state's size, as of its last snapshot (none yet: the log's budget decides).
            let state_bytes = std::fs::metadata(&snapshot_file).map_or(0, |m| m.len());
            let waiting = asked.is_some_and(|(at, when)| at == snapshot && when.elapsed() < RETRY_AFTER);
            if since > state_bytes && !waiting {
                tracing::info!(
                    log_bytes = since,
                    state_bytes,
                    "snapshot: the log since the last one outgrew its budget"
                );
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                asked = Some((snapshot, Instant::now()));
            }
        }
        if let Some(through) = snapshot {
            if let Some(upto) = log.purge_point(through, cfg.keep_log_bytes) {
                if purge_asked.is_none_or(|p| upto > p) {
                    tracing::debug!(upto, "purging the log kept behind the snapshot beyond its budget");
                    if raft.trigger().purge_log(upto).await.is_err() {
                        return;
                    }
                    purge_asked = Some(upto);
                }
            }
        }
    }
}

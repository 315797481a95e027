//! `RaftStateMachine` over `state`: applies entries in batches (one atomic store batch per
//! call, the applied log id and membership written in it), builds and installs snapshots.
//!
//! Durability: the store is not flushed per batch (the WAL is the durable record; a restart
//! re-applies from the store's applied id). It *is* flushed before a snapshot is reported
//! built, because openraft purges the WAL behind a snapshot.
//!
//! The latest snapshot is kept in `snapshot` (atomic file). Installing one writes that file
//! first; on open, a store whose applied id is missing or older than the file is reloaded from
//! it, so a crash in the middle of an install is repaired.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use bincode::Options;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};

use super::applier::Applier;
use super::{ApplyResult, LogId, StorageError, TypeConfig};
use crate::state::{self, Op, State};
use crate::wal::atomic_file;

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT_FILE: &str = "snapshot";

type Membership = StoredMembership<u64, openraft::BasicNode>;
type Meta = SnapshotMeta<u64, openraft::BasicNode>;

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(&super::io_err(e)).into()
}

pub struct StateMachine {
    state: State,
    dir: PathBuf,
    applier: Applier,
}

pub struct SnapshotBuilder {
    state: State,
    dir: PathBuf,
}

impl StateMachine {
    /// `after_power_loss`: the test-only power-loss model. The store is fsynced only when a
    /// snapshot is taken, so after a power cut it may hold nothing newer than that snapshot:
    /// start from the snapshot (or empty) and let the WAL replay the rest.
    pub fn open(dir: &Path, state: State, after_power_loss: bool) -> Result<StateMachine, StorageError> {
        let applier = Applier::start(state.clone(), apply_entries).map_err(sm_err)?;
        let sm = StateMachine { state, dir: dir.to_path_buf(), applier };
        if after_power_loss {
            match sm.load_snapshot()? {
                Some((meta, data)) => sm.import(&meta, &data)?,
                None => sm.state.replace_all(Vec::new(), 0).map_err(sm_err)?,
            }
            return Ok(sm);
        }
        if let Some((meta, data)) = sm.load_snapshot()? {
            let (applied, _) = read_applied(&sm.state)?;
            if applied < meta.last_log_id {
                tracing::warn!(snapshot = %meta.snapshot_id, "state is behind its last snapshot: reloading it");
                sm.import(&meta, &data)?;
            }
        }
        Ok(sm)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    fn load_snapshot(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError> {
        match atomic_file::load(&self.dir, SNAPSHOT_FILE).map_err(sm_err)? {
            Some(bytes) => Ok(Some(opts().deserialize(&bytes).map_err(sm_err)?)),
            None => Ok(None),
        }
    }

    fn import(&self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        let items = state::decode_snapshot(data).map_err(sm_err)?;
        self.state.replace_all(items, meta.last_log_id.map_or(0, |l| l.index)).map_err(sm_err)?;
        // The snapshot's own applied id and membership, whatever the exported keys said.
        self.state
            .with_txn(|t| {
                t.put_meta(APPLIED, opts().serialize(&meta.last_log_id).unwrap_or_default());
                t.put_meta(MEMBERSHIP, opts().serialize(&meta.last_membership).unwrap_or_default());
                Ok(())
            })
            .map_err(sm_err)?;
        self.state.flush().map_err(sm_err)
    }
}

impl StateMachine {
    /// The applied log index recorded in `state` (0 if none): where a fresh watch history
    /// starts, before openraft replays the rest.
    pub fn applied_index(state: &State) -> Result<u64, StorageError> {
        Ok(read_applied(state)?.0.map_or(0, |l| l.index))
    }
}

/// Apply `entries` in one transaction (see `state::State::with_txn`).
fn apply_entries(state: &State, entries: &[openraft::Entry<TypeConfig>]) -> Result<Vec<ApplyResult>, StorageError> {
    state
        .with_txn(|txn| {
            let mut out = Vec::with_capacity(entries.len());
            let mut last = None;
            for e in entries {
                let index = e.log_id.index;
                let res = match &e.payload {
                    EntryPayload::Blank => ApplyResult::One(Ok(corral_proto::Reply::Done { index })),
                    EntryPayload::Normal(cmd) => match &cmd.op {
                        Op::Batch { cmds } => ApplyResult::Batch(state.apply_batch(txn, index, cmds)?),
                        _ => ApplyResult::One(state.apply(txn, index, cmd)?),
                    },
                    EntryPayload::Membership(m) => {
                        let stored = Membership::new(Some(e.log_id), m.clone());
                        txn.put_meta(MEMBERSHIP, opts().serialize(&stored).unwrap_or_default());
                        ApplyResult::One(Ok(corral_proto::Reply::Done { index }))
                    }
                };
                out.push(res);
                last = Some(e.log_id);
            }
            if last.is_some() {
                txn.put_meta(APPLIED, opts().serialize(&last).unwrap_or_default());
            }
            Ok(out)
        })
        .map_err(sm_err)
}

fn read_applied(state: &State) -> Result<(Option<LogId>, Membership), StorageError> {
    let applied = match state.get_meta(APPLIED).map_err(sm_err)? {
        Some(b) => opts().deserialize(&b).map_err(sm_err)?,
        None => None,
    };
    let membership = match state.get_meta(MEMBERSHIP).map_err(sm_err)? {
        Some(b) => opts().deserialize(&b).map_err(sm_err)?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        read_applied(&self.state)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        self.applier.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { state: self.state.clone(), dir: self.dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        // Reject a corrupt snapshot before touching anything.
        state::decode_snapshot(&data).map_err(sm_err)?;
        crate::blocking::off_worker(|| {
            save_snapshot_file(&self.dir, meta, &data)?;
            self.import(meta, &data)
        })?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

fn save_snapshot_file(dir: &Path, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
    let bytes = opts().serialize(&(meta, data)).map_err(sm_err)?;
    atomic_file::save(dir, SNAPSHOT_FILE, &bytes).map_err(sm_err)
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let state = self.state.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            // One export under the state's read lock: data, applied id and membership agree.
            let items = state.export().map_err(sm_err)?;
            let find = |name: &str| {
                let key = [b"m/".as_slice(), name.as_bytes()].concat();
                items.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
            };
            let last_log_id: Option<LogId> = match find(APPLIED) {
                Some(b) => opts().deserialize(&b).map_err(sm_err)?,
                None => None,
            };
            let last_membership: Membership = match find(MEMBERSHIP) {
                Some(b) => opts().deserialize(&b).map_err(sm_err)?,
                None => Membership::default(),
            };
            // Everything in this snapshot must be durable before the WAL behind it is purged.
            state.flush().map_err(sm_err)?;
            let data = state::encode_snapshot(&items);
            let snapshot_id = match last_log_id {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
                None => "empty".to_string(),
            };
            let meta = Meta { last_log_id, last_membership, snapshot_id };
            save_snapshot_file(&dir, &meta, &data)?;
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
        })
        .await
        .map_err(sm_err)?
    }
}

/// Where the latest snapshot of the node with data directory `dir` is kept.
pub fn snapshot_file(dir: &Path) -> std::path::PathBuf {
    dir.join(SNAPSHOT_FILE)
}

//! Sessions in the replicated state: created by a log entry (its index is the id), ended by
//! a close or by the leader's expiry entry, which removes its ephemeral nodes. Each session
//! keeps the replies to its recent writes, so a write resent after a lost reply is answered
//! from here instead of being applied twice (the client says which replies it has, and those
//! are forgotten).
//!
//! Liveness (who was heard from when) is *not* here: it is the leader's business, and reaches
//! the log only as an `ExpireSessions` entry.

use std::collections::BTreeMap;

use bincode::Options;
use corral_proto::{Error, Reply};
use serde::{Deserialize, Serialize};

use super::store::{KvStore, StoreError};
use super::txn::Txn;
use super::{keys, tree};

/// Replies kept per session at most, whatever the client says: bounds memory.
const MAX_REPLIES: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub timeout_ms: u64,
    pub secret: Vec<u8>,
    /// Request id → the reply it got.
    pub replies: BTreeMap<u64, Result<Reply, Error>>,
}

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
}

fn decode(b: &[u8]) -> Result<SessionRecord, StoreError> {
    opts().deserialize(b).map_err(|e| StoreError(format!("corrupt session record: {e}")))
}

pub fn load(txn: &Txn<'_>, id: u64) -> Result<Option<SessionRecord>, StoreError> {
    txn.get(&keys::session(id))?.map(|b| decode(&b)).transpose()
}

fn save(txn: &mut Txn<'_>, id: u64, rec: &SessionRecord) {
    txn.put(keys::session(id), opts().serialize(rec).unwrap_or_default());
}

pub fn create(txn: &mut Txn<'_>, index: u64, timeout_ms: u64, secret: &[u8]) -> Reply {
    save(txn, index, &SessionRecord { timeout_ms, secret: secret.to_vec(), replies: BTreeMap::new() });
    Reply::Session { id: index, secret: secret.to_vec(), timeout_ms }
}

/// End session `id`: its ephemeral nodes and its record go. False if it was already gone.
pub fn end(txn: &mut Txn<'_>, index: u64, id: u64) -> Result<bool, StoreError> {
    if txn.get(&keys::session(id))?.is_none() {
        return Ok(false);
    }
    let prefix = keys::ephemeral_prefix(id);
    for (k, _) in txn.scan_prefix(&prefix, usize::MAX)? {
        if let Some(p) = keys::parse_ephemeral(&k) {
            if let Some(rec) = tree::load(txn, &p)? {
                if rec.stat.ephemeral_owner == id {
                    tree::remove(txn, index, &p, &rec)?;
                }
            }
        }
        txn.delete(k);
    }
    txn.delete(keys::session(id));
    txn.delete(keys::session_floor(id));
    txn.session_ended(id);
    Ok(true)
}

/// The lowest request id of session `id` that may still be applied. The client had the reply
/// to every request below it (or had given up on it) when it sent a later one, whose
/// `done_below` said so, and those replies are forgotten. A copy of such a request that
/// reaches the log late (an earlier attempt still on its way when the client resent it
/// elsewhere and moved on) must not run: with its reply gone, it would run a second time.
pub fn answered_below(txn: &Txn<'_>, id: u64) -> Result<u64, StoreError> {
    Ok(txn.get(&keys::session_floor(id))?.and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0))
}

/// Keep `res` as the reply to request `req`; forget replies the client already has, and raise
/// the session's `floor` (as `answered_below` read it) to match.
pub fn remember(
    txn: &mut Txn<'_>,
    id: u64,
    mut rec: SessionRecord,
    req: u64,
    done_below: u64,
    floor: u64,
    res: &Result<Reply, Error>,
) {
    rec.replies = rec.replies.split_off(&done_below);
    rec.replies.insert(req, res.clone());
    if done_below > floor {
        txn.put(keys::session_floor(id), done_below.to_be_bytes().to_vec());
    }
    while rec.replies.len() > MAX_REPLIES {
        rec.replies.pop_first();
    }
    save(txn, id, &rec);
}

/// Every live session: (id, timeout ms). For the leader's expiry check, every tick: it reads
/// only the record's first field, not its cache of replies.
pub fn list(store: &dyn KvStore) -> Result<Vec<(u64, u64)>, StoreError> {
    #[derive(Deserialize)]
    struct Head {
        timeout_ms: u64,
    }
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(keys::SESSION_PREFIX)? {
        let id = k.get(keys::SESSION_PREFIX.len()..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        if let Some(id) = id {
            let head: Head = opts()
                .allow_trailing_bytes()
                .deserialize(&v)
                .map_err(|e| StoreError(format!("corrupt session record: {e}")))?;
            out.push((id, head.timeout_ms));
        }
    }
    Ok(out)
}

/// The session's timeout if `secret` is its secret.
pub fn verify(store: &dyn KvStore, id: u64, secret: &[u8]) -> Result<Option<u64>, StoreError> {
    match store.get(&keys::session(id))? {
        Some(b) => {
            let rec = decode(&b)?;
            Ok((rec.secret == secret).then_some(rec.timeout_ms))
        }
        None => Ok(None),
    }
}

//! The node tree, as ZooKeeper's: persistent, ephemeral, sequential, container and TTL nodes.
//! Key layout in `keys`. The root `/` always exists; until first written it has a zero stat.

use bincode::Options;
use corral_proto::{acl, path, AclEntry, CreateMode, Error, EventKind, Reply, Stat};
use serde::{Deserialize, Serialize};

use super::command::TreeLimits;
use super::keys;
use super::store::{KvStore, StoreError};
use super::txn::Txn;

/// `Ok(Err(e))`: the deterministic answer to a request that cannot be done (nothing changed);
/// `Err(StoreError)`: the store failed, which stops the node.
pub type Applied = Result<Result<Reply, Error>, StoreError>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeRecord {
    pub stat: Stat,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Deleted when its last child is deleted.
    pub container: bool,
    /// 0, or: deleted once unmodified for this long while childless.
    pub ttl_ms: u64,
    /// Who may do what; copied from the parent at creation. Empty only for a root that was
    /// never given one: the configured default applies.
    pub acl: Vec<AclEntry>,
}

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
}

fn decode(bytes: &[u8]) -> Result<NodeRecord, StoreError> {
    opts().deserialize(bytes).map_err(|e| StoreError(format!("corrupt node record: {e}")))
}

fn from_raw(raw: Option<Vec<u8>>, path: &str) -> Result<Option<NodeRecord>, StoreError> {
    match raw {
        Some(b) => decode(&b).map(Some),
        None if path == "/" => Ok(Some(NodeRecord::default())),
        None => Ok(None),
    }
}

pub(crate) fn load(txn: &Txn<'_>, path: &str) -> Result<Option<NodeRecord>, StoreError> {
    from_raw(txn.get(&keys::node(path))?, path)
}

fn save(txn: &mut Txn<'_>, path: &str, rec: &NodeRecord) {
    txn.put(keys::node(path), opts().serialize(rec).unwrap_or_default());
}

fn check_path(p: &str) -> Result<(), Error> {
    path::validate(p).map_err(|reason| Error::InvalidPath { path: p.into(), reason: reason.into() })
}

fn no_node(path: &str) -> Error {
    Error::NoNode { path: path.into() }
}

macro_rules! refuse {
    ($e:expr) => {
        return Ok(Err($e))
    };
}

/// What an operation needs to know about the entry it runs in.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub index: u64,
    /// State-machine time (leader time, non-decreasing).
    pub now: u64,
    /// The requesting session (0: none): the owner of an ephemeral node.
    pub session: u64,
    pub limits: TreeLimits,
    pub identity: &'a str,
    /// Skip ACL checks (an admin identity, or the system itself).
    pub admin: bool,
    pub default_acl: &'a [AclEntry],
}

/// The ACL that governs `rec`.
fn effective_acl<'r>(rec: &'r NodeRecord, default: &'r [AclEntry]) -> &'r [AclEntry] {
    super::effective_acl_of(&rec.acl, default)
}

fn require(at: &At<'_>, rec: &NodeRecord, path: &str, perm: u8, what: &str) -> Result<(), Error> {
    if at.admin || acl::allows(effective_acl(rec, at.default_acl), at.identity, perm) {
        return Ok(());
    }
    Err(Error::NoAuth { path: path.into(), identity: at.identity.into(), what: what.into() })
}

pub fn create(txn: &mut Txn<'_>, at: &At<'_>, p: &str, data: &[u8], mode: CreateMode) -> Applied {
    let At { index, now, session, limits, .. } = *at;
    if let Err(e) = check_path(p) {
        refuse!(e);
    }
    if p == "/" {
        refuse!(Error::NodeExists { path: p.into() });
    }
    if mode.ephemeral && session == 0 {
        refuse!(Error::NoSession);
    }
    if (mode.ephemeral as u8 + mode.container as u8 + mode.ttl_ms.is_some() as u8) > 1 {
        refuse!(Error::bad_request("a node is at most one of ephemeral, container and TTL"));
    }
    if mode.ttl_ms == Some(0) {
        refuse!(Error::bad_request("a TTL must be above 0 ms"));
    }
    let parent = path::parent(p);
    let Some(mut prec) = load(txn, parent)? else {
        refuse!(no_node(parent));
    };
    if let Err(e) = require(at, &prec, parent, acl::CREATE, "create children of") {
        refuse!(e);
    }
    if prec.stat.ephemeral_owner != 0 {
        refuse!(Error::bad_request(format!("{parent} is ephemeral and cannot have children")));
    }
    if limits.max_children > 0 && u64::from(prec.stat.num_children) >= limits.max_children {
        refuse!(Error::LimitReached { what: format!("children of {parent}"), limit: limits.max_children });
    }
    let nodes = node_count(txn)?;
    if limits.max_nodes > 0 && nodes >= limits.max_nodes {
        refuse!(Error::LimitReached { what: "nodes in the tree".into(), limit: limits.max_nodes });
    }
    let actual = if mode.sequential {
        let key = keys::seq_counter(parent);
        let n = match txn.get(&key)? {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            None => 0,
        };
        txn.put(key, (n + 1).to_le_bytes().to_vec());
        format!("{p}{n:020}")
    } else {
        p.to_string()
    };
    if txn.get(&keys::node(&actual))?.is_some() {
        refuse!(Error::NodeExists { path: actual });
    }
    let owner = if mode.ephemeral { session } else { 0 };
    let stat = Stat {
        czxid: index,
        mzxid: index,
        pzxid: index,
        ctime: now,
        mtime: now,
        ephemeral_owner: owner,
        data_length: data.len() as u32,
        ..Stat::default()
    };
    let ttl_ms = mode.ttl_ms.unwrap_or(0);
    let acl = effective_acl(&prec, at.default_acl).to_vec();
    save(txn, &actual, &NodeRecord { stat, data: data.to_vec(), container: mode.container, ttl_ms, acl });
    txn.put(keys::child(parent, path::name(&actual)), Vec::new());
    if owner != 0 {
        txn.put(keys::ephemeral(owner, &actual), Vec::new());
    }
    if ttl_ms > 0 {
        txn.put(keys::ttl(now.saturating_add(ttl_ms), &actual), Vec::new());
    }
    prec.stat.cversion += 1;
    prec.stat.pzxid = index;
    prec.stat.num_children += 1;
    save(txn, parent, &prec);
    set_node_count(txn, nodes + 1);
    txn.emit(&actual, EventKind::Created);
    txn.emit(parent, EventKind::ChildrenChanged);
    Ok(Ok(Reply::Created { path: actual, stat }))
}

pub fn set(txn: &mut Txn<'_>, at: &At<'_>, p: &str, data: &[u8], version: Option<u64>) -> Applied {
    let (index, now) = (at.index, at.now);
    if let Err(e) = check_path(p) {
        refuse!(e);
    }
    let Some(mut rec) = load(txn, p)? else {
        refuse!(no_node(p));
    };
    if let Err(e) = require(at, &rec, p, acl::WRITE, "write") {
        refuse!(e);
    }
    if let Some(v) = version {
        if v != rec.stat.version {
            refuse!(Error::BadVersion { path: p.into(), expected: v, actual: rec.stat.version });
        }
    }
    if rec.ttl_ms > 0 {
        txn.delete(keys::ttl(rec.stat.mtime.saturating_add(rec.ttl_ms), p));
        txn.put(keys::ttl(now.saturating_add(rec.ttl_ms), p), Vec::new());
    }
    rec.stat.version += 1;
    rec.stat.mzxid = index;
    rec.stat.mtime = now;
    rec.stat.data_length = data.len() as u32;
    rec.data = data.to_vec();
    save(txn, p, &rec);
    txn.emit(p, EventKind::DataChanged);
    Ok(Ok(Reply::Stat(Some(rec.stat))))
}

/// A client's delete: checks the path, the version and that there are no children.
pub fn delete(txn: &mut Txn<'_>, at: &At<'_>, p: &str, version: Option<u64>) -> Applied {
    let index = at.index;
    if let Err(e) = check_path(p) {
        refuse!(e);
    }
    if p == "/" {
        refuse!(Error::bad_request("the root node cannot be deleted"));
    }
    let Some(rec) = load(txn, p)? else {
        refuse!(no_node(p));
    };
    let parent = path::parent(p);
    if let Some(prec) = load(txn, parent)? {
        if let Err(e) = require(at, &prec, parent, acl::DELETE, "delete children of") {
            refuse!(e);
        }
    }
    if let Some(v) = version {
        if v != rec.stat.version {
            refuse!(Error::BadVersion { path: p.into(), expected: v, actual: rec.stat.version });
        }
    }
    if rec.stat.num_children > 0 {
        refuse!(Error::NotEmpty { path: p.into() });
    }
    remove(txn, index, p, &rec)?;
    Ok(Ok(Reply::Done { index }))
}

const NODE_COUNT: &str = "nodes";

/// Nodes in the tree, the root not counted.
pub fn node_count(txn: &Txn<'_>) -> Result<u64, StoreError> {
    Ok(txn.get_meta(NODE_COUNT)?.and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes))
}

fn set_node_count(txn: &mut Txn<'_>, n: u64) {
    txn.put_meta(NODE_COUNT, n.to_le_bytes().to_vec());
}

/// Replace a node's ACL (the admin permission on it is needed).
pub fn set_acl(txn: &mut Txn<'_>, at: &At<'_>, p: &str, new: &[AclEntry]) -> Applied {
    if let Err(e) = check_path(p) {
        refuse!(e);
    }
    if new.is_empty() {
        refuse!(Error::bad_request("an ACL needs at least one entry"));
    }
    let Some(mut rec) = load(txn, p)? else {
        refuse!(no_node(p));
    };
    if let Err(e) = require(at, &rec, p, acl::ADMIN, "change the ACL of") {
        refuse!(e);
    }
    rec.acl = new.to_vec();
    save(txn, p, &rec);
    Ok(Ok(Reply::Stat(Some(rec.stat))))
}

/// The node's own ACL (empty: the default applies), or None if there is no such node.
pub fn acl_of(store: &dyn KvStore, p: &str) -> Result<Option<Vec<AclEntry>>, StoreError> {
    Ok(from_raw(store.get(&keys::node(p))?, p)?.map(|rec| rec.acl))
}

/// `multi`'s check: the node exists (at `version`).
pub fn check(txn: &Txn<'_>, p: &str, version: Option<u64>) -> Applied {
    if let Err(e) = check_path(p) {
        refuse!(e);
    }
    let Some(rec) = load(txn, p)? else {
        refuse!(no_node(p));
    };
    match version {
        Some(v) if v != rec.stat.version => {
            refuse!(Error::BadVersion { path: p.into(), expected: v, actual: rec.stat.version })
        }
        _ => Ok(Ok(Reply::Stat(Some(rec.stat)))),
    }
}

/// Remove a childless node and its index entries; a container parent left empty goes too.
pub(crate) fn remove(txn: &mut Txn<'_>, index: u64, p: &str, rec: &NodeRecord) -> Result<(), StoreError> {
    let parent = path::parent(p);
    let Some(mut prec) = load(txn, parent)? else {
        return Err(StoreError(format!("{p} exists but its parent {parent} does not")));
    };
    txn.delete(keys::node(p));
    txn.delete(keys::child(parent, path::name(p)));
    let nodes = node_count(txn)?;
    set_node_count(txn, nodes.saturating_sub(1));
    if rec.stat.ephemeral_owner != 0 {
        txn.delete(keys::ephemeral(rec.stat.ephemeral_owner, p));
    }
    if rec.ttl_ms > 0 {
        txn.delete(keys::ttl(rec.stat.mtime.saturating_add(rec.ttl_ms), p));
    }
    prec.stat.cversion += 1;
    prec.stat.pzxid = index;
    prec.stat.num_children = prec.stat.num_children.saturating_sub(1);
    save(txn, parent, &prec);
    txn.emit(p, EventKind::Deleted);
    txn.emit(parent, EventKind::ChildrenChanged);
    if prec.stat.num_children == 0 && parent != "/" {
        if prec.container {
            remove(txn, index, parent, &prec)?;
        } else if prec.ttl_ms > 0 {
            // Childless again: its TTL runs (it may already be due).
            txn.put(keys::ttl(prec.stat.mtime.saturating_add(prec.ttl_ms), parent), Vec::new());
        }
    }
    Ok(())
}

/// Delete every TTL node whose deadline (mtime + ttl) is at or before `now` and that has no
/// children. One with children leaves the index until its last child goes.
pub fn sweep_ttl(txn: &mut Txn<'_>, index: u64, now: u64) -> Result<(), StoreError> {
    loop {
        let due = txn.scan_prefix(keys::TTL_PREFIX, 16)?;
        let mut swept = false;
        for (k, _) in due {
            let Some((deadline, p)) = keys::parse_ttl(&k) else {
                txn.delete(k);
                continue;
            };
            if deadline > now {
                return Ok(());
            }
            txn.delete(k);
            swept = true;
            if let Some(rec) = load(txn, &p)? {
                if rec.ttl_ms > 0 && rec.stat.num_children == 0 {
                    remove(txn, index, &p, &rec)?;
                }
            }
        }
        if !swept {
            return Ok(());
        }
    }
}

/// The earliest TTL deadline, if any (the leader proposes a tick when it is due).
pub fn next_ttl_deadline(store: &dyn KvStore) -> Result<Option<u64>, StoreError> {
    Ok(store.scan_prefix_limit(keys::TTL_PREFIX, 1)?.first().and_then(|(k, _)| keys::parse_ttl(k)).map(|(d, _)| d))
}

pub fn get(store: &dyn KvStore, p: &str) -> Result<Result<(Vec<u8>, Stat), Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    Ok(match from_raw(store.get(&keys::node(p))?, p)? {
        Some(rec) => Ok((rec.data, rec.stat)),
        None => Err(no_node(p)),
    })
}

pub fn children(store: &dyn KvStore, p: &str) -> Result<Result<Vec<String>, Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    if from_raw(store.get(&keys::node(p))?, p)?.is_none() {
        return Ok(Err(no_node(p)));
    }
    let prefix = keys::child_prefix(p);
    let names = store
        .scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
        .collect();
    Ok(Ok(names))
}

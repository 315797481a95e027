//! The node tree, as ZooKeeper's. Key layout in the flat store:
//! - `n/<path>` → the node: `(Stat, data)`;
//! - `c/<parent>\0<name>` → empty: the children index, so listing is a prefix scan in name
//!   order (paths never contain NUL).
//!
//! The root `/` always exists; until first written it has a zero stat.

use bincode::Options;
use corral_proto::{path, Error, Reply, Stat};

use super::command::Op;
use super::store::{KvStore, StoreError};
use super::txn::Txn;

fn node_key(path: &str) -> Vec<u8> {
    let mut k = b"n/".to_vec();
    k.extend_from_slice(path.as_bytes());
    k
}

fn child_prefix(parent: &str) -> Vec<u8> {
    let mut k = b"c/".to_vec();
    k.extend_from_slice(parent.as_bytes());
    k.push(0);
    k
}

fn child_key(parent: &str, name: &str) -> Vec<u8> {
    let mut k = child_prefix(parent);
    k.extend_from_slice(name.as_bytes());
    k
}

fn encode(stat: &Stat, data: &[u8]) -> Vec<u8> {
    bincode::DefaultOptions::new().serialize(&(stat, data)).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<(Stat, Vec<u8>), StoreError> {
    bincode::DefaultOptions::new().deserialize(bytes).map_err(|e| StoreError(format!("corrupt node record: {e}")))
}

fn load(raw: Option<Vec<u8>>, path: &str) -> Result<Option<(Stat, Vec<u8>)>, StoreError> {
    match raw {
        Some(b) => decode(&b).map(Some),
        None if path == "/" => Ok(Some((Stat::default(), Vec::new()))),
        None => Ok(None),
    }
}

fn check_path(p: &str) -> Result<(), Error> {
    path::validate(p).map_err(|reason| Error::InvalidPath { path: p.into(), reason: reason.into() })
}

fn no_node(path: &str) -> Error {
    Error::NoNode { path: path.into() }
}

/// Apply one tree operation. `Err(StoreError)` is a storage failure (fatal for the node);
/// `Ok(Err(Error))` is the deterministic answer to a request that cannot be done.
pub fn apply(txn: &mut Txn<'_>, index: u64, now: u64, op: &Op) -> Result<Result<Reply, Error>, StoreError> {
    match op {
        Op::Create { path, data } => create(txn, index, now, path, data),
        Op::Set { path, data, version } => set(txn, index, now, path, data, *version),
        Op::Delete { path, version } => delete(txn, index, path, *version),
    }
}

fn create(txn: &mut Txn<'_>, index: u64, now: u64, p: &str, data: &[u8]) -> Result<Result<Reply, Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    if p == "/" || txn.get(&node_key(p))?.is_some() {
        return Ok(Err(Error::NodeExists { path: p.into() }));
    }
    let parent = path::parent(p);
    let Some((mut pstat, pdata)) = load(txn.get(&node_key(parent))?, parent)? else {
        return Ok(Err(no_node(parent)));
    };
    if pstat.ephemeral_owner != 0 {
        return Ok(Err(Error::bad_request(format!("{parent} is ephemeral and cannot have children"))));
    }
    let stat = Stat {
        czxid: index,
        mzxid: index,
        pzxid: index,
        ctime: now,
        mtime: now,
        data_length: data.len() as u32,
        ..Stat::default()
    };
    txn.put(node_key(p), encode(&stat, data));
    txn.put(child_key(parent, path::name(p)), Vec::new());
    pstat.cversion += 1;
    pstat.pzxid = index;
    pstat.num_children += 1;
    txn.put(node_key(parent), encode(&pstat, &pdata));
    Ok(Ok(Reply::Created { path: p.into(), stat }))
}

fn set(
    txn: &mut Txn<'_>,
    index: u64,
    now: u64,
    p: &str,
    data: &[u8],
    version: Option<u64>,
) -> Result<Result<Reply, Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    let Some((mut stat, _)) = load(txn.get(&node_key(p))?, p)? else {
        return Ok(Err(no_node(p)));
    };
    if let Some(v) = version {
        if v != stat.version {
            return Ok(Err(Error::BadVersion { path: p.into(), expected: v, actual: stat.version }));
        }
    }
    stat.version += 1;
    stat.mzxid = index;
    stat.mtime = now;
    stat.data_length = data.len() as u32;
    txn.put(node_key(p), encode(&stat, data));
    Ok(Ok(Reply::Stat(Some(stat))))
}

fn delete(txn: &mut Txn<'_>, index: u64, p: &str, version: Option<u64>) -> Result<Result<Reply, Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    if p == "/" {
        return Ok(Err(Error::bad_request("the root node cannot be deleted")));
    }
    let Some((stat, _)) = load(txn.get(&node_key(p))?, p)? else {
        return Ok(Err(no_node(p)));
    };
    if let Some(v) = version {
        if v != stat.version {
            return Ok(Err(Error::BadVersion { path: p.into(), expected: v, actual: stat.version }));
        }
    }
    if stat.num_children > 0 {
        return Ok(Err(Error::NotEmpty { path: p.into() }));
    }
    let parent = path::parent(p);
    let Some((mut pstat, pdata)) = load(txn.get(&node_key(parent))?, parent)? else {
        return Err(StoreError(format!("{p} exists but its parent {parent} does not")));
    };
    txn.delete(node_key(p));
    txn.delete(child_key(parent, path::name(p)));
    pstat.cversion += 1;
    pstat.pzxid = index;
    pstat.num_children = pstat.num_children.saturating_sub(1);
    txn.put(node_key(parent), encode(&pstat, &pdata));
    Ok(Ok(Reply::Done { index }))
}

pub fn get(store: &dyn KvStore, p: &str) -> Result<Result<(Vec<u8>, Stat), Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    Ok(match load(store.get(&node_key(p))?, p)? {
        Some((stat, data)) => Ok((data, stat)),
        None => Err(no_node(p)),
    })
}

pub fn children(store: &dyn KvStore, p: &str) -> Result<Result<Vec<String>, Error>, StoreError> {
    if let Err(e) = check_path(p) {
        return Ok(Err(e));
    }
    if load(store.get(&node_key(p))?, p)?.is_none() {
        return Ok(Err(no_node(p)));
    }
    let prefix = child_prefix(p);
    let names = store
        .scan_prefix(&prefix)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
        .collect();
    Ok(Ok(names))
}

//! The key layout of the flat store, in one place:
//! - `n/<path>` → a node ([`super::tree::NodeRecord`]);
//! - `c/<parent>\0<name>` → empty: the children index (listing is a prefix scan, in name order;
//!   paths never contain NUL);
//! - `q/<parent>` → u64 LE: the parent's sequential-name counter;
//! - `s/<id u64 BE>` → a session ([`super::session::SessionRecord`]);
//! - `e/<id u64 BE><path>` → empty: the session's ephemeral nodes;
//! - `t/<deadline u64 BE><path>` → empty: TTL nodes by the time they may go;
//! - `m/<name>` → metadata (applied log id, membership, time).
//!
//! Big-endian numbers keep prefix scans in numeric order.

fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

pub fn node(path: &str) -> Vec<u8> {
    join(b"n/", &[path.as_bytes()])
}

pub fn child_prefix(parent: &str) -> Vec<u8> {
    join(b"c/", &[parent.as_bytes(), b"\0"])
}

pub fn child(parent: &str, name: &str) -> Vec<u8> {
    join(&child_prefix(parent), &[name.as_bytes()])
}

pub fn seq_counter(parent: &str) -> Vec<u8> {
    join(b"q/", &[parent.as_bytes()])
}

pub const SESSION_PREFIX: &[u8] = b"s/";

pub fn session(id: u64) -> Vec<u8> {
    join(SESSION_PREFIX, &[&id.to_be_bytes()])
}

pub fn ephemeral_prefix(id: u64) -> Vec<u8> {
    join(b"e/", &[&id.to_be_bytes()])
}

pub fn ephemeral(id: u64, path: &str) -> Vec<u8> {
    join(&ephemeral_prefix(id), &[path.as_bytes()])
}

pub const TTL_PREFIX: &[u8] = b"t/";

pub fn ttl(deadline: u64, path: &str) -> Vec<u8> {
    join(TTL_PREFIX, &[&deadline.to_be_bytes(), path.as_bytes()])
}

/// (deadline, path) of a `t/` key.
pub fn parse_ttl(key: &[u8]) -> Option<(u64, String)> {
    let rest = key.strip_prefix(TTL_PREFIX)?;
    let (d, p) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(d.try_into().ok()?), String::from_utf8(p.to_vec()).ok()?))
}

/// The path of an `e/<id>` key.
pub fn parse_ephemeral(key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(b"e/")?;
    String::from_utf8(rest.get(8..)?.to_vec()).ok()
}

pub fn meta(name: &str) -> Vec<u8> {
    join(b"m/", &[name.as_bytes()])
}

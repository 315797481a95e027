//! The key layout of the flat store, in one place:
//! - `n/<path>` → a node ([`super::tree::NodeRecord`]);
//! - `c/<parent>\0<name>` → empty: the children index (listing is a prefix scan, in name order;
//!   paths never contain NUL);
//! - `q/<parent>` → u64 LE: the parent's sequential-name counter;
//! - `s/<id u64 BE>` → a session ([`super::session::SessionRecord`]);
//! - `e/<id u64 BE><path>` → empty: the session's ephemeral nodes;
//! - `d/<id u64 BE>` → u64 BE: the session's answered floor ([`super::session::answered_below`]);
//! - `t/<deadline u64 BE><path>` → empty: TTL nodes by the time they may go;
//! - `m/<name>` → metadata (applied log id, membership, time).
//!
//! Big-endian numbers keep prefix scans in numeric order.

fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // Sized up front: a key built by growing reallocated once or twice (~1% of a node's CPU at
    // ephemeral x64, where every command builds a dozen keys).
    let mut k = Vec::with_capacity(prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    k.extend_from_slice(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The children index's tag, and what ends the parent's path in it. A child's key is built
/// in one go rather than on top of [`child_prefix`] (one allocation, not two), so both are
/// spelled from these.
const CHILDREN: &[u8] = b"c/";
const PARENT_END: &[u8] = b"\0";
/// The ephemeral index's tag (the same reason).
const EPHEMERALS: &[u8] = b"e/";

pub fn node(path: &str) -> Vec<u8> {
    join(b"n/", &[path.as_bytes()])
}

pub fn child_prefix(parent: &str) -> Vec<u8> {
    join(CHILDREN, &[parent.as_bytes(), PARENT_END])
}

pub fn child(parent: &str, name: &str) -> Vec<u8> {
    join(CHILDREN, &[parent.as_bytes(), PARENT_END, name.as_bytes()])
}

pub fn seq_counter(parent: &str) -> Vec<u8> {
    join(b"q/", &[parent.as_bytes()])
}

pub const SESSION_PREFIX: &[u8] = b"s/";

pub fn session(id: u64) -> Vec<u8> {
    join(SESSION_PREFIX, &[&id.to_be_bytes()])
}

/// A key of its own, not a field of the session record: records already stored keep decoding
/// (bincode has no defaults for fields it did not write).
pub fn session_floor(id: u64) -> Vec<u8> {
    join(b"d/", &[&id.to_be_bytes()])
}

pub fn ephemeral_prefix(id: u64) -> Vec<u8> {
    join(EPHEMERALS, &[&id.to_be_bytes()])
}

pub fn ephemeral(id: u64, path: &str) -> Vec<u8> {
    join(EPHEMERALS, &[&id.to_be_bytes(), path.as_bytes()])
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
    let rest = key.strip_prefix(EPHEMERALS)?;
    String::from_utf8(rest.get(8..)?.to_vec()).ok()
}

pub fn meta(name: &str) -> Vec<u8> {
    join(b"m/", &[name.as_bytes()])
}

// Plugins (see `super::plugins`):
// - `p/r/<name>` → the plugin's record; `p/c/<name>` → its code (a component);
// - `p/k/<name>\0<key>` → its key-value namespace;
// - `p/t/<deadline u64 BE><name>\0<tag>` → empty: timers by deadline; `p/g/<name>\0<tag>` →
//   deadline u64 BE: the same timers by tag;
// - `p/w/<session u64 BE><name>` → empty: who watches a session;
// - `x/<session u64 BE><index u64 BE><n u32 BE>` → a notification in a session's mailbox.

pub const PLUGIN_RECORD_PREFIX: &[u8] = b"p/r/";

pub fn plugin_record(name: &str) -> Vec<u8> {
    join(PLUGIN_RECORD_PREFIX, &[name.as_bytes()])
}

pub fn plugin_code(name: &str) -> Vec<u8> {
    join(b"p/c/", &[name.as_bytes()])
}

pub fn plugin_kv_prefix(name: &str) -> Vec<u8> {
    join(b"p/k/", &[name.as_bytes(), b"\0"])
}

pub const TIMER_PREFIX: &[u8] = b"p/t/";

pub fn timer(deadline: u64, name: &str, tag: &[u8]) -> Vec<u8> {
    join(TIMER_PREFIX, &[&deadline.to_be_bytes(), name.as_bytes(), b"\0", tag])
}

/// (deadline, plugin, tag) of a `p/t/` key.
pub fn parse_timer(key: &[u8]) -> Option<(u64, String, Vec<u8>)> {
    let rest = key.strip_prefix(TIMER_PREFIX)?;
    let (d, rest) = rest.split_at_checked(8)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let name = String::from_utf8(rest[..nul].to_vec()).ok()?;
    Some((u64::from_be_bytes(d.try_into().ok()?), name, rest[nul + 1..].to_vec()))
}

pub fn timer_by_tag_prefix(name: &str) -> Vec<u8> {
    join(b"p/g/", &[name.as_bytes(), b"\0"])
}

pub fn timer_by_tag(name: &str, tag: &[u8]) -> Vec<u8> {
    join(&timer_by_tag_prefix(name), &[tag])
}

pub fn session_watchers_prefix(session: u64) -> Vec<u8> {
    join(b"p/w/", &[&session.to_be_bytes()])
}

pub fn session_watcher(session: u64, name: &str) -> Vec<u8> {
    join(&session_watchers_prefix(session), &[name.as_bytes()])
}

pub fn mailbox_prefix(session: u64) -> Vec<u8> {
    join(b"x/", &[&session.to_be_bytes()])
}

pub fn mailbox(session: u64, index: u64, n: u32) -> Vec<u8> {
    join(&mailbox_prefix(session), &[&index.to_be_bytes(), &n.to_be_bytes()])
}

/// The session whose mailbox an `x/` key is in.
pub fn mailbox_session(key: &[u8]) -> Option<u64> {
    let id = key.strip_prefix(b"x/")?.get(..8)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

/// (index, n) of an `x/` key.
pub fn parse_mailbox(key: &[u8]) -> Option<(u64, u32)> {
    let rest = key.strip_prefix(b"x/")?.get(8..)?;
    let (i, n) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(i.try_into().ok()?), u32::from_be_bytes(n.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing children and a session's ephemerals are prefix scans: each key must start with
    /// its family's prefix, and an ephemeral key must give its path back.
    #[test]
    fn keys_start_with_their_prefix() {
        assert_eq!(child("/a", "b"), b"c//a\0b".to_vec());
        assert!(child("/a", "b").starts_with(&child_prefix("/a")));
        assert!(!child("/ab", "c").starts_with(&child_prefix("/a")));
        let e = ephemeral(7, "/x/y");
        assert!(e.starts_with(&ephemeral_prefix(7)));
        assert_eq!(parse_ephemeral(&e).as_deref(), Some("/x/y"));
    }
}

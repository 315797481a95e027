//! A digest of the whole replicated state (tree, sessions, plugins and their key-value data),
//! kept up to date entry by entry, so replicas can compare their states at the same log index
//! without scanning them: divergence (a non-deterministic plugin host, a bug, a corrupted
//! disk) becomes an alarm instead of silently different answers.
//!
//! The digest is a sum, lane by lane (4 × u64, wrapping), of SHA-256(key, value) over every
//! key outside `m/` (node-local bookkeeping: applied id, membership, time, the digest itself).
//! A sum is order-free, so an entry updates it from its own writes alone: minus the old pair,
//! plus the new one. [`full`] recomputes it from scratch, to check the running one.

use sha2::{Digest as _, Sha256};

use super::store::StoreError;
use super::txn::{Txn, Writes};

pub type Digest = [u8; 32];

/// Where the running digest and the index it is at are kept.
pub const META: &str = "digest";

fn counted(key: &[u8]) -> bool {
    !key.starts_with(b"m/")
}

fn pair_hash(key: &[u8], value: &[u8]) -> [u64; 4] {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    let out = h.finalize();
    let mut lanes = [0u64; 4];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    }
    lanes
}

fn to_lanes(d: &Digest) -> [u64; 4] {
    let mut lanes = [0u64; 4];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    }
    lanes
}

fn from_lanes(lanes: [u64; 4]) -> Digest {
    let mut d = [0u8; 32];
    for (i, lane) in lanes.iter().enumerate() {
        d[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
    }
    d
}

/// The running digest stored in `txn`'s view: (index it is at, digest).
pub fn stored(txn: &Txn<'_>) -> Result<(u64, Digest), StoreError> {
    Ok(decode(txn.get_meta(META)?.as_deref()))
}

pub fn decode(b: Option<&[u8]>) -> (u64, Digest) {
    match b {
        Some(b) if b.len() == 40 => {
            let index = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            (index, b[8..].try_into().unwrap_or([0; 32]))
        }
        _ => (0, [0; 32]),
    }
}

/// The digest after applying `writes` over `before` (what the keys held before them).
pub fn advance(
    digest: Digest,
    writes: &Writes,
    before: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<Digest, StoreError> {
    let mut lanes = to_lanes(&digest);
    for (k, new) in writes.iter().filter(|(k, _)| counted(k)) {
        if let Some(old) = before(k)? {
            for (l, h) in lanes.iter_mut().zip(pair_hash(k, &old)) {
                *l = l.wrapping_sub(h);
            }
        }
        if let Some(new) = new {
            for (l, h) in lanes.iter_mut().zip(pair_hash(k, new)) {
                *l = l.wrapping_add(h);
            }
        }
    }
    Ok(from_lanes(lanes))
}

pub fn encode(index: u64, d: &Digest) -> Vec<u8> {
    [index.to_le_bytes().as_slice(), d].concat()
}

/// The digest of `items` computed from scratch.
pub fn full(items: &super::Items) -> Digest {
    let mut lanes = [0u64; 4];
    for (k, v) in items.iter().filter(|(k, _)| counted(k)) {
        for (l, h) in lanes.iter_mut().zip(pair_hash(k, v)) {
            *l = l.wrapping_add(h);
        }
    }
    from_lanes(lanes)
}

//! One layer of writes that sled does not hold yet (`SledStore`'s `active` or `frozen`): the
//! writes in key order, for scans and for the write-back, and the hashes of their keys, so that a
//! point lookup of a key the layer does not hold skips the ordered search.
//!
//! Why: at ephemeral x64 every read that goes past the entry's own writes searched both layers'
//! `BTreeMap`s of some thousands of keys, a `memcmp` at each step over keys that share long
//! prefixes (`n//bench/...`): about 5% of the nodes' CPU. About half of those reads are of keys
//! the layers do not hold (a new node, its index keys, the digest's look at what they held
//! before), and most of them were searched for in both layers.
//!
//! The hash set only ever says "not here" for sure: it holds the hash of every key in the
//! layer, so a miss in it is a miss in the map; a hit (or a collision) goes on to the map,
//! which alone decides. What a read returns does not depend on it, nor on the hash's seed,
//! which is random (per process) because the keys are clients' paths: nobody can choose
//! paths that all land in one slot of the set.

use std::hash::BuildHasher as _;
use std::sync::OnceLock;

use foldhash::fast::RandomState;

use super::txn::Writes;

#[derive(Default)]
pub(crate) struct Layer {
    writes: Writes,
    hashes: foldhash::HashSet<u64>,
}

/// A key's hash, computed once per lookup for both layers (so one seed for all of them).
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    static SEEDED: OnceLock<RandomState> = OnceLock::new();
    SEEDED.get_or_init(RandomState::default).hash_one(key)
}

impl Layer {
    /// An empty layer with room for `keys` keys' hashes: the next layer is sized like the one
    /// just frozen, instead of regrowing its set from empty every write-back (~1% of a node's
    /// CPU at ephemeral x64).
    pub fn with_capacity(keys: usize) -> Layer {
        Layer { writes: Writes::new(), hashes: foldhash::HashSet::with_capacity_and_hasher(keys, Default::default()) }
    }

    pub fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.hashes.insert(key_hash(&key));
        self.writes.insert(key, value);
    }

    /// What this layer holds for `key` (`Some(None)`: a deletion); `hash` is `key_hash(key)`.
    pub fn get(&self, key: &[u8], hash: u64) -> Option<&Option<Vec<u8>>> {
        if !self.hashes.contains(&hash) {
            return None;
        }
        self.writes.get(key)
    }

    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_finds_what_was_inserted_and_nothing_else() {
        let mut l = Layer::default();
        let keys: Vec<Vec<u8>> = (0..2000u32).map(|i| format!("n//bench/eph-{i:010}").into_bytes()).collect();
        for (i, k) in keys.iter().enumerate() {
            l.insert(k.clone(), (i % 3 != 0).then(|| vec![i as u8]));
        }
        for (i, k) in keys.iter().enumerate() {
            let want = (i % 3 != 0).then(|| vec![i as u8]);
            assert_eq!(l.get(k, key_hash(k)), Some(&want), "key {i}");
        }
        for i in 2000..4000u32 {
            let k = format!("n//bench/eph-{i:010}").into_bytes();
            assert_eq!(l.get(&k, key_hash(&k)), None, "key {i} was never inserted");
        }
        // A later write of a key replaces the earlier one.
        l.insert(keys[0].clone(), Some(b"again".to_vec()));
        assert_eq!(l.get(&keys[0], key_hash(&keys[0])), Some(&Some(b"again".to_vec())));
        assert_eq!(l.writes().len(), 2000);
    }

    #[test]
    fn a_hash_that_matches_still_needs_the_key_itself() {
        let mut l = Layer::default();
        l.insert(b"a".to_vec(), Some(b"1".to_vec()));
        // The right hash for another key (a collision, as the set sees it): the map decides.
        assert_eq!(l.get(b"b", key_hash(b"a")), None);
        assert!(!l.is_empty());
    }
}

//! Values sled holds, kept in memory for point reads (`SledStore::get`).
//!
//! Why: every write reads the keys it changes (the node, its parent, the session) twice, once
//! in the command and once for the digest, and once written back most of those reads went
//! to sled, whose lookup (an epoch pin and a walk of its page table) was about 7% of the
//! machine's CPU in write x64. Here a read of a key sled already answered, or that a
//! write-back just wrote, is one hash lookup.
//!
//! Only a cache: it holds exactly what sled holds for each key in it (`None`: sled has no
//! such key), never anything newer, so what `apply` reads does not depend on it. Its owner
//! keeps it so: entries are added from a sled read made while no write-back of that key can
//! run, and refreshed (or, for a deletion, dropped) from a write-back's batch once sled has
//! it. When it outgrows its budget it is emptied rather than trimmed: no order to keep, and
//! refilling is only reads.
//!
//! The write-back also asks it which deletions sled can skip ([`ReadCache::known_absent`]).

use foldhash::HashMap;

use super::txn::Writes;

pub(crate) struct ReadCache {
    /// foldhash, not std's SipHash, which was a third of a lookup's time; randomly seeded too.
    map: HashMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
    max_bytes: usize,
}

/// What an entry costs besides its key and value (the map's slot, two vectors' headers).
const OVERHEAD: usize = 64;

fn entry_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    OVERHEAD + key.len() + value.as_ref().map_or(0, Vec::len)
}

impl ReadCache {
    pub fn new(max_bytes: usize) -> Self {
        ReadCache { map: HashMap::default(), bytes: 0, max_bytes }
    }

    /// `Some(v)`: sled holds `v` for `key` (`v == None`: no such key). `None`: not cached.
    pub fn get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.map.get(key).cloned()
    }

    /// Whether sled is known to hold no value for `key`.
    pub fn known_absent(&self, key: &[u8]) -> bool {
        matches!(self.map.get(key), Some(None))
    }

    /// Remember what sled holds for `key`.
    pub fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(old) = self.map.remove(&key) {
            self.bytes -= entry_bytes(&key, &old);
        }
        let add = entry_bytes(&key, &value);
        if self.bytes + add > self.max_bytes {
            self.clear();
        }
        self.bytes += add;
        self.map.insert(key, value);
    }

    /// Sled now holds `writes` (a write-back finished): refresh the keys of it already cached,
    /// and forget those it deleted. Keys not cached are left out: a batch's keys are mostly read
    /// again soon only if they were read before, and copying every value of every batch cost
    /// more than it saved. A deleted key is forgotten rather than cached as absent: most are
    /// never read again (an ephemeral sequential node's name is not reused), and keeping each
    /// one made the map grow, and rehash, through a whole run of creates and deletes (6.6% of
    /// the servers' CPU at ephemeral x64). A key read again after all costs one sled lookup.
    pub fn absorb(&mut self, writes: &Writes) {
        for (k, v) in writes {
            match v {
                None => {
                    if let Some(old) = self.map.remove(k.as_slice()) {
                        self.bytes -= entry_bytes(k, &old);
                    }
                }
                Some(v) => {
                    if let Some(cached) = self.map.get_mut(k.as_slice()) {
                        let before = entry_bytes(k, cached);
                        *cached = Some(v.clone());
                        self.bytes = self.bytes - before + entry_bytes(k, cached);
                    }
                }
            }
        }
        if self.bytes > self.max_bytes {
            self.clear();
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_absence_and_a_value_are_told_apart_from_not_cached() {
        let mut c = ReadCache::new(1 << 20);
        assert_eq!(c.get(b"k"), None);
        c.insert(b"k".to_vec(), None);
        assert_eq!(c.get(b"k"), Some(None));
        c.insert(b"k".to_vec(), Some(b"v".to_vec()));
        assert_eq!(c.get(b"k"), Some(Some(b"v".to_vec())));
    }

    #[test]
    fn a_write_back_refreshes_the_keys_cached_and_forgets_those_it_deleted() {
        let mut c = ReadCache::new(1 << 20);
        c.insert(b"a".to_vec(), Some(b"old".to_vec()));
        c.insert(b"gone".to_vec(), Some(b"x".to_vec()));
        let writes: Writes = [
            (b"a".to_vec(), Some(b"new".to_vec())),
            (b"gone".to_vec(), None),
            (b"b".to_vec(), Some(b"never read".to_vec())),
        ]
        .into_iter()
        .collect();
        c.absorb(&writes);
        assert_eq!(c.get(b"a"), Some(Some(b"new".to_vec())));
        // Deleted: forgotten, not cached as absent.
        assert_eq!(c.get(b"gone"), None);
        assert_eq!(c.get(b"b"), None);
        assert_eq!(c.bytes(), entry_bytes(b"a", &Some(b"new".to_vec())));
    }

    #[test]
    fn it_empties_itself_instead_of_outgrowing_its_budget() {
        let mut c = ReadCache::new(1000);
        for i in 0..100u32 {
            c.insert(i.to_be_bytes().to_vec(), Some(vec![0; 50]));
            assert!(c.bytes() <= 1000, "{} bytes after {i}", c.bytes());
        }
        // The newest is always kept.
        assert_eq!(c.get(&99u32.to_be_bytes()), Some(Some(vec![0; 50])));
        // Replacing a value accounts for the old one.
        let before = c.bytes();
        c.insert(99u32.to_be_bytes().to_vec(), Some(vec![0; 10]));
        assert_eq!(c.bytes(), before - 40);
    }
}

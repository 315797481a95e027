//! A set of entries under one key prefix (a recipe's wait queue, say) whose size is kept under
//! a key of its own: saying how many wait, or where a newcomer stands, reads one key instead
//! of the whole set, which made a recipe O(waiters) per call.

use crate::kv;

/// `prefix`: the entries' keys. `count_key`: where their number is kept. `since_key`: a key
/// the recipe writes whenever it adds an entry (its sequence counter, say). A set with no count
/// but with that key is state from a version of the recipe that did not count: it is counted
/// once, from the entries.
pub struct Counted {
    pub prefix: Vec<u8>,
    pub count_key: Vec<u8>,
    pub since_key: Vec<u8>,
}

impl Counted {
    pub fn count(&self) -> Result<u64, String> {
        if let Some(n) = kv::get_json::<u64>(&self.count_key)? {
            return Ok(n);
        }
        if kv::get(&self.since_key).is_none() {
            return Ok(0);
        }
        Ok(kv::scan_prefix(&self.prefix).len() as u64)
    }

    /// Put `key` (under the prefix) with `value`; the set's size after. A key already there
    /// gets the new value and is not counted twice.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<u64, String> {
        // Counted before the write, which a count from the entries would already see.
        let n = self.count()?;
        let n = if kv::get(key).is_some() { n } else { n + 1 };
        kv::put(key, value);
        kv::put_json(&self.count_key, &n)?;
        Ok(n)
    }

    /// Take `key` out, if it is there (the count must not drift); whether it was.
    pub fn remove(&self, key: &[u8]) -> Result<bool, String> {
        if kv::get(key).is_none() {
            return Ok(false);
        }
        let n = self.count()?.saturating_sub(1);
        kv::delete(key);
        kv::put_json(&self.count_key, &n)?;
        Ok(true)
    }
}

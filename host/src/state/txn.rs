//! A write overlay over a [`KvStore`]: reads see the overlay first, writes stay in memory until
//! the caller commits them as one batch. Keys are kept in a `BTreeMap` so the batch, and so the
//! store, never depends on hash order.

use std::collections::BTreeMap;

use corral_proto::{Event, EventKind};

use super::store::{KvStore, StoreError};

pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    super::keys::meta(name)
}

const TIME_KEY: &str = "time";

pub struct Txn<'a> {
    base: TxnBase<'a>,
    writes: Writes,
    /// Events the writes produce, in order; stamped with their entry's index by the caller.
    events: Vec<Event>,
    /// Sessions these writes ended (closed or expired).
    ended: Vec<u64>,
}

enum TxnBase<'a> {
    Store(&'a dyn KvStore),
    Parent(&'a Txn<'a>),
}

impl<'a> Txn<'a> {
    pub fn new(store: &'a dyn KvStore) -> Self {
        Txn { base: TxnBase::Store(store), writes: Writes::new(), events: Vec::new(), ended: Vec::new() }
    }

    /// An overlay on top of this one, to be absorbed on success or dropped on failure.
    pub fn nested(&self) -> Txn<'_> {
        Txn { base: TxnBase::Parent(self), writes: Writes::new(), events: Vec::new(), ended: Vec::new() }
    }

    pub fn absorb(&mut self, (writes, events, ended): (Writes, Vec<Event>, Vec<u64>)) {
        self.writes.extend(writes);
        self.events.extend(events);
        self.ended.extend(ended);
    }

    pub fn into_parts(self) -> (Writes, Vec<Event>, Vec<u64>) {
        (self.writes, self.events, self.ended)
    }

    pub fn session_ended(&mut self, id: u64) {
        self.ended.push(id);
    }

    pub fn emit(&mut self, path: &str, kind: EventKind) {
        self.events.push(Event { index: 0, seq: 0, path: path.to_string(), kind });
    }

    pub fn events_len(&self) -> usize {
        self.events.len()
    }

    /// Stamp the events from `from` on as entry `index`'s, numbered by their place in this
    /// overlay (which holds one entry's events only), so the commands of a batch entry
    /// number theirs on from each other's.
    pub fn stamp_events(&mut self, from: usize, index: u64) {
        for (seq, ev) in self.events.iter_mut().enumerate().skip(from) {
            ev.index = index;
            ev.seq = seq as u32;
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        match &self.base {
            TxnBase::Store(s) => s.get(key),
            TxnBase::Parent(p) => p.get(key),
        }
    }

    /// The first `limit` keys under `prefix`, in order, as this overlay sees them.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<super::Items, StoreError> {
        let mine = || self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix));
        // Fetch enough from below that `limit` keys survive this overlay's deletions.
        let deletions = mine().filter(|(_, v)| v.is_none()).count();
        let want = limit.saturating_add(deletions);
        let below = match &self.base {
            TxnBase::Store(s) => s.scan_prefix_limit(prefix, want)?,
            TxnBase::Parent(p) => p.scan_prefix(prefix, want)?,
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = below.into_iter().collect();
        for (k, v) in mine() {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Whether this overlay or a parent has a pending write under `prefix`.
    pub fn has_pending_under(&self, prefix: &[u8]) -> bool {
        let mine = self.writes.range(prefix.to_vec()..).next().is_some_and(|(k, _)| k.starts_with(prefix));
        mine || matches!(&self.base, TxnBase::Parent(p) if p.has_pending_under(prefix))
    }

    /// Every pending write under `prefix`, this overlay's over its parents'.
    pub fn pending_under(&self, prefix: &[u8]) -> Writes {
        let mut out = match &self.base {
            TxnBase::Store(_) => Writes::new(),
            TxnBase::Parent(p) => p.pending_under(prefix),
        };
        for (k, v) in self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// How many sessions this overlay has ended so far (see [`Txn::ended_since`]).
    pub fn ended_len(&self) -> usize {
        self.ended.len()
    }

    pub fn ended_since(&self, from: usize) -> Vec<u64> {
        self.ended.get(from..).unwrap_or_default().to_vec()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    pub fn put_meta(&mut self, name: &str, value: Vec<u8>) {
        self.put(meta_key(name), value);
    }

    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&meta_key(name))
    }

    /// State-machine time: the command's leader timestamp, never earlier than any before it
    /// (a new leader's clock may be behind the old one's).
    pub fn advance_time(&mut self, ts_ms: u64) -> Result<u64, StoreError> {
        let prev = decode_time(self.get_meta(TIME_KEY)?);
        let now = prev.max(ts_ms);
        if now != prev {
            self.put_meta(TIME_KEY, now.to_le_bytes().to_vec());
        }
        Ok(now)
    }
}

/// The state's time as last applied (0: nothing applied yet).
pub(crate) fn stored_time(store: &dyn KvStore) -> Result<u64, StoreError> {
    Ok(decode_time(store.get(&meta_key(TIME_KEY))?))
}

fn decode_time(stored: Option<Vec<u8>>) -> u64 {
    stored.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
}

//! THE deterministic state machine: the node tree (and, as they land, sessions and plugins).
//!
//! `apply` depends only on the replicated state and the command: no clock (time is the leader's
//! timestamp inside the command, made non-decreasing here), no randomness, no IO beyond the
//! [`KvStore`] it is handed, no hash-map iteration order. It knows nothing of Raft: the caller
//! passes the log index and stores its own metadata (applied log id, membership) through
//! [`Txn::put_meta`] in the same atomic batch.

pub mod clock;
mod command;
mod deadlines;
pub mod digest;
mod keys;
mod layer;
mod mail_bells;
mod multi;
pub mod plugins;
mod read_cache;
pub mod session;
mod sled_store;
mod snapshot;
mod store;
mod tree;
mod txn;

use std::sync::{Arc, RwLock};

use corral_proto::{Error, Event, Reply, Stat};

pub use command::{Command, Op, TreeLimits};

/// The ACL that governs a node whose own ACL is `own` (empty: `default`).
pub fn effective_acl_of<'a>(
    own: &'a [corral_proto::AclEntry],
    default: &'a [corral_proto::AclEntry],
) -> &'a [corral_proto::AclEntry] {
    if own.is_empty() {
        default
    } else {
        own
    }
}
pub use sled_store::SledStore;
pub use snapshot::{decode as decode_snapshot, encode as encode_snapshot};
pub use store::{KvStore, MemStore, StoreError};
pub use txn::Txn;

/// Every key and value of the store, in key order: what a snapshot carries.
pub type Items = Vec<(Vec<u8>, Vec<u8>)>;

/// The state machine and its store. Applies take the write lock and commit one batch; reads
/// take the read lock, so a read never sees half of a batch (sled alone would not promise that
/// across a prefix scan).
/// Receives the events of every committed batch, in order, while the state's write lock is
/// still held: a reader holding the read lock sees the state and the events it produced
/// agree. (The node's watch hub; a no-op in tests.)
pub trait EventSink: Send + Sync {
    fn publish(&self, events: Vec<Event>);
    /// The state was replaced (a snapshot was installed): no events link the old to the new.
    fn reset(&self, index: u64);
    /// These sessions ended: forget what is kept for them.
    fn sessions_ended(&self, ids: &[u64]);
}

#[derive(Clone)]
pub struct State {
    store: Arc<dyn KvStore>,
    /// Readers hold it shared; a commit (or a snapshot install) holds it alone, so a reader
    /// sees an entry's writes, applied index and events all at once or not at all.
    lock: Arc<RwLock<()>>,
    /// Held by a writer from the start of its transaction to its commit: the transaction reads
    /// the store as of its start, so no other writer may commit meanwhile. Readers never wait
    /// for it: an entry that runs a plugin for a second holds up no read for that second.
    writer: Arc<std::sync::Mutex<()>>,
    sink: Option<Arc<dyn EventSink>>,
    /// The plugin runtime (None: plugin entries fail; unit tests of the tree).
    plugins: Option<Arc<crate::plugin::Plugins>>,
    /// Wakes a session's waiting mailbox readers when an entry changes its mailbox.
    mail: Arc<mail_bells::MailBells>,
    /// Test-only: write a key other replicas do not (`[test] diverge`).
    diverge: bool,
    /// The state digest after each recent entry (node-local): what replicas compare.
    digests: Arc<std::sync::Mutex<std::collections::VecDeque<(u64, digest::Digest)>>>,
    /// Leader time, anchored to this state's time (see [`clock`]).
    clock: Arc<clock::LeaderClock>,
    /// When the next TTL node or timer may be due: most commands need not look.
    floors: Arc<deadlines::Floors>,
}

/// Plugin fuel that an entry may be expected to burn on a runtime worker (see
/// `raft::applier`): at about 7 fuel per ns, some 15 ms of guest code, well inside the 50 ms
/// between heartbeats. A lone call with the default budget (10 million) fits however it runs.
pub const INLINE_FUEL: u64 = 100_000_000;

/// The most fuel the calls of an entry applied on a worker may be granted in all: ~45 ms,
/// still inside the 50 ms between heartbeats. Burned only by calls whose code has run cheaply
/// on this node so far (see [`State::may_run_long`]) and then, all at once, burns its
/// budget; that code's next entries go by their budgets again. 30 calls with the default
/// budget (a group commit at 64 clients holds about 16).
pub const INLINE_BUDGET: u64 = 3 * INLINE_FUEL;

/// How much more than its dearest call so far a call of the same code is expected to burn.
const PEAK_MARGIN: u64 = 2;

/// Entries whose digest is remembered for comparison with other replicas.
const DIGESTS_KEPT: usize = 10_000;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

impl State {
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        let mail = Arc::new(mail_bells::MailBells::default());
        let digests = Arc::default();
        let clock = Arc::default();
        State {
            store,
            lock: Arc::new(RwLock::new(())),
            writer: Arc::default(),
            sink: None,
            plugins: None,
            mail,
            diverge: false,
            digests,
            clock,
            floors: Arc::default(),
        }
    }

    /// Test-only: the wall clock this node reads is off by the milliseconds in this file.
    pub fn with_clock_offset_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.clock = Arc::new(clock::LeaderClock::new(file));
        self
    }

    /// Leader time now: what a leader of `term` stamps into the commands it proposes.
    /// `applied_term`: the term of the last entry this replica applied (see
    /// [`clock::LeaderClock::now_ms`]).
    pub fn leader_now_ms(&self, term: u64, applied_term: Option<u64>) -> u64 {
        self.clock.now_ms(term, applied_term == Some(term), || {
            let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
            txn::stored_time(self.store.as_ref()).unwrap_or(0)
        })
    }

    pub fn with_plugins(mut self, plugins: Arc<crate::plugin::Plugins>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Test-only: make this replica's state differ from the others' (`[test] diverge`).
    pub fn with_divergence(mut self, on: bool) -> Self {
        self.diverge = on;
        self
    }

    /// What plugin work needs; `warm`: the instance slot of the entry being applied (none for
    /// a query).
    fn env<'a>(&'a self, warm: Option<&'a crate::plugin::WarmSlot>) -> plugins::Env<'a> {
        plugins::Env { plugins: self.plugins.as_deref(), store: &self.store, warm }
    }

    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Run `f` under the read lock: nothing is applied (nor published) meanwhile.
    pub fn read_locked<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// Whether applying `cmds` may run plugin code for long: calls expected to burn more than
    /// [`INLINE_FUEL`] in all, or granted more than [`INLINE_BUDGET`]; work of unknown size
    /// (see [`command::PluginWork`]); or a plugin timer that may fall due by their newest
    /// timestamp. A call is expected to burn its budget until its code has run on this node,
    /// then up to [`PEAK_MARGIN`] times the most one of its calls has burned here: a group
    /// commit of 16 cheap calls with the default budget (10 million each) stays in place,
    /// where budgets alone would send it to the apply thread (two thread wake-ups per entry on
    /// each replica; about 6 µs of server CPU per call at 64 clients). Only says where to apply
    /// them (`raft::applier`): a wrong answer costs time, never a different result, so
    /// node-local history may decide it.
    pub fn may_run_long<'a>(&self, cmds: impl Iterator<Item = &'a Command>) -> Result<bool, StoreError> {
        let (mut expected, mut granted, mut newest) = (0u64, 0u64, 0u64);
        // A group commit's calls are mostly of one plugin: look each one up once.
        let mut known: Vec<(&str, u64, u64)> = Vec::new();
        let mut pending: Vec<&Command> = cmds.collect();
        while let Some(c) = pending.pop() {
            newest = newest.max(c.ts_ms);
            if let Op::Batch { cmds } = &c.op {
                pending.extend(cmds);
                continue;
            }
            match c.op.plugin_work() {
                command::PluginWork::None => {}
                command::PluginWork::Unbounded => return Ok(true),
                command::PluginWork::Call(name) => {
                    let (budget, expect) = match known.iter().find(|(n, ..)| *n == name) {
                        Some(&(_, b, e)) => (b, e),
                        None => {
                            // An unknown plugin's call fails without running anything.
                            let (b, peak) = plugins::fuel_of(self.store.as_ref(), self.plugins.as_deref(), name)?
                                .unwrap_or((0, None));
                            let e = peak.map_or(b, |p| p.saturating_mul(PEAK_MARGIN).min(b));
                            known.push((name, b, e));
                            (b, e)
                        }
                    };
                    expected = expected.saturating_add(expect);
                    granted = granted.saturating_add(budget);
                    if expected > INLINE_FUEL || granted > INLINE_BUDGET {
                        return Ok(true);
                    }
                }
            }
        }
        let now = txn::stored_time(&*self.store)?.max(newest);
        Ok(self.floors.timer_may_be_due(now))
    }

    /// Run `f` with a write overlay and commit what it wrote as one atomic batch. Readers
    /// wait only for the commit, not for `f`.
    pub fn with_txn<T>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut txn = Txn::new(self.store.as_ref());
        let out = f(&mut txn)?;
        let (writes, events, ended) = txn.into_parts();
        let _guard = self.lock.write().unwrap_or_else(|p| p.into_inner());
        self.floors.committing(&writes);
        // Found before the commit consumes `writes`; rung after it, so a woken reader sees the mail.
        let mailed = mail_bells::mailed(&writes, &ended);
        self.store.commit(writes)?;
        self.mail.ring(&mailed);
        if let Some(sink) = &self.sink {
            if !events.is_empty() {
                sink.publish(events);
            }
            if !ended.is_empty() {
                sink.sessions_ended(&ended);
            }
        }
        Ok(out)
    }

    /// Apply one command at log index `index`. A command that fails (e.g. `BadVersion`) changes
    /// nothing: its writes go into a nested overlay that is dropped on error. A write on a
    /// session that already has a reply for its request id gets that reply again, unapplied.
    ///
    /// Each entry's writes also advance the state digest (see [`digest`]).
    pub fn apply(&self, txn: &mut Txn<'_>, index: u64, cmd: &Command) -> Result<Result<Reply, Error>, StoreError> {
        self.apply_with(txn, index, |entry, warm| self.apply_entry(entry, warm, index, cmd))
    }

    /// Apply a batch entry's commands in order, each with its own result, as `apply` would
    /// apply each alone at `index`; the digest advances once, for the whole entry.
    pub fn apply_batch(
        &self,
        txn: &mut Txn<'_>,
        index: u64,
        cmds: &[Command],
    ) -> Result<Vec<Result<Reply, Error>>, StoreError> {
        self.apply_with(txn, index, |entry, warm| {
            cmds.iter().map(|c| self.apply_entry(entry, warm, index, c)).collect()
        })
    }

    /// Run `f` on a fresh overlay for entry `index`, then advance the digest over its writes
    /// and absorb them into `txn`.
    fn apply_with<T>(
        &self,
        txn: &mut Txn<'_>,
        index: u64,
        f: impl FnOnce(&mut Txn<'_>, &crate::plugin::WarmSlot) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut entry = txn.nested();
        // The entry's plugin calls may share an instance; it goes with the entry's end.
        let warm = crate::plugin::WarmSlot::default();
        let res = f(&mut entry, &warm)?;
        let (mut writes, events, ended) = entry.into_parts();
        if self.diverge {
            writes.insert(b"z/diverged".to_vec(), Some(index.to_le_bytes().to_vec()));
        }
        let (_, before) = digest::stored(txn)?;
        let after = digest::advance(before, &writes, |k| txn.get(k))?;
        // Stored with the last entry that changed it: an entry that changes nothing (a failed
        // write) writes nothing.
        if after != before {
            writes.insert(txn::meta_key(digest::META), Some(digest::encode(index, &after)));
        }
        txn.absorb((writes, events, ended));
        let mut kept = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back((index, after));
        while kept.len() > DIGESTS_KEPT {
            kept.pop_front();
        }
        Ok(res)
    }

    fn apply_entry(
        &self,
        txn: &mut Txn<'_>,
        warm: &crate::plugin::WarmSlot,
        index: u64,
        cmd: &Command,
    ) -> Result<Result<Reply, Error>, StoreError> {
        let now = txn.advance_time(cmd.ts_ms)?;
        let first_event = txn.events_len();
        let first_ended = txn.ended_len();
        let env = self.env(Some(warm));
        let res = match &cmd.op {
            Op::CreateSession { .. } | Op::ExpireSessions { .. } | Op::Tick => Self::run(txn, env, index, now, cmd)?,
            _ if cmd.session != 0 => Self::run_in_session(txn, env, index, now, cmd)?,
            _ => Self::run(txn, env, index, now, cmd)?,
        };
        let ended = txn.ended_since(first_ended);
        if !ended.is_empty() {
            plugins::sessions_ended(txn, env, index, now, &ended)?;
        }
        if self.floors.may_be_due(deadlines::Kind::Timer, txn, now) {
            plugins::fire_timers(txn, env, index, now)?;
            self.floors.observe(deadlines::Kind::Timer, txn)?;
        }
        if self.floors.may_be_due(deadlines::Kind::Ttl, txn, now) {
            tree::sweep_ttl(txn, index, now)?;
            self.floors.observe(deadlines::Kind::Ttl, txn)?;
        }
        txn.stamp_events(first_event, index);
        Ok(res)
    }

    /// A write in a session runs at most once per request id: a resend is answered from the
    /// session's stored replies, and a late copy of a request whose reply is already forgotten
    /// (below the session's answered floor) is refused.
    fn run_in_session(txn: &mut Txn<'_>, env: plugins::Env<'_>, index: u64, now: u64, cmd: &Command) -> tree::Applied {
        let Some(rec) = session::load(txn, cmd.session)? else {
            return Ok(Err(Error::SessionExpired { id: cmd.session }));
        };
        if let Some(earlier) = rec.replies.get(&cmd.req) {
            return Ok(earlier.clone());
        }
        let floor = session::answered_below(txn, cmd.session)?;
        if cmd.req < floor {
            // Rare, and a sign of a message delivered twice or very late: worth a line for
            // whoever reads the logs (each replica writes it).
            tracing::info!(
                index,
                session = cmd.session,
                req = cmd.req,
                floor,
                "late copy of an answered request refused"
            );
            return Ok(Err(Error::bad_request(format!(
                "request {} of session {:#x} was answered before; this late copy is not applied",
                cmd.req, cmd.session
            ))));
        }
        let res = Self::run(txn, env, index, now, cmd)?;
        if !matches!(cmd.op, Op::CloseSession) {
            session::remember(txn, cmd.session, rec, cmd.req, cmd.done_below, floor, &res);
        }
        Ok(res)
    }

    fn run(txn: &mut Txn<'_>, env: plugins::Env<'_>, index: u64, now: u64, cmd: &Command) -> tree::Applied {
        let mut inner = txn.nested();
        let t = &mut inner;
        let at = tree::At {
            index,
            now,
            session: cmd.session,
            limits: cmd.limits,
            identity: &cmd.identity,
            admin: cmd.admin,
            default_acl: &cmd.default_acl,
        };
        let res = match &cmd.op {
            Op::Create { path, data, mode } => tree::create(t, &at, path, data, *mode)?,
            Op::Set { path, data, version } => tree::set(t, &at, path, data, *version)?,
            Op::Delete { path, version } => tree::delete(t, &at, path, *version)?,
            Op::Multi { ops } => multi::apply(t, &at, ops)?,
            Op::CreateSession { timeout_ms, secret } => Ok(session::create(t, index, *timeout_ms, secret)),
            Op::CloseSession => match session::end(t, index, cmd.session)? {
                true => Ok(Reply::Done { index }),
                false => Err(Error::SessionExpired { id: cmd.session }),
            },
            Op::ExpireSessions { ids } => {
                for id in ids {
                    session::end(t, index, *id)?;
                }
                Ok(Reply::Done { index })
            }
            Op::Tick => Ok(Reply::Done { index }),
            Op::SetAcl { path, acl } => tree::set_acl(t, &at, path, acl)?,
            Op::PluginDeploy { name, code, hash, fuel, quota, acl } => {
                plugins::deploy(t, env, &at, name, code, hash, *fuel, *quota, acl)?
            }
            Op::PluginUpgrade { name, code, hash, fuel } => plugins::upgrade(t, env, &at, name, code, hash, *fuel)?,
            Op::PluginRemove { name } => plugins::remove(t, env, &at, name)?,
            Op::PluginCall { name, input } => plugins::call(t, env, &at, name, input)?,
            Op::AckNotifications { upto } => {
                plugins::ack(t, cmd.session, *upto)?;
                Ok(Reply::Done { index })
            }
            // A batch is taken apart by `apply_batch`; one inside another was never proposed.
            Op::Batch { .. } => Err(Error::internal("a batch entry inside a batch")),
        };
        if res.is_ok() {
            let parts = inner.into_parts();
            txn.absorb(parts);
        }
        Ok(res)
    }

    /// Every live session (id, timeout ms).
    pub fn sessions(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        session::list(self.store.as_ref())
    }

    /// The session's timeout, if `secret` is right.
    pub fn verify_session(&self, id: u64, secret: &[u8]) -> Result<Option<u64>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        session::verify(self.store.as_ref(), id, secret)
    }

    pub fn session_exists(&self, id: u64) -> Result<bool, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        Ok(self.store.get(&keys::session(id))?.is_some())
    }

    /// A node's own ACL (empty: the default applies); None if it does not exist.
    pub fn acl_of(&self, path: &str) -> Result<Option<Vec<corral_proto::AclEntry>>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        tree::acl_of(self.store.as_ref(), path)
    }

    /// The earliest deadline (a TTL node's or a plugin timer's; leader time, ms): the leader
    /// proposes a tick when it passes.
    pub fn next_deadline(&self) -> Result<Option<u64>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        let ttl = tree::next_ttl_deadline(self.store.as_ref())?;
        let timer = plugins::next_timer(self.store.as_ref())?;
        Ok(ttl.into_iter().chain(timer).min())
    }

    pub fn plugin_list(&self) -> Result<Vec<corral_proto::PluginInfo>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        plugins::list(self.store.as_ref())
    }

    /// Run plugin `name`'s query on this replica's state (the context's index is filled in).
    pub fn plugin_query(
        &self,
        name: &str,
        input: &[u8],
        mut ctx: crate::plugin::CallContext,
        admin: bool,
    ) -> Result<Reply, Error> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.store.get(&txn::meta_key("time")).map_err(Error::internal)? {
            ctx.time_ms = b.try_into().map(u64::from_le_bytes).unwrap_or(0);
        }
        plugins::query(self.env(None), name, input, ctx, admin)
    }

    /// The session's notifications after `after`, oldest first.
    pub fn mailbox(
        &self,
        session: u64,
        after: (u64, u32),
        limit: usize,
    ) -> Result<Vec<corral_proto::Notification>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        plugins::mailbox(self.store.as_ref(), session, after, limit)
    }

    /// Wakes when an entry changes `session`'s mailbox or ends the session. Subscribe before
    /// reading the mailbox.
    pub fn mail_wait(&self, session: u64) -> mail_bells::MailWait {
        self.mail.subscribe(session)
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        self.store.get(&txn::meta_key(key))
    }

    pub fn get(&self, path: &str) -> Result<Result<(Vec<u8>, Stat), Error>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        tree::get(self.store.as_ref(), path)
    }

    pub fn children(&self, path: &str) -> Result<Result<Vec<String>, Error>, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        tree::children(self.store.as_ref(), path)
    }

    /// Every key and value, for a snapshot, consistent with the applied index stored among them.
    pub fn export(&self) -> Result<Items, StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        self.store.export()
    }

    /// The state digest after entry `index`, if this replica applied it recently.
    pub fn digest_at(&self, index: u64) -> Option<digest::Digest> {
        let kept = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().rev().find(|(i, _)| *i == index).map(|(_, d)| *d)
    }

    /// The newest (index, digest) this replica remembers.
    pub fn latest_digest(&self) -> Option<(u64, digest::Digest)> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).back().copied()
    }

    /// The running digest as stored, with its index, and the digest recomputed from every
    /// key: they differ only if the store was changed behind the state machine's back.
    pub fn digest_check(&self) -> Result<((u64, digest::Digest), digest::Digest), StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        let items = self.store.export()?;
        let stored = digest::decode(self.store.get(&txn::meta_key(digest::META))?.as_deref());
        Ok((stored, digest::full(&items)))
    }

    /// The running digest and the entry it is at.
    pub fn digest(&self) -> Result<(u64, digest::Digest), StoreError> {
        let _guard = self.lock.read().unwrap_or_else(|p| p.into_inner());
        Ok(digest::decode(self.store.get(&txn::meta_key(digest::META))?.as_deref()))
    }

    /// Replace the whole state with a snapshot's contents (at log index `index`).
    pub fn replace_all(&self, items: Items, index: u64) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _guard = self.lock.write().unwrap_or_else(|p| p.into_inner());
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.floors.forget();
        self.store.replace_all(items)?;
        self.mail.ring_all();
        self.clock.reset();
        if let Some(sink) = &self.sink {
            sink.reset(index);
        }
        Ok(())
    }

    /// Make everything applied so far durable (before the WAL may be purged behind it).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

#[cfg(test)]
mod digest_tests;
#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;

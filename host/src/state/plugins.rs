//! Plugins in the replicated state: their records, code and key-value namespaces, the
//! lifecycle entries (deploy, upgrade, remove), calls, and the hooks that run a plugin without a
//! caller (a timer passed, a watched session ended). Every outcome here depends only on the
//! state and the entry: the plugin runtime (`crate::plugin`) is deterministic by construction,
//! and a call that fails — a trap, out of fuel, its own error — commits nothing.

use std::sync::Arc;

use bincode::Options;
use corral_proto::{acl, AclEntry, Error, Notification, PluginInfo, Reply};
use serde::{Deserialize, Serialize};

use super::keys;
use super::store::{KvStore, StoreError};
use super::tree::{Applied, At};
use super::txn::Txn;
use crate::plugin::{CallContext, Data, Export, KvView, Plugins, TimerOp, WarmSlot};

/// Timers fired per entry at most: bounds an entry's work; the rest fire on the next one.
const MAX_TIMERS_PER_ENTRY: usize = 64;
/// How deep `watch-session` on an ended session may chain `expire` calls.
const MAX_HOOK_DEPTH: u32 = 4;
/// The meta key of the last position given to a plugin invocation (see [`position`]).
const POSITION: &str = "plugin_position";

/// The position of a plugin invocation in entry `index`: the entry's index, or one more than
/// the last invocation's if that is as far already. An entry may run several invocations
/// (group-committed calls, timers, the hooks of ended sessions), and plugins use the position
/// as a fencing token and to derive ids, so no two may share one. It is stored (replicated
/// and in snapshots), so it never goes back, and it stays the log index while calls are alone
/// in their entries.
fn position(t: &Txn<'_>, index: u64) -> Result<u64, StoreError> {
    Ok(last_position(t.get_meta(POSITION)?).map_or(index, |last| index.max(last.saturating_add(1))))
}

fn last_position(stored: Option<Vec<u8>>) -> Option<u64> {
    stored.and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes)
}

/// The last position given to an invocation in `store` (what a query sees as its index, at
/// least).
fn stored_position(store: &dyn KvStore) -> Result<Option<u64>, StoreError> {
    Ok(last_position(store.get(&keys::meta(POSITION))?))
}

impl CallContext {
    /// The context of a call made by the entry `at` describes.
    fn of(at: &At<'_>) -> CallContext {
        CallContext {
            index: at.index,
            time_ms: at.now,
            session: at.session,
            identity: at.identity.into(),
            admin: at.admin,
        }
    }
}

/// What plugin work needs besides the transaction: the runtime (none in unit tests of the
/// tree) and the committed store the runtime reads through.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub plugins: Option<&'a Plugins>,
    pub store: &'a Arc<dyn KvStore>,
    /// The instance slot of the entry being applied (see `plugin::WarmSlot`); none for a query.
    pub warm: Option<&'a WarmSlot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub hash: String,
    pub size: u64,
    pub deployed_at: u64,
    pub upgraded_at: u64,
    pub fuel: u64,
    pub quota: u64,
    pub used: u64,
    pub acl: Vec<AclEntry>,
}

impl Record {
    fn info(&self, name: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            version: self.version,
            hash: self.hash.clone(),
            size: self.size,
            deployed_at: self.deployed_at,
            upgraded_at: self.upgraded_at,
            fuel: self.fuel,
            quota: self.quota,
            used: self.used,
            acl: self.acl.clone(),
        }
    }
}

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("corrupt plugin record: {e}"))
}

fn load(
    get: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
    name: &str,
) -> Result<Option<Record>, StoreError> {
    get(&keys::plugin_record(name))?.map(|b| opts().deserialize(&b).map_err(corrupt)).transpose()
}

/// The fuel budget of each call of plugin `name` (None: no such plugin), and the most one call
/// of its current code has burned on this node, if `runtime` has run one.
pub fn fuel_of(
    store: &dyn KvStore,
    runtime: Option<&Plugins>,
    name: &str,
) -> Result<Option<(u64, Option<u64>)>, StoreError> {
    Ok(load(|k| store.get(k), name)?.map(|rec| (rec.fuel, runtime.and_then(|r| r.peak_fuel(&rec.hash)))))
}

fn save(t: &mut Txn<'_>, name: &str, rec: &Record) {
    t.put(keys::plugin_record(name), opts().serialize(rec).unwrap_or_default());
}

fn no_runtime() -> Error {
    Error::internal("this node has no plugin runtime")
}

fn failed(name: &str, reason: impl Into<String>) -> Error {
    Error::PluginFailed { name: name.to_string(), reason: reason.into() }
}

fn admin_only(at: &At<'_>, what: &str) -> Result<(), Error> {
    match at.admin {
        true => Ok(()),
        false => Err(Error::NoAuth { path: "plugins".into(), identity: at.identity.to_string(), what: what.into() }),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn deploy(
    t: &mut Txn<'_>,
    env: Env<'_>,
    at: &At<'_>,
    name: &str,
    code: &[u8],
    hash: &str,
    fuel: u64,
    quota: u64,
    acl: &[AclEntry],
) -> Applied {
    if let Err(e) = admin_only(at, "deploy") {
        return Ok(Err(e));
    }
    if load(|k| t.get(k), name)?.is_some() {
        return Ok(Err(Error::PluginExists { name: name.to_string() }));
    }
    let rec = Record {
        version: 1,
        hash: hash.to_string(),
        size: code.len() as u64,
        deployed_at: at.index,
        upgraded_at: at.index,
        fuel,
        quota,
        used: 0,
        acl: acl.to_vec(),
    };
    // Compile now, so the first call does not pay for it (and a node that cannot run it says
    // so at once, in its log).
    if let Some(p) = env.plugins {
        if let Err(e) = p.compiled(hash, || Ok(Some(code.to_vec()))) {
            tracing::error!(plugin = name, "deployed plugin does not compile on this node: {e}");
        }
    }
    t.put(keys::plugin_code(name), code.to_vec());
    save(t, name, &rec);
    Ok(Ok(Reply::Done { index: at.index }))
}

pub fn upgrade(
    t: &mut Txn<'_>,
    env: Env<'_>,
    at: &At<'_>,
    name: &str,
    code: &[u8],
    hash: &str,
    fuel: Option<u64>,
) -> Applied {
    if let Err(e) = admin_only(at, "upgrade") {
        return Ok(Err(e));
    }
    let Some(old) = load(|k| t.get(k), name)? else {
        return Ok(Err(Error::NoPlugin { name: name.to_string() }));
    };
    let rec = Record {
        version: old.version + 1,
        hash: hash.to_string(),
        size: code.len() as u64,
        upgraded_at: at.index,
        fuel: fuel.unwrap_or(old.fuel),
        ..old.clone()
    };
    t.put(keys::plugin_code(name), code.to_vec());
    save(t, name, &rec);
    let ctx = CallContext::of(at);
    match invoke(t, env, name, ctx, Export::Migrate(old.version), 0)? {
        Ok(_) => Ok(Ok(Reply::Done { index: at.index })),
        Err(e) => Ok(Err(failed(name, format!("migrate from version {}: {e}", old.version)))),
    }
}

pub fn remove(t: &mut Txn<'_>, env: Env<'_>, at: &At<'_>, name: &str) -> Applied {
    if let Err(e) = admin_only(at, "remove") {
        return Ok(Err(e));
    }
    let Some(rec) = load(|k| t.get(k), name)? else {
        return Ok(Err(Error::NoPlugin { name: name.to_string() }));
    };
    for (k, _) in t.scan_prefix(&keys::plugin_kv_prefix(name), usize::MAX)? {
        t.delete(k);
    }
    for (k, v) in t.scan_prefix(&keys::timer_by_tag_prefix(name), usize::MAX)? {
        let tag = &k[keys::timer_by_tag_prefix(name).len()..];
        if let Ok(d) = <[u8; 8]>::try_from(v.as_slice()) {
            t.delete(keys::timer(u64::from_be_bytes(d), name, tag));
        }
        t.delete(k);
    }
    // Session watches go lazily: a hook finds no plugin and drops its key.
    t.delete(keys::plugin_code(name));
    t.delete(keys::plugin_record(name));
    if let Some(p) = env.plugins {
        p.forget(&rec.hash);
    }
    Ok(Ok(Reply::Done { index: at.index }))
}

pub fn call(t: &mut Txn<'_>, env: Env<'_>, at: &At<'_>, name: &str, input: &[u8]) -> Applied {
    let Some(rec) = load(|k| t.get(k), name)? else {
        return Ok(Err(Error::NoPlugin { name: name.to_string() }));
    };
    if !at.admin && !rec.acl.is_empty() && !acl::allows(&rec.acl, at.identity, acl::WRITE) {
        let (identity, what) = (at.identity.to_string(), "call".to_string());
        return Ok(Err(Error::NoAuth { path: format!("plugin {name}"), identity, what }));
    }
    let ctx = CallContext::of(at);
    Ok(invoke_loaded(t, env, name, rec, ctx, Export::Apply(input.to_vec()), 0)?
        .map(|output| Reply::Plugin { index: at.index, output })
        .map_err(|e| failed(name, e)))
}

/// Run one export of plugin `name` in the entry at `ctx.index` and, if it succeeds, commit its
/// writes and side effects. `Ok(Err(reason))`: the call failed and changed nothing.
fn invoke(
    t: &mut Txn<'_>,
    env: Env<'_>,
    name: &str,
    ctx: CallContext,
    export: Export,
    depth: u32,
) -> Result<Result<Vec<u8>, String>, StoreError> {
    let Some(rec) = load(|k| t.get(k), name)? else {
        return Ok(Err("no such plugin".into()));
    };
    invoke_loaded(t, env, name, rec, ctx, export, depth)
}

/// [`invoke`] with the plugin's record already loaded.
fn invoke_loaded(
    t: &mut Txn<'_>,
    env: Env<'_>,
    name: &str,
    mut rec: Record,
    mut ctx: CallContext,
    export: Export,
    depth: u32,
) -> Result<Result<Vec<u8>, String>, StoreError> {
    ctx.index = position(t, ctx.index)?;
    let Some(runtime) = env.plugins else { return Ok(Err(no_runtime().to_string())) };
    let compiled = match runtime.compiled(&rec.hash, || t.get(&keys::plugin_code(name))) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let prefix = keys::plugin_kv_prefix(name);
    let view = KvView::new(env.store.clone(), prefix.clone(), t.pending_under(&prefix), rec.used);
    let (index, now) = (ctx.index, ctx.time_ms);
    let out = runtime.call(&compiled, Data::new(view, false, rec.quota, name), rec.fuel, ctx, export, env.warm);
    let output = match out.result {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    let Data { kv, effects, .. } = out.data;
    let used = kv.used();
    for (k, v) in kv.into_writes() {
        match v {
            Some(v) => t.put(k, v),
            None => t.delete(k),
        }
    }
    // The record changes only with the namespace's size (a counter's add usually keeps it).
    if used != rec.used {
        rec.used = used;
        save(t, name, &rec);
    }
    // Only a call that succeeded keeps its position: a failed one left nothing behind that
    // could carry it.
    t.put_meta(POSITION, index.to_le_bytes().to_vec());
    for (session, payload) in effects.notify {
        notify(t, index, session, name, payload)?;
    }
    for op in effects.timers {
        set_timer(t, name, op)?;
    }
    let mut ended = Vec::new();
    for (session, watch) in effects.watches {
        let key = keys::session_watcher(session, name);
        match (watch, t.get(&keys::session(session))?.is_some()) {
            (true, true) => t.put(key, Vec::new()),
            (true, false) => ended.push(session),
            (false, _) => t.delete(key),
        }
    }
    if depth < MAX_HOOK_DEPTH {
        for session in ended {
            let ctx = CallContext { index, time_ms: now, session, identity: String::new(), admin: true };
            hook(t, env, name, ctx, Export::Expire(session), depth + 1)?;
        }
    }
    Ok(Ok(output))
}

/// A call nobody waits for (expire, timer): a failure is logged, and changes nothing.
fn hook(
    t: &mut Txn<'_>,
    env: Env<'_>,
    name: &str,
    ctx: CallContext,
    export: Export,
    depth: u32,
) -> Result<(), StoreError> {
    let what = format!("{export:?}");
    let index = ctx.index;
    if let Err(e) = invoke(t, env, name, ctx, export, depth)? {
        tracing::warn!(plugin = name, index, "{what} failed: {e}");
    }
    Ok(())
}

fn notify(t: &mut Txn<'_>, index: u64, session: u64, plugin: &str, payload: Vec<u8>) -> Result<(), StoreError> {
    if t.get(&keys::session(session))?.is_none() {
        return Ok(());
    }
    // Numbered within the entry by what is already there: the same on every replica.
    let prefix = [keys::mailbox_prefix(session), index.to_be_bytes().to_vec()].concat();
    let n = t.scan_prefix(&prefix, usize::MAX)?.len() as u32;
    let note = Notification { pos: (index, n), plugin: plugin.to_string(), payload };
    t.put(keys::mailbox(session, index, n), opts().serialize(&note).unwrap_or_default());
    Ok(())
}

fn set_timer(t: &mut Txn<'_>, name: &str, op: TimerOp) -> Result<(), StoreError> {
    let tag = match &op {
        TimerOp::Set { tag, .. } | TimerOp::Cancel { tag } => tag.clone(),
    };
    let by_tag = keys::timer_by_tag(name, &tag);
    if let Some(d) = t.get(&by_tag)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()) {
        t.delete(keys::timer(u64::from_be_bytes(d), name, &tag));
        t.delete(by_tag.clone());
    }
    if let TimerOp::Set { at_ms, .. } = op {
        t.put(keys::timer(at_ms, name, &tag), Vec::new());
        t.put(by_tag, at_ms.to_be_bytes().to_vec());
    }
    Ok(())
}

/// Fire the timers whose deadline is at or before `now` (leader time), earliest first.
pub fn fire_timers(t: &mut Txn<'_>, env: Env<'_>, index: u64, now: u64) -> Result<(), StoreError> {
    for _ in 0..MAX_TIMERS_PER_ENTRY {
        let Some((k, _)) = t.scan_prefix(keys::TIMER_PREFIX, 1)?.into_iter().next() else { return Ok(()) };
        let Some((deadline, name, tag)) = keys::parse_timer(&k) else {
            t.delete(k);
            continue;
        };
        if deadline > now {
            return Ok(());
        }
        t.delete(k);
        t.delete(keys::timer_by_tag(&name, &tag));
        let ctx = CallContext { index, time_ms: now, session: 0, identity: String::new(), admin: true };
        hook(t, env, &name, ctx, Export::Timer(tag), 0)?;
    }
    Ok(())
}

/// The earliest timer deadline, if any.
pub fn next_timer(store: &dyn KvStore) -> Result<Option<u64>, StoreError> {
    let first = store.scan_prefix_limit(keys::TIMER_PREFIX, 1)?;
    Ok(first.first().and_then(|(k, _)| keys::parse_timer(k)).map(|(d, _, _)| d))
}

/// Sessions `ended` by this entry: call `expire` on each plugin that watched them, and empty
/// their mailboxes.
pub fn sessions_ended(t: &mut Txn<'_>, env: Env<'_>, index: u64, now: u64, ended: &[u64]) -> Result<(), StoreError> {
    for &session in ended {
        let prefix = keys::session_watchers_prefix(session);
        for (k, _) in t.scan_prefix(&prefix, usize::MAX)? {
            t.delete(k.clone());
            let Ok(name) = String::from_utf8(k[prefix.len()..].to_vec()) else { continue };
            if load(|key| t.get(key), &name)?.is_some() {
                let ctx = CallContext { index, time_ms: now, session, identity: String::new(), admin: true };
                hook(t, env, &name, ctx, Export::Expire(session), 0)?;
            }
        }
        for (k, _) in t.scan_prefix(&keys::mailbox_prefix(session), usize::MAX)? {
            t.delete(k);
        }
    }
    Ok(())
}

/// The session's notifications up to `upto` leave its mailbox.
pub fn ack(t: &mut Txn<'_>, session: u64, upto: (u64, u32)) -> Result<(), StoreError> {
    for (k, _) in t.scan_prefix(&keys::mailbox_prefix(session), usize::MAX)? {
        match keys::parse_mailbox(&k) {
            Some(pos) if pos <= upto => t.delete(k),
            Some(_) => break,
            None => t.delete(k),
        }
    }
    Ok(())
}

/// The session's notifications after `after`, oldest first (at most `limit`).
pub fn mailbox(
    store: &dyn KvStore,
    session: u64,
    after: (u64, u32),
    limit: usize,
) -> Result<Vec<Notification>, StoreError> {
    let prefix = keys::mailbox_prefix(session);
    let from = keys::mailbox(session, after.0, after.1.saturating_add(1));
    let mut out = Vec::new();
    for (k, v) in store.scan_range_limit(&from, &prefix, limit.saturating_add(1))? {
        match keys::parse_mailbox(&k) {
            Some(pos) if pos > after => out.push(opts().deserialize(&v).map_err(corrupt)?),
            _ => {}
        }
    }
    out.truncate(limit);
    Ok(out)
}

pub fn list(store: &dyn KvStore) -> Result<Vec<PluginInfo>, StoreError> {
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(keys::PLUGIN_RECORD_PREFIX)? {
        let name = String::from_utf8_lossy(&k[keys::PLUGIN_RECORD_PREFIX.len()..]).into_owned();
        let rec: Record = opts().deserialize(&v).map_err(corrupt)?;
        out.push(rec.info(&name));
    }
    Ok(out)
}

/// Run a plugin's `query` against the committed state (the caller holds the state's read lock).
pub fn query(env: Env<'_>, name: &str, input: &[u8], mut ctx: CallContext, admin: bool) -> Result<Reply, Error> {
    let store: &dyn KvStore = env.store.as_ref();
    let internal = |e: StoreError| Error::internal(e);
    let Some(rec) = load(|k| store.get(k), name).map_err(internal)? else {
        return Err(Error::NoPlugin { name: name.to_string() });
    };
    if !admin && !rec.acl.is_empty() && !acl::allows(&rec.acl, &ctx.identity, acl::READ) {
        return Err(Error::NoAuth { path: format!("plugin {name}"), identity: ctx.identity, what: "query".into() });
    }
    let runtime = env.plugins.ok_or_else(no_runtime)?;
    let compiled = runtime.compiled(&rec.hash, || store.get(&keys::plugin_code(name))).map_err(|e| failed(name, e))?;
    let view = KvView::new(env.store.clone(), keys::plugin_kv_prefix(name), Default::default(), rec.used);
    // The reply names the log index this replica had applied (clients wait for it elsewhere:
    // a position may be ahead of every log index); the plugin sees at least the last position
    // given, so it is never behind a token it stored.
    let index = ctx.index;
    ctx.index = index.max(stored_position(store).map_err(internal)?.unwrap_or(0));
    let out = runtime.call(
        &compiled,
        Data::new(view, true, rec.quota, name),
        rec.fuel,
        ctx,
        Export::Query(input.to_vec()),
        None,
    );
    out.result.map(|output| Reply::Plugin { index, output }).map_err(|e| failed(name, e))
}

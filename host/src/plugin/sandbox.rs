//! One call into a plugin: an instance from the pre-instantiated component, fresh fuel, the
//! memory limit, the host functions of the contract's `host` interface, and a buffered
//! key-value view. What comes out is the export's result, the view (its writes, to commit only
//! on success) and the side effects the plugin asked for (notifications, timers, watches).
//!
//! An instance serves the calls of one log entry at most (DESIGN.md: a fresh instance per
//! entry). The calls that a group commit put in one entry share it, one after the other, while
//! they succeed: a fresh instance costs some 13 µs on each replica (allocating the slot, and
//! resetting its memory when it is dropped), a warm call 1 µs. Which calls share an instance is
//! decided by the entry, so every replica, and every replay, shares the same ones. A call that
//! fails (a trap, out of fuel, its own error) takes its instance with it: a trapped instance
//! is poisoned, and the next call starts afresh. So the only state a plugin can count on is
//! its namespace; memory may carry over between the calls of one entry, never further.
//!
//! Host functions cost fuel from the same counter as guest code (a fixed price plus one per
//! byte), so a plugin that loops over host calls runs out of fuel deterministically too.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::{ComponentExportIndex, ComponentType, Instance, InstancePre, Linker, Lower};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder, Trap};

use super::engine::MAX_MEMORY_BYTES;
use super::upload::HOST_INTERFACE;
use super::view::KvView;

/// Fuel charged for any host call, before the per-byte part.
pub const HOST_CALL_FUEL: u64 = 1_000;
/// At most this many entries per `scan` call.
const MAX_SCAN: u32 = 10_000;
/// An export's output larger than this fails the call (it goes into a log reply and a frame).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Ticks of the epoch a query may run (see `engine::EPOCH_TICK`): 200 ms.
const QUERY_EPOCH_TICKS: u64 = 20;

/// The call context every export gets (the WIT's `call-context`).
#[derive(Debug, Clone, Default, ComponentType, Lower)]
#[component(record)]
pub struct CallContext {
    pub index: u64,
    #[component(name = "time-ms")]
    pub time_ms: u64,
    pub session: u64,
    pub identity: String,
    pub admin: bool,
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A timer change a plugin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    Set { at_ms: u64, tag: Vec<u8> },
    Cancel { tag: Vec<u8> },
}

/// What a successful call asks the host to do besides its key-value writes, in call order.
#[derive(Debug, Default)]
pub struct Effects {
    pub notify: Vec<(u64, Vec<u8>)>,
    pub timers: Vec<TimerOp>,
    /// (session, watch: true / unwatch: false).
    pub watches: Vec<(u64, bool)>,
}

pub struct Data {
    pub kv: KvView,
    pub effects: Effects,
    /// A query: every host call that writes traps.
    read_only: bool,
    /// Bytes the namespace may hold.
    quota: u64,
    limits: StoreLimits,
    plugin: String,
}

/// A refusal by a host function: traps the guest, and is what the caller reads.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HostRefusal(String);

/// Which export to call, with its arguments.
#[derive(Debug, Clone)]
pub enum Export {
    Apply(Vec<u8>),
    Query(Vec<u8>),
    Expire(u64),
    Timer(Vec<u8>),
    Migrate(u32),
}

/// A compiled plugin, ready to instantiate, with its exports resolved.
pub struct Compiled {
    pub pre: InstancePre<Data>,
    apply: ComponentExportIndex,
    query: ComponentExportIndex,
    expire: ComponentExportIndex,
    timer: ComponentExportIndex,
    migrate: Option<ComponentExportIndex>,
    /// The most fuel one call of this code has burned on this node (0: none has run yet). Only
    /// ever used to guess how long an entry will take (`State::may_run_long`), never to decide
    /// a result: it differs between replicas.
    peak_fuel: AtomicU64,
}

impl Compiled {
    pub fn new(pre: InstancePre<Data>) -> Result<Compiled, String> {
        let find = |name: &str| pre.component().get_export_index(None, name);
        let need = |name: &str| find(name).ok_or_else(|| format!("the plugin does not export `{name}`"));
        Ok(Compiled {
            apply: need("apply")?,
            query: need("query")?,
            expire: need("expire")?,
            timer: need("timer")?,
            migrate: find("migrate"),
            pre,
            peak_fuel: AtomicU64::new(0),
        })
    }

    pub fn has_migrate(&self) -> bool {
        self.migrate.is_some()
    }

    /// The most fuel one call of this code has burned on this node, if any call has run.
    pub fn peak_fuel(&self) -> Option<u64> {
        Some(self.peak_fuel.load(Ordering::Relaxed)).filter(|&f| f > 0)
    }
}

/// The outcome of one call.
pub struct Outcome {
    /// The export's output, or why the call failed (a trap, out of fuel, its own error).
    pub result: Result<Vec<u8>, String>,
    pub data: Data,
    pub fuel_used: u64,
}

impl Data {
    /// What a warm instance holds between calls: nothing of any call's.
    fn idle() -> Data {
        Data::new(KvView::detached(), true, 0, "")
    }

    pub fn new(kv: KvView, read_only: bool, quota: u64, plugin: &str) -> Data {
        Data {
            kv,
            effects: Effects::default(),
            read_only,
            quota,
            limits: StoreLimitsBuilder::new().memory_size(MAX_MEMORY_BYTES).trap_on_grow_failure(true).build(),
            plugin: plugin.to_string(),
        }
    }
}

/// The instance the last successful call of an entry left, for the entry's next call of the
/// same plugin (see the module doc). Made at the start of each entry, dropped at its end.
#[derive(Default)]
pub struct WarmSlot(RefCell<Option<Warm>>);

struct Warm {
    compiled: Arc<Compiled>,
    store: Store<Data>,
    instance: Instance,
}

/// Run `export` of `compiled` with `fuel`: on the instance `warm` holds if it is one of
/// `compiled`, else on a fresh one. A successful call leaves its instance in `warm`; a query
/// (read-only, on one replica) passes none and always runs fresh.
pub fn call(
    engine: &Engine,
    compiled: &Arc<Compiled>,
    data: Data,
    fuel: u64,
    ctx: CallContext,
    export: Export,
    warm: Option<&WarmSlot>,
) -> Outcome {
    let read_only = data.read_only;
    // Taken out whatever happens next: only a success puts an instance back.
    let reused = warm.and_then(|w| w.0.borrow_mut().take()).filter(|w| Arc::ptr_eq(&w.compiled, compiled));
    let (mut store, instance) = match reused {
        Some(Warm { mut store, instance, .. }) => {
            *store.data_mut() = data;
            (store, Some(instance))
        }
        None => {
            let mut store = Store::new(engine, data);
            store.limiter(|d| &mut d.limits);
            if read_only {
                store.epoch_deadline_trap();
                store.set_epoch_deadline(QUERY_EPOCH_TICKS);
            } else {
                // Replicated calls are bounded by fuel alone: a deadline in wall-clock time would
                // make their outcome depend on the machine's speed.
                store.set_epoch_deadline(u64::MAX / 2);
            }
            (store, None)
        }
    };
    // Fuel and epochs are both enabled on the engine; set_fuel only fails when they are not.
    let _ = store.set_fuel(fuel);
    let (result, instance) = match run(&mut store, compiled, instance, ctx, export) {
        Ok((out, instance)) => (Ok(out), Some(instance)),
        Err(e) => (Err(describe(&e, fuel)), None),
    };
    let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    compiled.peak_fuel.fetch_max(fuel_used.max(1), Ordering::Relaxed);
    let result = result.and_then(|out| match out.len() {
        n if n > MAX_OUTPUT_BYTES => Err(format!("the output is {n} bytes, over the limit of {MAX_OUTPUT_BYTES}")),
        _ => Ok(out),
    });
    match (warm, instance, result.is_ok()) {
        (Some(slot), Some(instance), true) => {
            let data = std::mem::replace(store.data_mut(), Data::idle());
            *slot.0.borrow_mut() = Some(Warm { compiled: compiled.clone(), store, instance });
            Outcome { result, data, fuel_used }
        }
        _ => Outcome { result, data: store.into_data(), fuel_used },
    }
}

/// The export's output and the instance it ran on; `Err` is a trap, a host refusal or the
/// plugin's own error.
fn run(
    store: &mut Store<Data>,
    c: &Compiled,
    instance: Option<Instance>,
    ctx: CallContext,
    export: Export,
) -> wasmtime::Result<(Vec<u8>, Instance)> {
    let instance = match instance {
        Some(i) => i,
        None => c.pre.instantiate(&mut *store)?,
    };
    let own = |r: Result<Vec<u8>, String>| r.map_err(|e| wasmtime::Error::new(HostRefusal(format!("error: {e}"))));
    let (idx, input) = match export {
        Export::Apply(input) => (&c.apply, input),
        Export::Query(input) => (&c.query, input),
        Export::Expire(session) => {
            let f = instance.get_typed_func::<(CallContext, u64), ()>(&mut *store, &c.expire)?;
            f.call(&mut *store, (ctx, session))?;
            return Ok((Vec::new(), instance));
        }
        Export::Timer(tag) => {
            let f = instance.get_typed_func::<(CallContext, Vec<u8>), ()>(&mut *store, &c.timer)?;
            f.call(&mut *store, (ctx, tag))?;
            return Ok((Vec::new(), instance));
        }
        Export::Migrate(from) => {
            let Some(idx) = &c.migrate else { return Ok((Vec::new(), instance)) };
            let f = instance.get_typed_func::<(CallContext, u32), (Result<(), String>,)>(&mut *store, idx)?;
            let (r,) = f.call(&mut *store, (ctx, from))?;
            return own(r.map(|()| Vec::new())).map(|out| (out, instance));
        }
    };
    let f = instance.get_typed_func::<(CallContext, Vec<u8>), (Result<Vec<u8>, String>,)>(&mut *store, idx)?;
    let (r,) = f.call(&mut *store, (ctx, input))?;
    own(r).map(|out| (out, instance))
}

/// Instantiate once and look every export up with its expected type: an upload whose exports
/// have the right names but the wrong types is refused at deploy, not at its first call.
pub fn check_exports(engine: &Engine, c: &Compiled) -> Result<(), String> {
    let kv = KvView::new(std::sync::Arc::new(crate::state::MemStore::default()), Vec::new(), Default::default(), 0);
    let mut store = Store::new(engine, Data::new(kv, true, 0, "check"));
    store.limiter(|d| &mut d.limits);
    let _ = store.set_fuel(100_000_000);
    store.set_epoch_deadline(u64::MAX / 2);
    let instance =
        c.pre.instantiate(&mut store).map_err(|e| format!("the plugin cannot start: {}", describe(&e, 0)))?;
    let bad = |name: &str, e: wasmtime::Error| format!("export `{name}` does not match the contract: {e:#}");
    type Rw = (Result<Vec<u8>, String>,);
    instance.get_typed_func::<(CallContext, Vec<u8>), Rw>(&mut store, &c.apply).map_err(|e| bad("apply", e))?;
    instance.get_typed_func::<(CallContext, Vec<u8>), Rw>(&mut store, &c.query).map_err(|e| bad("query", e))?;
    instance.get_typed_func::<(CallContext, u64), ()>(&mut store, &c.expire).map_err(|e| bad("expire", e))?;
    instance.get_typed_func::<(CallContext, Vec<u8>), ()>(&mut store, &c.timer).map_err(|e| bad("timer", e))?;
    if let Some(idx) = &c.migrate {
        instance
            .get_typed_func::<(CallContext, u32), (Result<(), String>,)>(&mut store, idx)
            .map_err(|e| bad("migrate", e))?;
    }
    Ok(())
}

/// A trap or refusal, in words a plugin author can act on.
fn describe(e: &wasmtime::Error, fuel: u64) -> String {
    if let Some(r) = e.downcast_ref::<HostRefusal>() {
        return r.0.clone();
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!("trap: ran out of fuel (budget {fuel})"),
        Some(Trap::StackOverflow) => "trap: wasm stack overflow".to_string(),
        Some(Trap::Interrupt) => "trap: the query ran past its time limit".to_string(),
        Some(t) => format!("trap: {t}"),
        None => {
            let msg = format!("{e:#}");
            if msg.contains("growing memory") {
                format!("trap: memory limit of {} MiB reached", MAX_MEMORY_BYTES >> 20)
            } else {
                format!("trap: {msg}")
            }
        }
    }
}

/// Charge a host call: `HOST_CALL_FUEL` plus one per byte. Out of fuel traps like guest code.
fn charge(cx: &mut StoreContextMut<'_, Data>, bytes: usize) -> wasmtime::Result<()> {
    let cost = HOST_CALL_FUEL.saturating_add(bytes as u64);
    let left = cx.get_fuel()?;
    if left < cost {
        cx.set_fuel(0)?;
        return Err(wasmtime::Error::new(Trap::OutOfFuel));
    }
    cx.set_fuel(left - cost)
}

fn refuse<T>(msg: String) -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(HostRefusal(msg)))
}

fn writable(cx: &StoreContextMut<'_, Data>, what: &str) -> wasmtime::Result<()> {
    if cx.data().read_only {
        return refuse(format!("a query may not write (it called `{what}`)"));
    }
    Ok(())
}

fn store_err(e: crate::state::StoreError) -> wasmtime::Error {
    wasmtime::Error::new(HostRefusal(format!("host storage error: {e}")))
}

/// The contract's host functions. Strict: any other import fails instantiation.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<Data>> {
    let mut linker = Linker::<Data>::new(engine);
    let err = |e: wasmtime::Error| anyhow::anyhow!("plugin linker: {e}");
    let mut host = linker.instance(HOST_INTERFACE).map_err(err)?;
    host.func_wrap("get", |mut cx: StoreContextMut<'_, Data>, (key,): (Vec<u8>,)| {
        charge(&mut cx, key.len())?;
        let v = cx.data().kv.get(&key).map_err(store_err)?;
        charge(&mut cx, v.as_ref().map_or(0, Vec::len))?;
        Ok((v,))
    })
    .map_err(err)?;
    host.func_wrap("put", |mut cx: StoreContextMut<'_, Data>, (key, value): (Vec<u8>, Vec<u8>)| {
        writable(&cx, "put")?;
        charge(&mut cx, key.len() + value.len())?;
        let d = cx.data_mut();
        d.kv.put(key, value).map_err(store_err)?;
        if d.kv.used() > d.quota {
            return refuse(format!("storage quota of {} bytes exceeded", d.quota));
        }
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("delete", |mut cx: StoreContextMut<'_, Data>, (key,): (Vec<u8>,)| {
        writable(&cx, "delete")?;
        charge(&mut cx, key.len())?;
        cx.data_mut().kv.delete(key).map_err(store_err)
    })
    .map_err(err)?;
    host.func_wrap("scan", |mut cx: StoreContextMut<'_, Data>, (start, limit): (Vec<u8>, u32)| {
        charge(&mut cx, start.len())?;
        let rows = cx.data().kv.scan(&start, limit.min(MAX_SCAN) as usize).map_err(store_err)?;
        charge(&mut cx, rows.iter().map(|(k, v)| k.len() + v.len() + 16).sum())?;
        Ok((rows.into_iter().map(|(key, value)| Entry { key, value }).collect::<Vec<_>>(),))
    })
    .map_err(err)?;
    host.func_wrap("notify", |mut cx: StoreContextMut<'_, Data>, (session, payload): (u64, Vec<u8>)| {
        writable(&cx, "notify")?;
        charge(&mut cx, payload.len())?;
        cx.data_mut().effects.notify.push((session, payload));
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("set-timer", |mut cx: StoreContextMut<'_, Data>, (at_ms, tag): (u64, Vec<u8>)| {
        writable(&cx, "set-timer")?;
        charge(&mut cx, tag.len())?;
        cx.data_mut().effects.timers.push(TimerOp::Set { at_ms, tag });
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("cancel-timer", |mut cx: StoreContextMut<'_, Data>, (tag,): (Vec<u8>,)| {
        writable(&cx, "cancel-timer")?;
        charge(&mut cx, tag.len())?;
        cx.data_mut().effects.timers.push(TimerOp::Cancel { tag });
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("watch-session", |mut cx: StoreContextMut<'_, Data>, (session,): (u64,)| {
        writable(&cx, "watch-session")?;
        charge(&mut cx, 0)?;
        cx.data_mut().effects.watches.push((session, true));
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("unwatch-session", |mut cx: StoreContextMut<'_, Data>, (session,): (u64,)| {
        writable(&cx, "unwatch-session")?;
        charge(&mut cx, 0)?;
        cx.data_mut().effects.watches.push((session, false));
        Ok(())
    })
    .map_err(err)?;
    host.func_wrap("log", |mut cx: StoreContextMut<'_, Data>, (message,): (String,)| {
        charge(&mut cx, message.len())?;
        tracing::info!(plugin = %cx.data().plugin, "{}", message.chars().take(1024).collect::<String>());
        Ok(())
    })
    .map_err(err)?;
    Ok(linker)
}

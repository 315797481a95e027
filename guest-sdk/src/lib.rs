//! Write corral plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`], built with
//! `cargo build --release --target wasm32-unknown-unknown` (a `cdylib`), deployed with
//! `corral plugin deploy NAME FILE.wasm`. Inputs and outputs are JSON by default (the CLI's
//! `plugin call NAME JSON` sends its argument as is).
//!
//! ```no_run
//! use corral_guest::{kv, Ctx, Plugin};
//!
//! struct Counter;
//!
//! impl Plugin for Counter {
//!     type Input = i64;
//!     type Output = i64;
//!     fn apply(_ctx: &Ctx, add: i64) -> Result<i64, String> {
//!         let n = kv::get_json::<i64>(b"n")?.unwrap_or(0) + add;
//!         kv::put_json(b"n", &n)?;
//!         Ok(n)
//!     }
//! }
//!
//! corral_guest::export!(Counter);
//! ```
//!
//! The rules every plugin lives by (see `guest-sdk/README.md`): `apply` runs on every replica
//! and must be deterministic (no clock but `ctx.time_ms`, no randomness); state lives only in
//! the key-value namespace (memory is fresh on every call); a call that returns `Err`, traps or
//! runs out of fuel changes nothing.

pub mod counted;
pub use counted::Counted;

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated: the canonical ABI flattens call-context
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin-with-migrate",
        pub_export_macro: true,
        export_macro_name: "__corral_export_bindings",
        default_bindings_module: "corral_guest::bindings",
    });
}

use serde::de::DeserializeOwned;
use serde::Serialize;

use bindings::corral::plugin::host;

/// Who calls, and when (the WIT's `call-context`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// The call's log position: unique to the call and increasing, usable as a fencing token.
    /// The entry's log index, unless the entry runs several calls (see the WIT).
    pub index: u64,
    /// The leader's clock at proposal, ms since the Unix epoch (never decreasing).
    pub time_ms: u64,
    /// The caller's session (0: none).
    pub session: u64,
    /// The caller's identity, from its certificate.
    pub identity: String,
    /// The caller is an admin of the ensemble (or the system itself: hooks, migrations).
    pub admin: bool,
}

impl From<bindings::CallContext> for Ctx {
    fn from(c: bindings::CallContext) -> Ctx {
        Ctx { index: c.index, time_ms: c.time_ms, session: c.session, identity: c.identity, admin: c.admin }
    }
}

/// A plugin. Only `apply` is required.
pub trait Plugin {
    /// What `apply` and `query` take (decoded from JSON).
    type Input: DeserializeOwned;
    /// What they return (encoded as JSON).
    type Output: Serialize;

    /// A write, run on every replica at the same log index.
    fn apply(ctx: &Ctx, input: Self::Input) -> Result<Self::Output, String>;

    /// A read on one replica; any write traps.
    fn query(_ctx: &Ctx, _input: Self::Input) -> Result<Self::Output, String> {
        Err("this plugin answers no queries".into())
    }

    /// A session this plugin watches ([`watch_session`]) has ended.
    fn expire(_ctx: &Ctx, _session: u64) {}

    /// A timer set with [`set_timer`] has passed.
    fn timer(_ctx: &Ctx, _tag: &[u8]) {}

    /// Called once when an upgrade replaces version `from_version` with this code; an error
    /// cancels the upgrade.
    fn migrate(_ctx: &Ctx, _from_version: u32) -> Result<(), String> {
        Ok(())
    }
}

/// The plugin's key-value namespace (nobody else's is reachable).
pub mod kv {
    use super::*;

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        host::get(key)
    }
    /// Buffered: kept only if the call succeeds.
    pub fn put(key: &[u8], value: &[u8]) {
        host::put(key, value)
    }
    pub fn delete(key: &[u8]) {
        host::delete(key)
    }
    /// Up to `limit` entries with keys `>= start`, in key order.
    pub fn scan(start: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        host::scan(start, limit).into_iter().map(|e| (e.key, e.value)).collect()
    }
    /// The entries whose key starts with `prefix`, in key order, read from the host `page`
    /// at a time as the iteration goes: stopping early reads no further. Entries this call
    /// deletes or adds behind the last one seen do not disturb it.
    pub fn iter_prefix(prefix: &[u8], page: u32) -> PrefixIter {
        PrefixIter { prefix: prefix.to_vec(), next: prefix.to_vec(), page: page.max(1), buf: Vec::new(), done: false }
    }
    /// The first `limit` entries (at most) whose key starts with `prefix`, in key order: the
    /// head of a queue without reading all of it.
    pub fn scan_prefix_first(prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        iter_prefix(prefix, limit).take(limit as usize).collect()
    }
    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        iter_prefix(prefix, 256).collect()
    }

    /// See [`iter_prefix`].
    pub struct PrefixIter {
        prefix: Vec<u8>,
        /// Where the next page starts.
        next: Vec<u8>,
        page: u32,
        /// The current page, reversed (popped from the end).
        buf: Vec<(Vec<u8>, Vec<u8>)>,
        /// The last page was short or left the prefix: nothing follows.
        done: bool,
    }

    impl Iterator for PrefixIter {
        type Item = (Vec<u8>, Vec<u8>);

        fn next(&mut self) -> Option<Self::Item> {
            if self.buf.is_empty() && !self.done {
                let batch = scan(&self.next, self.page);
                let mine: Vec<_> = batch.into_iter().take_while(|(k, _)| k.starts_with(&self.prefix)).collect();
                // A short page is the store's end or the prefix's.
                self.done = mine.len() < self.page as usize;
                if let Some((k, _)) = mine.last() {
                    self.next = [k.as_slice(), &[0]].concat();
                }
                self.buf = mine.into_iter().rev().collect();
            }
            self.buf.pop()
        }
    }
    pub fn get_json<T: DeserializeOwned>(key: &[u8]) -> Result<Option<T>, String> {
        get(key).map(|b| serde_json::from_slice(&b).map_err(|e| format!("stored value: {e}"))).transpose()
    }
    pub fn put_json<T: Serialize>(key: &[u8], value: &T) -> Result<(), String> {
        put(key, &serde_json::to_vec(value).map_err(|e| e.to_string())?);
        Ok(())
    }
}

/// Append `payload` to session `session`'s mailbox (delivered to its client, acknowledged).
pub fn notify(session: u64, payload: &[u8]) {
    host::notify(session, payload)
}
/// Call `timer(tag)` once leader time reaches `at_ms`; setting a tag again moves it.
pub fn set_timer(at_ms: u64, tag: &[u8]) {
    host::set_timer(at_ms, tag)
}
pub fn cancel_timer(tag: &[u8]) {
    host::cancel_timer(tag)
}
/// Call `expire(session)` when `session` ends (at once if it has).
pub fn watch_session(session: u64) {
    host::watch_session(session)
}
pub fn unwatch_session(session: u64) {
    host::unwatch_session(session)
}
/// A line in the node's log.
pub fn log(message: &str) {
    host::log(message)
}

#[doc(hidden)]
pub fn __run<P: Plugin>(
    ctx: bindings::CallContext,
    input: Vec<u8>,
    f: fn(&Ctx, P::Input) -> Result<P::Output, String>,
) -> Result<Vec<u8>, String> {
    let input: P::Input = serde_json::from_slice(&input).map_err(|e| format!("bad input: {e}"))?;
    let out = f(&ctx.into(), input)?;
    serde_json::to_vec(&out).map_err(|e| format!("cannot encode the output: {e}"))
}

/// Export a [`Plugin`] type as the component's exports.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __CorralExports;

        impl $crate::bindings::Guest for __CorralExports {
            fn apply(ctx: $crate::bindings::CallContext, input: Vec<u8>) -> Result<Vec<u8>, String> {
                $crate::__run::<$plugin>(ctx, input, <$plugin as $crate::Plugin>::apply)
            }
            fn query(ctx: $crate::bindings::CallContext, input: Vec<u8>) -> Result<Vec<u8>, String> {
                $crate::__run::<$plugin>(ctx, input, <$plugin as $crate::Plugin>::query)
            }
            fn expire(ctx: $crate::bindings::CallContext, session: u64) {
                <$plugin as $crate::Plugin>::expire(&ctx.into(), session)
            }
            fn timer(ctx: $crate::bindings::CallContext, tag: Vec<u8>) {
                <$plugin as $crate::Plugin>::timer(&ctx.into(), &tag)
            }
            fn migrate(ctx: $crate::bindings::CallContext, from_version: u32) -> Result<(), String> {
                <$plugin as $crate::Plugin>::migrate(&ctx.into(), from_version)
            }
        }

        $crate::bindings::__corral_export_bindings!(__CorralExports with_types_in $crate::bindings);
    };
}

//! Plugin requests: deploy / upgrade / remove / call are writes (the leader validates and
//! compiles an upload before proposing it); list and query are reads; notifications are read
//! from the session's replicated mailbox and acknowledged through the log.

use std::time::Duration;

use corral_proto::{plugin, Consistency, Error, Reply, Request};

use super::{store_err, Api, Ctx};
use crate::plugin::{CallContext, DEFAULT_FUEL, MAX_FUEL, MAX_UPLOAD_BYTES};
use crate::state::Op;

/// Notifications per answer at most.
const MAX_NOTIFICATIONS: usize = 1024;
/// The longest a `Notifications` request may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

fn bad_plugin(name: &str, reason: impl Into<String>) -> Error {
    Error::BadPlugin { name: name.to_string(), reason: reason.into() }
}

impl Api {
    /// The cheap checks of a plugin write, on whichever node receives it (no compiling).
    pub(super) fn precheck_plugin(&self, req: &Request) -> Result<(), Error> {
        let (name, wasm, fuel) = match req {
            Request::PluginDeploy { name, wasm, fuel, .. } | Request::PluginUpgrade { name, wasm, fuel, .. } => {
                (name, Some(wasm), *fuel)
            }
            Request::PluginRemove { name } => (name, None, None),
            Request::PluginCall { name, input } => {
                plugin::validate_name(name).map_err(Error::bad_request)?;
                return self.check_input(name, input);
            }
            _ => return Ok(()),
        };
        plugin::validate_name(name).map_err(Error::bad_request)?;
        if let Some(f) = fuel {
            if f == 0 || f > MAX_FUEL {
                return Err(bad_plugin(name, format!("fuel must be between 1 and {MAX_FUEL}")));
            }
        }
        if let Some(w) = wasm {
            if w.len() > MAX_UPLOAD_BYTES {
                return Err(Error::TooLarge { what: format!("plugin {name}"), size: w.len(), max: MAX_UPLOAD_BYTES });
            }
        }
        Ok(())
    }

    fn check_input(&self, name: &str, input: &[u8]) -> Result<(), Error> {
        if input.len() > self.limits.max_data_bytes {
            let what = format!("input for plugin {name}");
            return Err(Error::TooLarge { what, size: input.len(), max: self.limits.max_data_bytes });
        }
        Ok(())
    }

    /// The entry for a plugin write, on the leader: an upload is validated and compiled here,
    /// before anything is proposed.
    pub(super) fn plugin_op(&self, req: &Request) -> Result<Op, Error> {
        self.precheck_plugin(req)?;
        // Compiling takes from a tenth of a second to many (a Python plugin: 30 s).
        let prepare = |name: &str, wasm: &[u8]| {
            crate::blocking::off_worker(|| self.plugins.prepare(wasm)).map_err(|reason| bad_plugin(name, reason))
        };
        Ok(match req.clone() {
            Request::PluginDeploy { name, wasm, fuel, quota, acl } => {
                let p = prepare(&name, &wasm)?;
                let fuel = fuel.unwrap_or(DEFAULT_FUEL);
                let quota = quota.unwrap_or(self.limits.plugin_quota_bytes);
                Op::PluginDeploy { name, code: p.code, hash: p.hash, fuel, quota, acl }
            }
            Request::PluginUpgrade { name, wasm, fuel } => {
                let p = prepare(&name, &wasm)?;
                Op::PluginUpgrade { name, code: p.code, hash: p.hash, fuel }
            }
            Request::PluginRemove { name } => Op::PluginRemove { name },
            Request::PluginCall { name, input } => Op::PluginCall { name, input },
            Request::AckNotifications { upto } => Op::AckNotifications { upto },
            other => return Err(Error::bad_request(format!("{other:?} is not a plugin write"))),
        })
    }

    pub(super) async fn plugin_list(&self, c: Consistency) -> Result<Reply, Error> {
        self.barrier(c).await?;
        Ok(Reply::Plugins(self.state.plugin_list().map_err(store_err)?))
    }

    pub(super) async fn plugin_query(
        &self,
        name: &str,
        input: &[u8],
        c: Consistency,
        ctx: &Ctx,
    ) -> Result<Reply, Error> {
        plugin::validate_name(name).map_err(Error::bad_request)?;
        self.check_input(name, input)?;
        self.barrier(c).await?;
        let call = CallContext {
            index: self.applied_index(),
            time_ms: 0,
            session: ctx.session,
            identity: ctx.identity.clone(),
            admin: self.is_admin(&ctx.identity),
        };
        let (state, admin) = (self.state.clone(), self.is_admin(&ctx.identity));
        let (name, input) = (name.to_string(), input.to_vec());
        // Guest code runs for up to the query deadline.
        crate::blocking::off_worker(move || state.plugin_query(&name, &input, call, admin))
    }

    /// The session's notifications after `after`, waiting up to `wait_ms` for one.
    pub(super) async fn notifications(&self, ctx: &Ctx, after: (u64, u32), wait_ms: u64) -> Result<Reply, Error> {
        if ctx.session == 0 {
            return Err(Error::NoSession);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms).min(MAX_WAIT);
        let mut bell = self.state.mail_wait(ctx.session);
        loop {
            bell.seen();
            if !self.state.session_exists(ctx.session).map_err(store_err)? {
                return Err(Error::SessionExpired { id: ctx.session });
            }
            let notes = self.state.mailbox(ctx.session, after, MAX_NOTIFICATIONS).map_err(store_err)?;
            if !notes.is_empty() {
                return Ok(Reply::Notifications(notes));
            }
            if tokio::time::timeout_at(deadline, bell.rung()).await.is_err() {
                return Ok(Reply::Notifications(Vec::new()));
            }
        }
    }
}

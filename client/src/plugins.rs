//! Plugins: deploy / upgrade / remove (admins), list, call (`apply`, replicated), query (one
//! replica), and the session's notifications from plugins.

use corral_proto::{AclEntry, Consistency, Notification, PluginInfo, Reply, Request};

use crate::client::unexpected;
use crate::{Client, ClientError};

/// How a plugin is deployed besides its name and code.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Fuel per call (None: the server's default).
    pub fuel: Option<u64>,
    /// Bytes its key-value namespace may hold (None: the server's default).
    pub quota: Option<u64>,
    /// Who may call (`w`) and query (`r`) it (empty: anyone).
    pub acl: Vec<AclEntry>,
}

impl Client {
    /// Deploy plugin `name` from `wasm` (a component, or a core module); returns the log index
    /// at which every replica starts running it.
    pub async fn plugin_deploy(&self, name: &str, wasm: Vec<u8>, opts: DeployOptions) -> Result<u64, ClientError> {
        let req = Request::PluginDeploy { name: name.into(), wasm, fuel: opts.fuel, quota: opts.quota, acl: opts.acl };
        self.index_of(req).await
    }

    /// Replace plugin `name`'s code, keeping its state (its `migrate` runs).
    pub async fn plugin_upgrade(&self, name: &str, wasm: Vec<u8>, fuel: Option<u64>) -> Result<u64, ClientError> {
        self.index_of(Request::PluginUpgrade { name: name.into(), wasm, fuel }).await
    }

    /// Remove plugin `name` and everything it keeps.
    pub async fn plugin_remove(&self, name: &str) -> Result<u64, ClientError> {
        self.index_of(Request::PluginRemove { name: name.into() }).await
    }

    pub async fn plugin_list(&self, consistency: Consistency) -> Result<Vec<PluginInfo>, ClientError> {
        match self.request(Request::PluginList { consistency }).await? {
            Reply::Plugins(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    /// Call plugin `name`'s `apply` with `input`: (its output, the log index it was applied at).
    pub async fn plugin_call(&self, name: &str, input: &[u8]) -> Result<(Vec<u8>, u64), ClientError> {
        self.plugin_output(Request::PluginCall { name: name.into(), input: input.to_vec() }).await
    }

    /// Call plugin `name`'s `query` with `input` on the connected node.
    pub async fn plugin_query(
        &self,
        name: &str,
        input: &[u8],
        consistency: Consistency,
    ) -> Result<(Vec<u8>, u64), ClientError> {
        self.plugin_output(Request::PluginQuery { name: name.into(), input: input.to_vec(), consistency }).await
    }

    /// The session's notifications after `after` (a position; `(0, 0)`: all), waiting up to
    /// `wait_ms` for one if there are none. Unacknowledged ones come again, on any node.
    pub async fn notifications(&self, after: (u64, u32), wait_ms: u64) -> Result<Vec<Notification>, ClientError> {
        let timeout = self.request_timeout() + std::time::Duration::from_millis(wait_ms);
        match self.request_within(Request::Notifications { after, wait_ms }, timeout).await? {
            Reply::Notifications(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Every notification up to `upto` is handled: they leave the mailbox.
    pub async fn ack_notifications(&self, upto: (u64, u32)) -> Result<(), ClientError> {
        self.index_of(Request::AckNotifications { upto }).await.map(|_| ())
    }

    async fn plugin_output(&self, req: Request) -> Result<(Vec<u8>, u64), ClientError> {
        match self.request(req).await? {
            Reply::Plugin { output, index } => Ok((output, index)),
            other => Err(unexpected(other)),
        }
    }

    async fn index_of(&self, req: Request) -> Result<u64, ClientError> {
        match self.request(req).await? {
            Reply::Done { index } => Ok(index),
            other => Err(unexpected(other)),
        }
    }
}

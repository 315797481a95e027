//! Typed helpers for the coordination recipes that corral runs as plugins (`plugins/`,
//! deployed by `corral dev` under their own names). Each needs a session on the client: the
//! recipe ties what it grants to the session, so a holder that dies releases it.

mod barrier;
mod counter;
mod election;
mod lock;
mod multilock;
mod queue;
mod registry;
mod rwlock;
mod semaphore;

pub use barrier::{Barrier, DoubleBarrier};
pub use counter::Counter;
pub use election::{Election, Leader};
pub use lock::{Lock, LockGuard};
pub use multilock::{MultiGuard, MultiLock};
pub use queue::{Queue, QueueItem};
pub use registry::{Balance, Registry, ServiceInstance};
pub use rwlock::{RwGuard, RwLock};
pub use semaphore::{Permit, Semaphore};

use corral_proto::Notification;
use serde_json::Value;

use crate::{Client, ClientError};

/// Call `plugin`'s `apply` with a JSON input; its JSON output.
pub(crate) async fn call(client: &Client, plugin: &str, input: Value) -> Result<Value, ClientError> {
    call_at(client, plugin, input).await.map(|(v, _)| v)
}

/// As [`call`], with the log index the call was applied at.
pub(crate) async fn call_at(client: &Client, plugin: &str, input: Value) -> Result<(Value, u64), ClientError> {
    let (out, index) = client.plugin_call(plugin, input.to_string().as_bytes()).await?;
    let v = serde_json::from_slice(&out)
        .map_err(|e| ClientError::Protocol(format!("plugin {plugin} answered non-JSON: {e}")))?;
    Ok((v, index))
}

/// Wait for the first notification from `plugin` whose JSON payload `pick` accepts. The
/// listener closes when the session ends: that is `SessionExpired`.
pub(crate) async fn wait_note<T>(
    client: &Client,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>,
    plugin: &str,
    mut pick: impl FnMut(&Value) -> Option<T>,
) -> Result<T, ClientError> {
    while let Some(n) = rx.recv().await {
        if let Some(t) = json_from(&n, plugin).as_ref().and_then(&mut pick) {
            return Ok(t);
        }
    }
    Err(ClientError::Server(crate::ServerError::SessionExpired { id: client.session_id().unwrap_or(0) }))
}

/// A notification from `plugin` as JSON, if it is one.
pub(crate) fn json_from(n: &Notification, plugin: &str) -> Option<Value> {
    (n.plugin == plugin).then(|| serde_json::from_slice(&n.payload).ok()).flatten()
}

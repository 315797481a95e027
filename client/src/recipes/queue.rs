//! `client.queue("name")`: the `queue` recipe. `put` an item; `take` waits for the next one
//! (leased to this session until `ack`; it returns to the queue if the session ends or the
//! visibility timeout passes first).

use std::time::Duration;

use serde_json::json;

use super::{call, wait_note};
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    plugin: String,
    name: String,
    visibility: Duration,
}

/// A taken item: acknowledge it when it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: u64,
    pub data: String,
}

impl Client {
    /// The queue `name` of the `queue` plugin (visibility timeout 30 s).
    pub fn queue(&self, name: &str) -> Queue {
        Queue { client: self.clone(), plugin: "queue".into(), name: name.into(), visibility: Duration::from_secs(30) }
    }
}

impl Queue {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// How long a taken item stays leased without an `ack` before it returns to the queue.
    pub fn visibility(mut self, t: Duration) -> Self {
        self.visibility = t;
        self
    }

    /// Add an item (higher `priority` first; hidden for `delay`); its id.
    pub async fn put_with(&self, data: &str, priority: i64, delay: Duration) -> Result<u64, ClientError> {
        let input = json!({ "put": { "queue": self.name, "data": data, "priority": priority,
            "delay_ms": delay.as_millis() as u64 } });
        let out = call(&self.client, &self.plugin, input).await?;
        out["put"]["id"].as_u64().ok_or_else(|| ClientError::Protocol(format!("queue: unexpected answer {out}")))
    }

    pub async fn put(&self, data: &str) -> Result<u64, ClientError> {
        self.put_with(data, 0, Duration::ZERO).await
    }

    /// The next item, waiting for one if the queue is empty. Needs a session.
    pub async fn take(&self) -> Result<QueueItem, ClientError> {
        let mut rx = self.client.listen()?;
        let input = json!({ "take": { "queue": self.name, "visibility_ms": self.visibility.as_millis() as u64 } });
        let out = call(&self.client, &self.plugin, input).await?;
        if let (Some(id), Some(data)) = (out["item"]["id"].as_u64(), out["item"]["data"].as_str()) {
            return Ok(QueueItem { id, data: data.into() });
        }
        wait_note(&self.client, &mut rx, &self.plugin, |v| match (v["id"].as_u64(), v["data"].as_str()) {
            (Some(id), Some(data)) if v["queue"] == self.name.as_str() => Some(QueueItem { id, data: data.into() }),
            _ => None,
        })
        .await
    }

    /// The item is handled: it leaves the queue (only the session holding it may do this).
    pub async fn ack(&self, id: u64) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "ack": { "queue": self.name, "id": id } })).await.map(|_| ())
    }
}

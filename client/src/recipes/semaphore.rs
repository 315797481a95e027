//! `client.semaphore("name", permits)`: the `semaphore` recipe. `acquire` waits (FIFO) for a
//! permit and returns its lease; the permit is freed by `release` or by the session's end.

use serde_json::json;

use super::{call, wait_note};
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct Semaphore {
    client: Client,
    plugin: String,
    name: String,
    permits: u32,
}

/// A held permit.
#[derive(Debug)]
pub struct Permit {
    client: Client,
    plugin: String,
    name: String,
    lease: u64,
}

impl Client {
    /// The semaphore `name` with `permits` permits (fixed by its first user).
    pub fn semaphore(&self, name: &str, permits: u32) -> Semaphore {
        Semaphore { client: self.clone(), plugin: "semaphore".into(), name: name.into(), permits }
    }
}

impl Semaphore {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// Wait for a permit.
    pub async fn acquire(&self) -> Result<Permit, ClientError> {
        let mut rx = self.client.listen()?;
        let input = json!({ "acquire": { "semaphore": self.name, "permits": self.permits } });
        let out = call(&self.client, &self.plugin, input).await?;
        let permit =
            |lease| Permit { client: self.client.clone(), plugin: self.plugin.clone(), name: self.name.clone(), lease };
        if let Some(lease) = out["granted"]["lease"].as_u64() {
            return Ok(permit(lease));
        }
        let lease = wait_note(&self.client, &mut rx, &self.plugin, |v| {
            if v["semaphore"] == self.name.as_str() {
                v["lease"].as_u64()
            } else {
                None
            }
        })
        .await?;
        Ok(permit(lease))
    }
}

impl Permit {
    pub fn lease(&self) -> u64 {
        self.lease
    }

    pub async fn release(self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "release": { "semaphore": self.name, "lease": self.lease } }))
            .await
            .map(|_| ())
    }
}

//! `client.multilock(&["a", "b"])`: the `multilock` recipe. `acquire` waits until every named
//! lock is free and takes them all at once (no deadlock); the guard's grant is the token.

use serde_json::json;

use super::{call, wait_note};
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct MultiLock {
    client: Client,
    plugin: String,
    locks: Vec<String>,
}

/// Held locks. Release them with [`MultiGuard::release`] (or end the session).
#[derive(Debug)]
pub struct MultiGuard {
    client: Client,
    plugin: String,
    grant: u64,
}

impl Client {
    pub fn multilock(&self, locks: &[&str]) -> MultiLock {
        MultiLock {
            client: self.clone(),
            plugin: "multilock".into(),
            locks: locks.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl MultiLock {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    pub async fn acquire(&self) -> Result<MultiGuard, ClientError> {
        let mut rx = self.client.listen()?;
        let out = call(&self.client, &self.plugin, json!({ "acquire": { "locks": self.locks } })).await?;
        let guard = |grant| MultiGuard { client: self.client.clone(), plugin: self.plugin.clone(), grant };
        if let Some(g) = out["granted"]["grant"].as_u64() {
            return Ok(guard(g));
        }
        let mut want = self.locks.clone();
        want.sort();
        want.dedup();
        let grant = wait_note(&self.client, &mut rx, &self.plugin, |v| {
            if v["locks"] == json!(want) {
                v["grant"].as_u64()
            } else {
                None
            }
        })
        .await?;
        Ok(guard(grant))
    }
}

impl MultiGuard {
    /// The grant: the fencing token of every lock in it.
    pub fn token(&self) -> u64 {
        self.grant
    }

    pub async fn release(self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "release": { "grant": self.grant } })).await.map(|_| ())
    }
}

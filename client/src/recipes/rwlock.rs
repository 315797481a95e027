//! `client.rwlock("name")`: the `rwlock` recipe. `read()` / `write()` wait for the lock in
//! arrival order and return a guard carrying the token.

use serde_json::json;

use super::{call, wait_note};
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct RwLock {
    client: Client,
    plugin: String,
    name: String,
}

/// A held read or write lock. Release it with [`RwGuard::release`] (or end the session).
#[derive(Debug)]
pub struct RwGuard {
    client: Client,
    plugin: String,
    name: String,
    token: u64,
}

impl Client {
    pub fn rwlock(&self, name: &str) -> RwLock {
        RwLock { client: self.clone(), plugin: "rwlock".into(), name: name.into() }
    }
}

impl RwLock {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    pub async fn read(&self) -> Result<RwGuard, ClientError> {
        self.acquire("read").await
    }

    pub async fn write(&self) -> Result<RwGuard, ClientError> {
        self.acquire("write").await
    }

    async fn acquire(&self, mode: &str) -> Result<RwGuard, ClientError> {
        let mut rx = self.client.listen()?;
        let out = call(&self.client, &self.plugin, json!({ "acquire": { "lock": self.name, "mode": mode } })).await?;
        let guard = |token| RwGuard {
            client: self.client.clone(),
            plugin: self.plugin.clone(),
            name: self.name.clone(),
            token,
        };
        if let Some(t) = out["granted"]["token"].as_u64() {
            return Ok(guard(t));
        }
        let token = wait_note(&self.client, &mut rx, &self.plugin, |v| {
            if v["lock"] == self.name.as_str() {
                v["token"].as_u64()
            } else {
                None
            }
        })
        .await?;
        Ok(guard(token))
    }
}

impl RwGuard {
    pub fn token(&self) -> u64 {
        self.token
    }

    pub async fn release(self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "release": { "lock": self.name } })).await.map(|_| ())
    }
}

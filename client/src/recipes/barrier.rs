//! `client.barrier("name")` and `client.double_barrier("name", count)`: the `barrier` recipe.

use serde_json::{json, Value};

use super::{call, wait_note};
use crate::{Client, ClientError};

/// Curator's barrier: `set` it, let others `wait` on it, `remove` it to let them go.
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    plugin: String,
    name: String,
}

/// Curator's double barrier: `enter` waits until `count` have entered, `leave` until all left.
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    plugin: String,
    name: String,
    count: u32,
}

impl Client {
    pub fn barrier(&self, name: &str) -> Barrier {
        Barrier { client: self.clone(), plugin: "barrier".into(), name: name.into() }
    }

    pub fn double_barrier(&self, name: &str, count: u32) -> DoubleBarrier {
        DoubleBarrier { client: self.clone(), plugin: "barrier".into(), name: name.into(), count }
    }
}

/// Send `input`; unless the answer is `done` (a string), wait for a notification about
/// barrier `name` carrying `key`.
async fn call_then_wait(
    client: &Client,
    plugin: &str,
    name: &str,
    input: Value,
    done: &str,
    key: &str,
) -> Result<(), ClientError> {
    let mut rx = client.listen()?;
    let out = call(client, plugin, input).await?;
    if out == done || out.get("waiting").is_none() {
        return Ok(());
    }
    wait_note(client, &mut rx, plugin, |v| (v["barrier"] == name && v[key] == true).then_some(())).await
}

impl Barrier {
    pub async fn set(&self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "set": { "barrier": self.name } })).await.map(|_| ())
    }

    pub async fn remove(&self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "remove": { "barrier": self.name } })).await.map(|_| ())
    }

    /// Return once the barrier is not set (at once if it is not). Needs a session.
    pub async fn wait(&self) -> Result<(), ClientError> {
        let input = json!({ "wait": { "barrier": self.name } });
        call_then_wait(&self.client, &self.plugin, &self.name, input, "open", "open").await
    }
}

impl DoubleBarrier {
    /// Return once `count` sessions have entered. Needs a session.
    pub async fn enter(&self) -> Result<(), ClientError> {
        let input = json!({ "enter": { "barrier": self.name, "count": self.count } });
        call_then_wait(&self.client, &self.plugin, &self.name, input, "entered", "entered").await
    }

    /// Return once every session that entered has left.
    pub async fn leave(&self) -> Result<(), ClientError> {
        let input = json!({ "leave": { "barrier": self.name } });
        call_then_wait(&self.client, &self.plugin, &self.name, input, "left", "left").await
    }
}

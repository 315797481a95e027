//! `client.counter("name")`: the `counter` recipe. Atomic add, get, compare-and-set, and a
//! sequence generator (`next`: 1, 2, 3, ... with no gaps and no repeats).

use serde_json::{json, Value};

use super::call;
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct Counter {
    client: Client,
    plugin: String,
    name: String,
}

impl Client {
    /// The counter `name` of the `counter` plugin.
    pub fn counter(&self, name: &str) -> Counter {
        Counter { client: self.clone(), plugin: "counter".into(), name: name.into() }
    }
}

fn number(v: &Value) -> Result<i64, ClientError> {
    v.as_i64().ok_or_else(|| ClientError::Protocol(format!("counter: expected a number, got {v}")))
}

impl Counter {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// Add `delta` (may be negative); the new value.
    pub async fn add(&self, delta: i64) -> Result<i64, ClientError> {
        number(&call(&self.client, &self.plugin, json!({ "add_to": { "name": self.name, "delta": delta } })).await?)
    }

    /// The value (linearizable).
    pub async fn get(&self) -> Result<i64, ClientError> {
        let input = json!({ "value": { "name": self.name } }).to_string();
        let (out, _) =
            self.client.plugin_query(&self.plugin, input.as_bytes(), corral_proto::Consistency::Linearizable).await?;
        number(&serde_json::from_slice(&out).map_err(|e| ClientError::Protocol(format!("counter: {e}")))?)
    }

    /// Set it to `new` if it is `expect`: `Ok(new)` if swapped, `Err(actual)` if not.
    pub async fn compare_and_set(&self, expect: i64, new: i64) -> Result<Result<i64, i64>, ClientError> {
        let out =
            call(&self.client, &self.plugin, json!({ "cas": { "name": self.name, "expect": expect, "new": new } }))
                .await?;
        let value = number(&out["value"])?;
        Ok(if out["swapped"] == true { Ok(value) } else { Err(value) })
    }

    /// The next number of the sequence named like this counter (its own space: it does not
    /// touch the counter's value).
    pub async fn next(&self) -> Result<i64, ClientError> {
        number(&call(&self.client, &self.plugin, json!({ "next": { "name": self.name } })).await?)
    }
}

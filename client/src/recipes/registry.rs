//! `client.registry("service")`: the `registry` recipe. Register this session's instances,
//! look a service up, and pick an instance with one cluster-wide balancing.

use serde::Deserialize;
use serde_json::{json, Value};

use super::call;
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    plugin: String,
    service: String,
}

/// A registered instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceInstance {
    pub instance: String,
    pub meta: String,
    pub weight: u32,
    pub session: u64,
    /// How often `pick` chose it.
    pub assigned: u64,
}

/// How `pick` balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Weighted round-robin.
    RoundRobin,
    /// The instance with the fewest picks relative to its weight.
    LeastAssigned,
}

impl Client {
    pub fn registry(&self, service: &str) -> Registry {
        Registry { client: self.clone(), plugin: "registry".into(), service: service.into() }
    }
}

fn protocol(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(format!("registry: {e}"))
}

impl Registry {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// Register `instance` (until this session ends or it deregisters).
    pub async fn register(&self, instance: &str, meta: &str, weight: u32) -> Result<(), ClientError> {
        let input =
            json!({ "register": { "service": self.service, "instance": instance, "meta": meta, "weight": weight } });
        call(&self.client, &self.plugin, input).await.map(|_| ())
    }

    pub async fn deregister(&self, instance: &str) -> Result<(), ClientError> {
        let input = json!({ "deregister": { "service": self.service, "instance": instance } });
        call(&self.client, &self.plugin, input).await.map(|_| ())
    }

    /// The service's instances now (linearizable).
    pub async fn lookup(&self) -> Result<Vec<ServiceInstance>, ClientError> {
        let input = json!({ "lookup": { "service": self.service } }).to_string();
        let (out, _) =
            self.client.plugin_query(&self.plugin, input.as_bytes(), corral_proto::Consistency::Linearizable).await?;
        let v: Value = serde_json::from_slice(&out).map_err(protocol)?;
        serde_json::from_value(v["instances"].clone()).map_err(protocol)
    }

    /// Choose an instance (and count the choice, the same for every client).
    pub async fn pick(&self, balance: Balance) -> Result<ServiceInstance, ClientError> {
        let strategy = match balance {
            Balance::RoundRobin => "round_robin",
            Balance::LeastAssigned => "least_assigned",
        };
        let out =
            call(&self.client, &self.plugin, json!({ "pick": { "service": self.service, "strategy": strategy } }))
                .await?;
        serde_json::from_value(out["picked"].clone()).map_err(protocol)
    }
}

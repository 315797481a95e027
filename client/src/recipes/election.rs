//! `client.election("name")`: the `election` recipe. `campaign` waits until this session leads
//! and returns the term (a fencing token); leadership ends with `resign` or the session.

use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::{call, json_from, wait_note};
use crate::{Client, ClientError};

#[derive(Debug, Clone)]
pub struct Election {
    client: Client,
    plugin: String,
    name: String,
}

/// Who leads an election.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Leader {
    pub session: u64,
    pub value: String,
    /// The log position of the call that made it leader: strictly increasing per election.
    pub term: u64,
}

impl Client {
    /// The election `name` of the `election` plugin.
    pub fn election(&self, name: &str) -> Election {
        Election { client: self.clone(), plugin: "election".into(), name: name.into() }
    }
}

impl Election {
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// Stand as a candidate with `value` (what observers see); returns the term once this
    /// session leads.
    pub async fn campaign(&self, value: &str) -> Result<u64, ClientError> {
        let mut rx = self.client.listen()?;
        let out =
            call(&self.client, &self.plugin, json!({ "campaign": { "election": self.name, "value": value } })).await?;
        if let Some(term) = out["elected"]["term"].as_u64() {
            return Ok(term);
        }
        wait_note(&self.client, &mut rx, &self.plugin, |v| {
            if v["election"] == self.name.as_str() {
                v["term"].as_u64()
            } else {
                None
            }
        })
        .await
    }

    /// Give up leadership or candidacy.
    pub async fn resign(&self) -> Result<(), ClientError> {
        call(&self.client, &self.plugin, json!({ "resign": { "election": self.name } })).await.map(|_| ())
    }

    /// Who leads now (any client, no session needed).
    pub async fn leader(&self) -> Result<Option<Leader>, ClientError> {
        let input = json!({ "leader": { "election": self.name } }).to_string();
        let (out, _) =
            self.client.plugin_query(&self.plugin, input.as_bytes(), corral_proto::Consistency::Linearizable).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| ClientError::Protocol(format!("election: {e}")))?;
        serde_json::from_value(v["leader"]["leader"].clone())
            .map_err(|e| ClientError::Protocol(format!("election: {e}")))
    }

    /// Every change of leader from now on (`None`: nobody leads), starting with the current one.
    pub async fn observe(&self) -> Result<mpsc::UnboundedReceiver<Option<Leader>>, ClientError> {
        let mut rx = self.client.listen()?;
        let out = call(&self.client, &self.plugin, json!({ "observe": { "election": self.name } })).await?;
        let (tx, out_rx) = mpsc::unbounded_channel();
        let _ = tx.send(serde_json::from_value(out["observing"]["leader"].clone()).unwrap_or(None));
        let (plugin, name) = (self.plugin.clone(), self.name.clone());
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                let Some(v) = json_from(&n, &plugin) else { continue };
                let change = v["election"] == name.as_str() && v.get("leader").is_some();
                if change && tx.send(serde_json::from_value(v["leader"].clone()).unwrap_or(None)).is_err() {
                    return;
                }
            }
        });
        Ok(out_rx)
    }
}

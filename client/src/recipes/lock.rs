//! `client.lock("name")`: the `lock` recipe (FIFO-fair, fencing tokens, released when the
//! session ends). `acquire` returns a guard carrying the fencing token: pass it to whatever the
//! lock protects, which should refuse any token lower than the highest it has seen.

use std::time::Duration;

use serde_json::{json, Value};

use super::{call, call_at, wait_note};
use crate::{Client, ClientError};

/// A named lock, with the options of the next acquisition.
#[derive(Debug, Clone)]
pub struct Lock {
    client: Client,
    plugin: String,
    name: String,
    timeout: Option<Duration>,
    reentrant: bool,
    delay: Duration,
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it releases it in the
/// background (best effort: the session's end releases it anyway).
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    plugin: String,
    name: String,
    token: u64,
    /// The log position at which the acquisition queued (None: granted at once).
    queued_at: Option<u64>,
    released: bool,
}

impl Client {
    /// The lock `name` of the `lock` plugin.
    pub fn lock(&self, name: &str) -> Lock {
        Lock {
            client: self.clone(),
            plugin: "lock".into(),
            name: name.into(),
            timeout: None,
            reentrant: false,
            delay: Duration::ZERO,
        }
    }
}

impl Lock {
    /// Use the lock recipe deployed under another name.
    pub fn plugin(mut self, plugin: &str) -> Self {
        self.plugin = plugin.into();
        self
    }

    /// Give up waiting after `t` ([`Lock::acquire`] then fails with `Timeout`).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// This session may acquire it again while holding it (and must release it as often).
    pub fn reentrant(mut self, yes: bool) -> Self {
        self.reentrant = yes;
        self
    }

    /// If this session ends while holding the lock, nobody gets it for `d` (Chubby's
    /// lock-delay: time for the holder's in-flight work to drain).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    fn input(&self, timeout_ms: Option<u64>) -> Value {
        json!({ "acquire": { "lock": self.name, "timeout_ms": timeout_ms, "reentrant": self.reentrant,
            "delay_ms": self.delay.as_millis() as u64 } })
    }

    fn guard(&self, token: u64, queued_at: Option<u64>) -> LockGuard {
        let (client, plugin, name) = (self.client.clone(), self.plugin.clone(), self.name.clone());
        LockGuard { client, plugin, name, token, queued_at, released: false }
    }

    /// Wait for the lock (in FIFO order); its guard.
    pub async fn acquire(&self) -> Result<LockGuard, ClientError> {
        // Listen first: the grant may come as a notification right after the reply.
        let mut rx = self.client.listen()?;
        let timeout_ms = self.timeout.map(|t| t.as_millis() as u64);
        let (out, index) = call_at(&self.client, &self.plugin, self.input(timeout_ms)).await?;
        if let Some(token) = out["granted"]["token"].as_u64() {
            return Ok(self.guard(token, None));
        }
        if out.get("queued").is_none() {
            return Err(ClientError::Protocol(format!("lock: unexpected answer {out}")));
        }
        // The call's own position (acquisitions may share a log entry); a lock plugin that
        // does not say gives the entry's index.
        let index = out["queued"]["at"].as_u64().unwrap_or(index);
        wait_note(&self.client, &mut rx, &self.plugin, |v| {
            if v["lock"] != self.name.as_str() {
                return None;
            }
            if let Some(token) = v["token"].as_u64() {
                return Some(Ok(self.guard(token, Some(index))));
            }
            (v["timeout"] == true).then(|| Err(ClientError::Timeout(self.timeout.unwrap_or_default())))
        })
        .await?
    }

    /// The lock if it is free now (never waits).
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, ClientError> {
        let out = call(&self.client, &self.plugin, self.input(Some(0))).await?;
        Ok(out["granted"]["token"].as_u64().map(|t| self.guard(t, None)))
    }
}

impl LockGuard {
    /// The fencing token: the log position of the call that granted this lock; strictly
    /// increasing per lock.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The log position at which this acquisition joined the queue (None: it was granted at
    /// once). Grants follow this order: that is the lock's fairness.
    pub fn queued_at(&self) -> Option<u64> {
        self.queued_at
    }

    pub async fn release(mut self) -> Result<(), ClientError> {
        self.released = true;
        call(&self.client, &self.plugin, json!({ "release": { "lock": self.name } })).await.map(|_| ())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, plugin, name) = (self.client.clone(), self.plugin.clone(), self.name.clone());
            rt.spawn(async move {
                let _ = call(&client, &plugin, json!({ "release": { "lock": name } })).await;
            });
        }
    }
}

//! A recipe plugin in a state machine of its own, driven entry by entry: sessions, calls,
//! mailboxes, session ends and the passage of leader time.

#![allow(clippy::unwrap_used, dead_code)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use corral::plugin::{Plugins, BUNDLED_DIR};
use corral::state::{Command, MemStore, Op, State};
use corral_proto::{Error, Reply};
use serde_json::Value;

pub struct Sim {
    pub s: State,
    pub index: u64,
    pub ts: u64,
    plugin: String,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// A state machine with the bundled plugin `plugin` deployed under its own name.
    pub fn new(plugin: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let plugins = Plugins::new(dir.path()).unwrap();
        let s = State::new(Arc::new(MemStore::default())).with_plugins(plugins.clone());
        let wasm = std::fs::read(format!("{BUNDLED_DIR}/{plugin}.wasm")).unwrap();
        let p = plugins.prepare(&wasm).unwrap();
        let mut sim = Sim { s, index: 0, ts: 1_000, plugin: plugin.into(), _dir: dir };
        let deploy = Op::PluginDeploy {
            name: plugin.into(),
            code: p.code,
            hash: p.hash,
            fuel: 10_000_000,
            quota: 1 << 24,
            acl: vec![],
        };
        sim.op(0, deploy).unwrap();
        sim
    }

    pub fn op(&mut self, session: u64, op: Op) -> Result<Reply, Error> {
        self.index += 1;
        self.ts += 10;
        let cmd = Command { session, req: self.index, ..Command::plain(self.ts, op) };
        self.s.with_txn(|t| self.s.apply(t, self.index, &cmd)).unwrap()
    }

    pub fn session(&mut self) -> u64 {
        match self.op(0, Op::CreateSession { timeout_ms: 5_000, secret: vec![0; 16] }) {
            Ok(Reply::Session { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Call the plugin's `apply` as `session`; its JSON output.
    pub fn call(&mut self, session: u64, input: Value) -> Result<Value, Error> {
        let op = Op::PluginCall { name: self.plugin.clone(), input: input.to_string().into_bytes() };
        match self.op(session, op)? {
            Reply::Plugin { output, .. } => Ok(serde_json::from_slice(&output).unwrap()),
            other => panic!("{other:?}"),
        }
    }

    /// Call the plugin's `apply` as a non-admin `identity`.
    pub fn call_as_user(&mut self, session: u64, identity: &str, input: Value) -> Result<Value, Error> {
        self.index += 1;
        self.ts += 10;
        let op = Op::PluginCall { name: self.plugin.clone(), input: input.to_string().into_bytes() };
        let cmd = Command {
            session,
            req: self.index,
            identity: identity.into(),
            admin: false,
            ..Command::plain(self.ts, op)
        };
        match self.s.with_txn(|t| self.s.apply(t, self.index, &cmd)).unwrap()? {
            Reply::Plugin { output, .. } => Ok(serde_json::from_slice(&output).unwrap()),
            other => panic!("{other:?}"),
        }
    }

    /// The plugin's `query`; its JSON output.
    pub fn query(&mut self, input: Value) -> Value {
        let ctx = corral::plugin::CallContext { index: self.index, ..Default::default() };
        match self.s.plugin_query(&self.plugin.clone(), input.to_string().as_bytes(), ctx, true).unwrap() {
            Reply::Plugin { output, .. } => serde_json::from_slice(&output).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// The session's notifications since the last call, acknowledged.
    pub fn mail(&mut self, session: u64) -> Vec<Value> {
        let notes = self.s.mailbox(session, (0, 0), 1000).unwrap();
        if let Some(last) = notes.last() {
            self.op(session, Op::AckNotifications { upto: last.pos }).unwrap();
        }
        notes.iter().map(|n| serde_json::from_slice(&n.payload).unwrap()).collect()
    }

    pub fn end(&mut self, session: u64) {
        self.op(0, Op::ExpireSessions { ids: vec![session] }).unwrap();
    }

    pub fn tick_until(&mut self, ts: u64) {
        while self.ts < ts {
            self.op(0, Op::Tick).unwrap();
        }
    }
}

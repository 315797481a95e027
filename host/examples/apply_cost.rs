//! The state machine's cost per entry, without the network or the log: a built-in `set`
//! against a plugin `apply` doing the same (the bundled counter's `{"add":1}`), on an
//! in-memory store. Medians of 5 runs of 5,000 entries each.
//!
//! `cargo run --release -p corral --example apply_cost`

use std::sync::Arc;
use std::time::Instant;

use corral::plugin::{Plugins, BUNDLED_DIR};
use corral::state::{Command, MemStore, Op, State};
use corral_proto::CreateMode;

const N: u64 = 5_000;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = Plugins::new(dir.path())?;
    let state = State::new(Arc::new(MemStore::default())).with_plugins(plugins.clone());
    let wasm = std::fs::read(format!("{BUNDLED_DIR}/counter.wasm"))?;
    let p = plugins.prepare(&wasm).map_err(anyhow::Error::msg)?;
    let mut index = 0;
    let mut apply = |op: Op| {
        index += 1;
        let cmd = Command::plain(1_000 + index, op);
        state.with_txn(|t| state.apply(t, index, &cmd)).map(|_| ())
    };
    let deploy = Op::PluginDeploy {
        name: "c".into(),
        code: p.code,
        hash: p.hash,
        fuel: 10_000_000,
        quota: 1 << 30,
        acl: vec![],
    };
    apply(deploy)?;
    apply(Op::Create { path: "/k".into(), data: vec![], mode: CreateMode::default() })?;
    for (label, op) in [
        ("set (built in)", Op::Set { path: "/k".into(), data: b"01234567".to_vec(), version: None }),
        ("plugin apply", Op::PluginCall { name: "c".into(), input: br#"{"add":1}"#.to_vec() }),
    ] {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..N {
                apply(op.clone())?;
            }
            runs.push(t.elapsed().as_secs_f64() * 1e6 / N as f64);
        }
        runs.sort_by(f64::total_cmp);
        println!("{label:<16} {:>8.1} us per entry (median of 5 runs of {N}; runs {runs:.1?})", runs[2]);
    }
    Ok(())
}

//! The state machine's cost per operation, without the network or the log: a built-in `set`
//! against a plugin `apply` doing the same (the bundled counter's `{"add":1}`), on an
//! in-memory store. Each alone in its entry (a lone client: the plugin pays a fresh instance
//! per call), then 16 to an entry (a group commit's shape at 64 clients: the calls share a
//! warm instance). Medians of 5 runs of N operations each.
//!
//! `cargo run --release -p corral --example apply_cost [N]` (N defaults to 5,000)

use std::sync::Arc;
use std::time::Instant;

use corral::plugin::{Plugins, BUNDLED_DIR};
use corral::state::{Command, MemStore, Op, State};
use corral_proto::CreateMode;

/// Operations per entry in the grouped rows.
const GROUP: usize = 16;

fn main() -> anyhow::Result<()> {
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|_| anyhow::anyhow!("N must be a number of operations, not `{a}`"))?,
        None => 5_000,
    };
    let dir = tempfile::tempdir()?;
    let plugins = Plugins::new(dir.path())?;
    let state = State::new(Arc::new(MemStore::default())).with_plugins(plugins.clone());
    let wasm = std::fs::read(format!("{BUNDLED_DIR}/counter.wasm"))?;
    let p = plugins.prepare(&wasm).map_err(anyhow::Error::msg)?;
    let mut index = 0;
    // One entry of `per` copies of `op`: alone, or as a group commit's batch.
    let mut apply = |op: Op, per: usize| {
        index += 1;
        let cmd = Command::plain(1_000 + index, op);
        if per == 1 {
            state.with_txn(|t| state.apply(t, index, &cmd)).map(|_| ())
        } else {
            let cmds = vec![cmd; per];
            state.with_txn(|t| state.apply_batch(t, index, &cmds)).map(|_| ())
        }
    };
    let deploy = Op::PluginDeploy {
        name: "c".into(),
        code: p.code,
        hash: p.hash,
        fuel: 10_000_000,
        quota: 1 << 30,
        acl: vec![],
    };
    apply(deploy, 1)?;
    apply(Op::Create { path: "/k".into(), data: vec![], mode: CreateMode::default() }, 1)?;
    let set = Op::Set { path: "/k".into(), data: b"01234567".to_vec(), version: None };
    let call = Op::PluginCall { name: "c".into(), input: br#"{"add":1}"#.to_vec() };
    for (label, op, per) in [
        ("set (built in), 1 per entry", &set, 1),
        ("plugin apply, 1 per entry", &call, 1),
        ("set (built in), 16 per entry", &set, GROUP),
        ("plugin apply, 16 per entry", &call, GROUP),
    ] {
        let entries = (n / per as u64).max(1);
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..entries {
                apply(op.clone(), per)?;
            }
            runs.push(t.elapsed().as_secs_f64() * 1e6 / (entries * per as u64) as f64);
        }
        runs.sort_by(f64::total_cmp);
        println!("{label:<30} {:>6.2} us per operation (median of 5 runs of {n}; runs {runs:.2?})", runs[2]);
    }
    Ok(())
}

//! The short nemesis run that is part of CI: 45 s of every workload on 3 real nodes under every
//! kind of fault at seeded moments; every checker must find nothing. Longer runs:
//! `cargo run -p corral-tests --bin nemesis -- --help`.

use std::time::Duration;

use corral_tests::nemesis::{run, Config, ALL_FAULTS, ALL_WORKLOADS};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_seeded_nemesis_run_finds_no_anomaly() -> anyhow::Result<()> {
    let seed = std::env::var("CORRAL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261122);
    let cfg = Config {
        seed,
        duration: Duration::from_secs(45),
        nodes: 3,
        faults: ALL_FAULTS.to_vec(),
        workloads: ALL_WORKLOADS.to_vec(),
        clients: 4,
        keys: 3,
        history_file: None,
    };
    let report = run(&cfg).await?;
    println!("{}", report.summary(&cfg));
    for f in &report.fault_log {
        println!("fault at {f}");
    }
    assert!(report.faults.values().sum::<u64>() >= 5, "the nemesis was idle: {:?}", report.faults);
    assert!(report.operations > 300, "the register workload hardly ran");
    for (what, n) in &report.other_ops {
        assert!(*n > 0 || what.contains("resync"), "the {what} workload did nothing");
    }
    assert!(report.anomalies.is_empty(), "{}\nreproduce: {}", report.summary(&cfg), cfg.command());
    Ok(())
}

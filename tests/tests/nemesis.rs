//! The short nemesis run that is part of CI: 45 s of a register workload on 3 real nodes under
//! kills, pauses, partitions and flaky links at seeded moments; the history must be
//! linearizable. Longer runs: `cargo run -p corral-tests --bin nemesis -- --help`.

use std::time::Duration;

use corral_tests::nemesis::{run, Config, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_seeded_nemesis_run_finds_no_anomaly() -> anyhow::Result<()> {
    let seed = std::env::var("CORRAL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261122);
    let cfg = Config {
        seed,
        duration: Duration::from_secs(45),
        nodes: 3,
        faults: vec![Fault::Kill, Fault::Pause, Fault::Partition, Fault::Flaky],
        clients: 4,
        keys: 3,
        history_file: None,
    };
    let report = run(&cfg).await?;
    println!("{}", report.summary(&cfg));
    assert!(report.faults.values().sum::<u64>() >= 5, "the nemesis was idle: {:?}", report.faults);
    assert!(report.operations > 1_000, "the workload hardly ran");
    assert!(
        report.anomalies.is_empty(),
        "{}\nreproduce: cargo run -p corral-tests --bin nemesis -- --seed {seed} --duration 45s --nodes 3 --faults kill,pause,partition,flaky",
        report.summary(&cfg)
    );
    Ok(())
}

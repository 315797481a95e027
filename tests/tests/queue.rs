//! The `queue` recipe on 3 real nodes: 8 producers put 10,000 items while 8 consumer
//! processes (`corral queue consume`) take and acknowledge them; 3 consumers are killed -9
//! mid-way (their unacknowledged items return when their sessions end). No item is lost (the
//! queue ends empty, and only an acknowledgement removes an item), none is acknowledged twice.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Consistency, DeployOptions};
use corral_tests::{eventually, plugin_wasm, Cluster, NodeOpts};

const PRODUCERS: u64 = 8;
const EACH: u64 = 1_250;
const CONSUMERS: usize = 8;
const KILLED: usize = 3;

type Acked = Arc<Mutex<Vec<u64>>>;

fn consumer(c: &Cluster, acked: &Acked) -> anyhow::Result<Child> {
    let mut child = c
        .cli()?
        .args(["--json", "queue", "consume", "Q", "--session-timeout", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let acked = acked.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(id) = v["id"].as_u64() {
                    acked.lock().unwrap().push(id);
                }
            }
        }
    });
    Ok(child)
}

async fn queued(c: &Cluster) -> u64 {
    let Ok(client) = c.client() else { return u64::MAX };
    match client.plugin_query("queue", br#"{"size":{"queue":"Q"}}"#, Consistency::Linearizable).await {
        Ok((out, _)) => serde_json::from_slice::<serde_json::Value>(&out)
            .map_or(u64::MAX, |v| v["size"]["items"].as_u64().unwrap_or(u64::MAX)),
        Err(_) => u64::MAX,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_items_none_lost_none_acknowledged_twice_while_consumers_die() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.plugin_deploy("queue", plugin_wasm("queue"), DeployOptions::default()).await?;
    let acked: Acked = Arc::default();
    let mut consumers: Vec<Child> = (0..CONSUMERS).map(|_| consumer(&c, &acked)).collect::<Result<_, _>>()?;

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let client = c.client()?;
        producers.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            for i in 0..EACH {
                client.queue("Q").put(&format!("p{p}-{i}")).await?;
            }
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }

    // Kill consumers mid-way, each once it has done some work, and start replacements.
    for k in 0..KILLED {
        let target = (k as u64 + 1) * PRODUCERS * EACH / (KILLED as u64 + 2);
        eventually(Duration::from_secs(300), "consumers to make progress", || async {
            acked.lock().unwrap().len() as u64 >= target
        })
        .await?;
        consumers[k].kill()?;
        let _ = consumers[k].wait();
        consumers.push(consumer(&c, &acked)?);
    }
    for p in producers {
        p.await??;
    }
    eventually(Duration::from_secs(300), "the queue to drain", || async { queued(&c).await == 0 }).await?;
    for mut child in consumers {
        let _ = child.kill();
        let _ = child.wait();
    }

    let acked = acked.lock().unwrap().clone();
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len(), "an item was acknowledged twice");
    // A killed consumer may have acknowledged its last item without printing it.
    let total = PRODUCERS * EACH;
    assert!(unique.len() as u64 >= total - KILLED as u64, "{} of {total} acknowledged", unique.len());
    assert!(unique.iter().all(|id| (1..=total).contains(id)), "unknown ids");
    println!("{} items, {} acknowledgements seen, {KILLED} consumers killed", total, acked.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shell_take_acknowledges_only_when_its_command_succeeds() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.plugin_deploy("queue", plugin_wasm("queue"), DeployOptions::default()).await?;
    client.queue("Q").put("first").await?;
    let failed = c.cli()?.args(["queue", "take", "Q", "--", "false"]).status()?;
    assert!(!failed.success(), "the command's failure is the exit status");
    assert_eq!(queued(&c).await, 1, "not acknowledged: the item is back");
    let check = r#"test "$CORRAL_QUEUE_DATA" = first"#;
    let ok = c.cli()?.args(["queue", "take", "Q", "--", "sh", "-c", check]).status()?;
    assert!(ok.success());
    assert_eq!(queued(&c).await, 0, "acknowledged");
    Ok(())
}

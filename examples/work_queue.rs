//! A work queue with several workers (the `queue` recipe): a producer puts 20 jobs; three
//! workers take them as they come, acknowledge each when done, and stop when all are done. A
//! job whose worker died before acknowledging would go back to the queue.
//!
//! `cargo run -p corral -- dev` in one terminal, then `cargo run -p corral-examples --example work_queue`.

mod connect;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::Client;

const JOBS: u64 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = connect::config()?;
    let queue_name = format!("jobs-{}", std::process::id());
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..3 {
        let client = Client::connect(&cfg).await?;
        let (done, name) = (done.clone(), queue_name.clone());
        workers.push(tokio::spawn(async move {
            client.start_session(5_000).await?;
            let queue = client.queue(&name).visibility(Duration::from_secs(10));
            while done.load(Ordering::SeqCst) < JOBS {
                let take = tokio::time::timeout(Duration::from_millis(500), queue.take()).await;
                let Ok(item) = take else { continue };
                let item = item?;
                tokio::time::sleep(Duration::from_millis(50)).await; // the work
                queue.ack(item.id).await?;
                done.fetch_add(1, Ordering::SeqCst);
                println!("worker {w} did {}", item.data);
            }
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }
    let producer = Client::connect(&cfg).await?;
    for j in 1..=JOBS {
        producer.queue(&queue_name).put(&format!("job {j}")).await?;
    }
    for w in workers {
        w.await??;
    }
    println!("all {JOBS} jobs done");
    Ok(())
}

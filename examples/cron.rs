//! A distributed cron: three instances campaign in the `election` recipe; only the leader runs
//! the job, stamping each run with its term (a fencing token). The leader steps down after
//! three runs — as if it were deployed away — and the next instance takes over at once.
//!
//! `cargo run -p corral -- dev` in one terminal, then `cargo run -p corral-examples --example cron`.

mod connect;

use std::time::Duration;

use corral_client::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = connect::config()?;
    let mut instances = Vec::new();
    for i in 0..3 {
        let client = Client::connect(&cfg).await?;
        instances.push(tokio::spawn(async move {
            client.start_session(3_000).await?;
            let election = client.election("cron-example");
            let term = election.campaign(&format!("instance-{i}")).await?;
            for run in 1..=3 {
                println!("instance {i} (term {term}) runs the job, run {run}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            election.resign().await?;
            println!("instance {i} steps down");
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }
    for i in instances {
        i.await??;
    }
    Ok(())
}

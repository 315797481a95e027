//! `corral queue put|take|consume|size NAME`: the `queue` recipe from the shell. A shell
//! process has its own session, so acknowledging happens inside one command: `take NAME --
//! CMD` acknowledges the item only if CMD succeeds (else, or if this process dies, the item
//! returns to the queue); `take` without CMD and `consume` acknowledge each item once they
//! have printed it.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use corral_client::Client;
use serde_json::json;

use super::output::print;

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Add DATA to queue NAME; prints its id.
    Put {
        name: String,
        data: String,
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i64,
        /// Hide it for this many ms.
        #[arg(long, default_value_t = 0)]
        delay: u64,
    },
    /// Take one item (waiting for one). With `-- CMD ...`: run CMD with the item in
    /// CORRAL_QUEUE_DATA / CORRAL_QUEUE_ID and acknowledge it only if CMD succeeds; without:
    /// print it and acknowledge it.
    Take {
        name: String,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Take, print and acknowledge items until --max (or Ctrl-C).
    Consume {
        name: String,
        #[arg(long)]
        max: Option<u64>,
        /// Session timeout (ms): how long after this process dies its unacknowledged item returns.
        #[arg(long, default_value_t = 10_000)]
        session_timeout: u64,
    },
    /// How many items the queue holds and has ready, and how many takers wait.
    Size { name: String },
}

pub async fn run(client: &Client, cmd: QueueCmd, j: bool) -> Result<()> {
    match cmd {
        QueueCmd::Put { name, data, priority, delay } => {
            let id = client.queue(&name).put_with(&data, priority, Duration::from_millis(delay)).await?;
            print(j, json!({ "queue": name, "id": id }), || id.to_string());
        }
        QueueCmd::Take { name, cmd } if cmd.is_empty() => consume(client, &name, Some(1), 10_000, j).await?,
        QueueCmd::Take { name, cmd } => take_and_run(client, &name, &cmd).await?,
        QueueCmd::Consume { name, max, session_timeout } => consume(client, &name, max, session_timeout, j).await?,
        QueueCmd::Size { name } => {
            let input = json!({ "size": { "queue": name } }).to_string();
            let (out, _) =
                client.plugin_query("queue", input.as_bytes(), corral_client::Consistency::Linearizable).await?;
            let v: serde_json::Value = serde_json::from_slice(&out)?;
            print(j, v["size"].clone(), || {
                format!("items {} ready {} takers {}", v["size"]["items"], v["size"]["ready"], v["size"]["takers"])
            });
        }
    }
    Ok(())
}

/// Take one item, run `cmd` on it, acknowledge it only if `cmd` succeeds.
async fn take_and_run(client: &Client, name: &str, cmd: &[String]) -> Result<()> {
    client.start_session(10_000).await?;
    let queue = client.queue(name);
    let item = queue.take().await?;
    let status = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("CORRAL_QUEUE_DATA", &item.data)
        .env("CORRAL_QUEUE_ID", item.id.to_string())
        .status()
        .await;
    let ok = status.as_ref().is_ok_and(|s| s.success());
    if ok {
        queue.ack(item.id).await?;
    }
    // Closing the session returns an unacknowledged item to the queue at once.
    client.close_session().await?;
    let status = status.with_context(|| format!("running {:?}", cmd[0]))?;
    if !ok {
        match status.code() {
            Some(code) => std::process::exit(code),
            None => bail!("{:?} was killed by a signal; item {} returned to the queue", cmd[0], item.id),
        }
    }
    Ok(())
}

async fn consume(client: &Client, name: &str, max: Option<u64>, session_timeout: u64, j: bool) -> Result<()> {
    client.start_session(session_timeout).await?;
    let queue = client.queue(name);
    let mut n = 0;
    while max.is_none_or(|m| n < m) {
        let item = tokio::select! {
            _ = super::shutdown_signal() => break,
            item = queue.take() => item?,
        };
        queue.ack(item.id).await?;
        print(j, json!({ "queue": name, "id": item.id, "data": item.data }), || item.data.clone());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        n += 1;
    }
    client.close_session().await?;
    Ok(())
}

//! `corral queue put|take|consume|size NAME`: the `queue` recipe from the shell. A shell
//! process has its own session, so `take` and `consume` acknowledge each item once they have
//! printed it (an item whose consumer dies before that returns to the queue).

use std::time::Duration;

use anyhow::Result;
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
    /// Take one item (waiting for one), print it, acknowledge it.
    Take { name: String },
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
        QueueCmd::Take { name } => consume(client, &name, Some(1), 10_000, j).await?,
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

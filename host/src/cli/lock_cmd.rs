//! `corral lock NAME -- CMD ...`: run CMD while holding the lock NAME (the `lock` recipe), with
//! the fencing token in `CORRAL_FENCING_TOKEN`; release it when CMD ends, and exit with CMD's
//! status. If this process dies, its session ends and the lock passes on.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use corral_client::Client;

#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock's name.
    name: String,
    /// Give up if the lock is not acquired within this many ms.
    #[arg(long)]
    timeout: Option<u64>,
    /// Session timeout (ms): how long after this process dies the lock passes on.
    #[arg(long, default_value_t = 10_000)]
    session_timeout: u64,
    /// The command to run while holding the lock.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

pub async fn run(client: &Client, args: LockArgs) -> Result<()> {
    client.start_session(args.session_timeout).await?;
    let mut lock = client.lock(&args.name);
    if let Some(ms) = args.timeout {
        lock = lock.timeout(Duration::from_millis(ms));
    }
    let guard = lock.acquire().await.with_context(|| format!("acquiring lock {}", args.name))?;
    let status = tokio::process::Command::new(&args.cmd[0])
        .args(&args.cmd[1..])
        .env("CORRAL_FENCING_TOKEN", guard.token().to_string())
        .status()
        .await;
    let released = guard.release().await;
    client.close_session().await?;
    released?;
    let status = status.with_context(|| format!("running {:?}", args.cmd[0]))?;
    if !status.success() {
        // The command's own exit code, as if it had run alone.
        match status.code() {
            Some(code) => std::process::exit(code),
            None => bail!("{:?} was killed by a signal", args.cmd[0]),
        }
    }
    Ok(())
}

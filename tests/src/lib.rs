//! Test harness: real `corral serve` processes on 127.0.0.1 (ports picked by the OS), real
//! kills (SIGKILL), pauses (SIGSTOP/SIGCONT) and restarts. Every child is killed when the
//! [`Cluster`] is dropped, and also dies with the test process (PR_SET_PDEATHSIG), so no test
//! leaves a server behind.

pub mod checker;
mod cluster;
pub mod nemesis;
pub mod proc;
pub mod raw;
pub mod toolchains;

pub use cluster::{Cluster, NodeOpts};
pub use proc::{corral_bin, corral_cmd, plugin_wasm};

/// Await `cond` until it holds or `timeout` passes; polls every 20 ms. For conditions on
/// other processes, which cannot notify us.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, what: &str, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

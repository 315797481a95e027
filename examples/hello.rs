//! The smallest corral program: connect, write a node, read it back, list the root.
//!
//! Start an ensemble first (`cargo run -p corral -- dev`), then from the same directory:
//! `cargo run -p corral-examples --example hello`. It finds the cluster through
//! `$CORRAL_CONFIG`, else `./.corral-dev/client.toml`.

use anyhow::Context;
use corral_client::{Client, ClientConfig, ClientError, Consistency, ServerError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::var("CORRAL_CONFIG").unwrap_or_else(|_| ".corral-dev/client.toml".into());
    let cfg =
        ClientConfig::load(path.as_ref()).with_context(|| format!("loading {path} (is `corral dev` running?)"))?;
    let client = Client::connect(&cfg).await?;

    match client.create("/hello", b"world").await {
        Ok(stat) => println!("created /hello at log index {}", stat.czxid),
        Err(ClientError::Server(ServerError::NodeExists { .. })) => println!("/hello already exists"),
        Err(e) => return Err(e.into()),
    }
    let (data, stat) = client.get("/hello").await?;
    println!("/hello = {:?} (version {})", String::from_utf8_lossy(&data), stat.version);
    println!("children of /: {:?}", client.children("/", Consistency::Linearizable).await?);
    Ok(())
}

//! `corral plugin ...`: deploy, upgrade, remove, list, call and query plugins.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use corral_client::{Client, DeployOptions};
use serde_json::json;

use super::output::print;

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Deploy plugin NAME from FILE (a component, a wit-bindgen core module, or a bare core
    /// module following the canonical ABI). Admins only.
    Deploy {
        name: String,
        file: PathBuf,
        /// Fuel per call (default 10,000,000: about 1.5 ms of guest code).
        #[arg(long)]
        fuel: Option<u64>,
        /// Bytes its key-value namespace may hold.
        #[arg(long)]
        quota: Option<u64>,
        /// Who may call (w) and query (r) it, e.g. "app:rw,*:r" (default: anyone).
        #[arg(long)]
        acl: Option<String>,
    },
    /// Replace NAME's code with FILE, keeping its state; its `migrate` runs.
    Upgrade {
        name: String,
        file: PathBuf,
        #[arg(long)]
        fuel: Option<u64>,
    },
    /// Remove NAME and everything it keeps.
    Rm { name: String },
    /// The deployed plugins: name, version, hash, size, deployed at index.
    Ls {
        #[arg(long)]
        serializable: bool,
    },
    /// Call NAME's `apply` with INPUT (JSON, passed as is; `-` reads standard input).
    Call { name: String, input: String },
    /// Call NAME's `query` with INPUT on one node.
    Query {
        name: String,
        input: String,
        #[arg(long)]
        serializable: bool,
    },
}

fn read_wasm(file: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

fn output_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(bytes)))
}

pub async fn run(client: &Client, cmd: PluginCmd, j: bool) -> Result<()> {
    match cmd {
        PluginCmd::Deploy { name, file, fuel, quota, acl } => {
            let acl = match acl {
                Some(spec) => corral_client::acl::parse(&spec).map_err(|e| anyhow!("ACL {spec:?}: {e}"))?,
                None => Vec::new(),
            };
            let index = client.plugin_deploy(&name, read_wasm(&file)?, DeployOptions { fuel, quota, acl }).await?;
            print(j, json!({ "deployed": name, "index": index }), || format!("deployed {name} at index {index}"));
        }
        PluginCmd::Upgrade { name, file, fuel } => {
            let index = client.plugin_upgrade(&name, read_wasm(&file)?, fuel).await?;
            print(j, json!({ "upgraded": name, "index": index }), || format!("upgraded {name} at index {index}"));
        }
        PluginCmd::Rm { name } => {
            let index = client.plugin_remove(&name).await?;
            print(j, json!({ "removed": name, "index": index }), || format!("removed {name} at index {index}"));
        }
        PluginCmd::Ls { serializable } => {
            let list = client.plugin_list(super::client_cmds::consistency(serializable)).await?;
            if j {
                for p in &list {
                    println!(
                        "{}",
                        json!({
                            "name": p.name, "version": p.version, "hash": p.hash, "size": p.size,
                            "deployed_at": p.deployed_at, "upgraded_at": p.upgraded_at, "fuel": p.fuel,
                            "quota": p.quota, "used": p.used, "acl": corral_client::acl::format(&p.acl),
                        })
                    );
                }
            } else {
                println!(
                    "{:<20} {:>7} {:<16} {:>9} {:>11} {:>12}",
                    "NAME", "VERSION", "HASH", "SIZE", "DEPLOYED", "USED"
                );
                for p in &list {
                    println!(
                        "{:<20} {:>7} {:<16} {:>9} {:>11} {:>12}",
                        p.name,
                        p.version,
                        &p.hash[..p.hash.len().min(16)],
                        p.size,
                        p.deployed_at,
                        p.used
                    );
                }
            }
        }
        PluginCmd::Call { name, input } => {
            let input = super::client_cmds::data_arg(Some(input))?;
            let (out, index) = client.plugin_call(&name, &input).await?;
            let text = String::from_utf8_lossy(&out).into_owned();
            print(j, json!({ "output": output_json(&out), "index": index }), || text.clone());
        }
        PluginCmd::Query { name, input, serializable } => {
            let input = super::client_cmds::data_arg(Some(input))?;
            let c = super::client_cmds::consistency(serializable);
            let (out, index) = client.plugin_query(&name, &input, c).await?;
            let text = String::from_utf8_lossy(&out).into_owned();
            print(j, json!({ "output": output_json(&out), "index": index }), || text.clone());
        }
    }
    Ok(())
}

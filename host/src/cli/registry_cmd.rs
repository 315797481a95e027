//! `corral registry register SERVICE INSTANCE -- CMD ...` keeps INSTANCE registered while CMD
//! runs (a shell process's registration lives with its session); `lookup SERVICE`; `pick
//! SERVICE [--least-assigned]`.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use corral_client::recipes::Balance;
use corral_client::Client;
use serde_json::json;

use super::output::print;

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Register INSTANCE of SERVICE while CMD runs.
    Register {
        service: String,
        instance: String,
        #[arg(long, default_value = "")]
        meta: String,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// SERVICE's instances.
    Lookup { service: String },
    /// Choose an instance of SERVICE (weighted round-robin, or the least assigned).
    Pick {
        service: String,
        #[arg(long)]
        least_assigned: bool,
    },
}

pub async fn run(client: &Client, cmd: RegistryCmd, j: bool) -> Result<()> {
    match cmd {
        RegistryCmd::Register { service, instance, meta, weight, cmd } => {
            client.start_session(10_000).await?;
            client.registry(&service).register(&instance, &meta, weight).await?;
            let status = tokio::process::Command::new(&cmd[0]).args(&cmd[1..]).status().await;
            client.close_session().await?;
            let status = status.with_context(|| format!("running {:?}", cmd[0]))?;
            if !status.success() {
                match status.code() {
                    Some(code) => std::process::exit(code),
                    None => bail!("{:?} was killed by a signal", cmd[0]),
                }
            }
        }
        RegistryCmd::Lookup { service } => {
            let all = client.registry(&service).lookup().await?;
            if j {
                for i in &all {
                    println!(
                        "{}",
                        json!({ "instance": i.instance, "meta": i.meta, "weight": i.weight, "assigned": i.assigned })
                    );
                }
            } else {
                for i in &all {
                    println!("{}\t{}\tweight {}\tassigned {}", i.instance, i.meta, i.weight, i.assigned);
                }
            }
        }
        RegistryCmd::Pick { service, least_assigned } => {
            let balance = if least_assigned { Balance::LeastAssigned } else { Balance::RoundRobin };
            let i = client.registry(&service).pick(balance).await?;
            print(j, json!({ "instance": i.instance, "meta": i.meta }), || format!("{}\t{}", i.instance, i.meta));
        }
    }
    Ok(())
}

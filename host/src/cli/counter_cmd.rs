//! `corral counter add|get|cas|next NAME ...`: the `counter` recipe from the shell.

use anyhow::Result;
use clap::Subcommand;
use corral_client::Client;
use serde_json::json;

use super::output::print;

#[derive(Subcommand, Debug)]
pub enum CounterCmd {
    /// Add DELTA to counter NAME; prints the new value.
    Add {
        name: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
    },
    /// Print counter NAME's value.
    Get { name: String },
    /// Set NAME to NEW if it is EXPECT; prints the value, exits 1 if it was not EXPECT.
    Cas {
        name: String,
        #[arg(allow_hyphen_values = true)]
        expect: i64,
        #[arg(allow_hyphen_values = true)]
        new: i64,
    },
    /// The next number of sequence NAME (1, 2, 3, ...).
    Next { name: String },
}

pub async fn run(client: &Client, cmd: CounterCmd, j: bool) -> Result<()> {
    match cmd {
        CounterCmd::Add { name, delta } => {
            let v = client.counter(&name).add(delta).await?;
            print(j, json!({ "counter": name, "value": v }), || v.to_string());
        }
        CounterCmd::Get { name } => {
            let v = client.counter(&name).get().await?;
            print(j, json!({ "counter": name, "value": v }), || v.to_string());
        }
        CounterCmd::Cas { name, expect, new } => match client.counter(&name).compare_and_set(expect, new).await? {
            Ok(v) => print(j, json!({ "counter": name, "swapped": true, "value": v }), || v.to_string()),
            Err(actual) => {
                print(j, json!({ "counter": name, "swapped": false, "value": actual }), || actual.to_string());
                std::process::exit(1);
            }
        },
        CounterCmd::Next { name } => {
            let v = client.counter(&name).next().await?;
            print(j, json!({ "sequence": name, "value": v }), || v.to_string());
        }
    }
    Ok(())
}

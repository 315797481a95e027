//! `corral certs ca|node|client`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::output::print;
use crate::certs;

#[derive(Subcommand, Debug)]
pub enum CertsCmd {
    /// Create a cluster CA (DIR/ca.pem, DIR/ca.key).
    Ca {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue DIR/node<ID>.pem and .key, signed by DIR's CA.
    Node {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        /// Extra DNS names for the certificate (e.g. the node's host name).
        #[arg(long)]
        host: Vec<String>,
    },
    /// Issue DIR/<NAME>.pem and .key for a client identity.
    Client {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
}

pub fn run(cmd: CertsCmd, json_mode: bool) -> Result<()> {
    let (cert, key) = match cmd {
        CertsCmd::Ca { dir } => {
            certs::create_ca(&dir)?;
            certs::ca_paths(&dir)
        }
        CertsCmd::Node { dir, id, host } => certs::issue_node(&certs::load_ca(&dir)?, &dir, id, &host)?,
        CertsCmd::Client { dir, name } => certs::issue_client(&certs::load_ca(&dir)?, &dir, &name)?,
    };
    print(json_mode, json!({ "cert": cert, "key": key }), || format!("wrote {} and {}", cert.display(), key.display()));
    Ok(())
}

//! `corral election campaign NAME -- CMD ...` runs CMD while this process leads the election
//! (term in `CORRAL_ELECTION_TERM`); `corral election leader NAME` prints who leads;
//! `corral election observe NAME` prints every change of leader until Ctrl-C.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use corral_client::recipes::Leader;
use corral_client::Client;
use serde_json::json;

use super::output::print;

#[derive(Subcommand, Debug)]
pub enum ElectionCmd {
    /// Stand for NAME; once leader, run CMD (term in CORRAL_ELECTION_TERM), then resign.
    Campaign {
        name: String,
        /// What observers see of this candidate (e.g. its address).
        #[arg(long, default_value = "")]
        value: String,
        /// Session timeout (ms): how long after this process dies leadership passes on.
        #[arg(long, default_value_t = 10_000)]
        session_timeout: u64,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Who leads NAME now.
    Leader { name: String },
    /// Print every change of NAME's leader until Ctrl-C.
    Observe { name: String },
}

fn leader_json(l: &Option<Leader>) -> serde_json::Value {
    match l {
        Some(l) => json!({ "session": l.session, "value": l.value, "term": l.term }),
        None => json!(null),
    }
}

fn leader_text(l: &Option<Leader>) -> String {
    match l {
        Some(l) => format!("term {} session {:#x} {}", l.term, l.session, l.value),
        None => "no leader".into(),
    }
}

pub async fn run(client: &Client, cmd: ElectionCmd, j: bool) -> Result<()> {
    match cmd {
        ElectionCmd::Campaign { name, value, session_timeout, cmd } => {
            client.start_session(session_timeout).await?;
            let election = client.election(&name);
            let term = election.campaign(&value).await.with_context(|| format!("campaigning in {name}"))?;
            let status = tokio::process::Command::new(&cmd[0])
                .args(&cmd[1..])
                .env("CORRAL_ELECTION_TERM", term.to_string())
                .status()
                .await;
            let resigned = election.resign().await;
            client.close_session().await?;
            resigned?;
            let status = status.with_context(|| format!("running {:?}", cmd[0]))?;
            if !status.success() {
                match status.code() {
                    Some(code) => std::process::exit(code),
                    None => bail!("{:?} was killed by a signal", cmd[0]),
                }
            }
        }
        ElectionCmd::Leader { name } => {
            let l = client.election(&name).leader().await?;
            print(j, json!({ "election": name, "leader": leader_json(&l) }), || leader_text(&l));
        }
        ElectionCmd::Observe { name } => {
            client.start_session(10_000).await?;
            let mut rx = client.election(&name).observe().await?;
            loop {
                let next = tokio::select! {
                    _ = super::shutdown_signal() => break,
                    l = rx.recv() => l,
                };
                let Some(l) = next else { break };
                print(j, json!({ "election": name, "leader": leader_json(&l) }), || leader_text(&l));
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            client.close_session().await?;
        }
    }
    Ok(())
}

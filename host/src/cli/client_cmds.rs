//! Client commands: each builds a `corral_client::Client` from the client config and makes one
//! request (`status` asks every node).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use corral_client::{Client, ClientConfig, Consistency, CreateMode, WatchKind, WatchSpec};
use serde_json::json;

use super::output::{print, stat_json, stat_text, status_json};
use super::Cmd;

#[derive(Subcommand, Debug)]
pub enum MemberCmd {
    /// Add node ID at ADDR (as a voter unless --learner); waits until it has caught up.
    Add {
        id: u64,
        addr: String,
        #[arg(long)]
        learner: bool,
    },
    /// Make learner ID a voter.
    Promote { id: u64 },
    /// Remove node ID from the ensemble.
    Remove { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum AclCmd {
    /// Print PATH's ACL.
    Get { path: String },
    /// Replace PATH's ACL, e.g. `corral acl set /app "admin:rwcda,alice:r"`.
    Set { path: String, acl: String },
}

/// `--config`, then `$CORRAL_CONFIG`, then `./.corral-dev/client.toml`.
pub fn resolve_config(flag: Option<PathBuf>) -> Result<ClientConfig> {
    let path = flag
        .or_else(|| std::env::var_os("CORRAL_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".corral-dev/client.toml"));
    if !path.exists() {
        bail!(
            "no client config at {} (pass --config FILE, set CORRAL_CONFIG, or start `corral dev` here)",
            path.display()
        );
    }
    Ok(ClientConfig::load(&path)?)
}

pub(super) fn consistency(serializable: bool) -> Consistency {
    if serializable {
        Consistency::Serializable
    } else {
        Consistency::Linearizable
    }
}

pub(super) fn data_arg(data: Option<String>) -> Result<Vec<u8>> {
    match data.as_deref() {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("reading standard input")?;
            Ok(buf)
        }
        Some(s) => Ok(s.as_bytes().to_vec()),
    }
}

pub async fn run(cmd: Cmd, config: Option<PathBuf>, j: bool) -> Result<()> {
    let cfg = resolve_config(config)?;
    match cmd {
        Cmd::Status => return status(&cfg, j).await,
        Cmd::Bench(args) => return super::bench::run(&cfg, args, j).await,
        _ => {}
    }
    let client = Client::new(&cfg)?;
    match cmd {
        Cmd::Init { members } => {
            let mut parsed = Vec::new();
            for m in &members {
                let (id, addr) = m.split_once('=').ok_or_else(|| anyhow!("member {m:?}: expected ID=ADDR"))?;
                parsed.push((id.parse().with_context(|| format!("member {m:?}: bad id"))?, addr.to_string()));
            }
            client.initialize(parsed).await?;
            print(j, json!({ "initialized": members }), || "initialized".into());
        }
        Cmd::Create { path, data, ephemeral, sequential, container, ttl, hold, session_timeout } => {
            let data = data_arg(data)?;
            if ephemeral || hold {
                let id = client.start_session(session_timeout).await?;
                tracing::info!(session = id, "session started");
            }
            let mode = CreateMode { ephemeral, sequential, container, ttl_ms: ttl };
            let (actual, stat) = client.create_with(&path, &data, mode).await?;
            print(j, json!({ "path": actual, "stat": stat_json(&stat) }), || actual.clone());
            if hold {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                super::shutdown_signal().await;
            }
            if client.session_id().is_some() {
                client.close_session().await?;
            }
        }
        Cmd::Get { path, serializable } => {
            let (data, stat) = client.get_with(&path, consistency(serializable)).await?;
            let text = String::from_utf8_lossy(&data).into_owned();
            print(j, json!({ "path": path, "data": text, "stat": stat_json(&stat) }), || text.clone());
        }
        Cmd::Set { path, data, version } => {
            let stat = client.set(&path, data.as_bytes(), version).await?;
            print(j, json!({ "path": path, "stat": stat_json(&stat) }), || format!("version {}", stat.version));
        }
        Cmd::Delete { path, version } => {
            client.delete(&path, version).await?;
            print(j, json!({ "deleted": path }), String::new);
        }
        Cmd::Ls { path, serializable } => {
            let children = client.children(&path, consistency(serializable)).await?;
            print(j, json!({ "path": path, "children": children }), || children.join("\n"));
        }
        Cmd::Stat { path, serializable } => match client.exists(&path, consistency(serializable)).await? {
            Some(stat) => print(j, json!({ "path": path, "stat": stat_json(&stat) }), || stat_text(&stat)),
            None => bail!(corral_client::ClientError::Server(corral_client::ServerError::NoNode { path })),
        },
        Cmd::Watch { path, recursive } => {
            client.start_session(10_000).await?;
            let mut events = client.events()?;
            let kind = if recursive { WatchKind::PersistentRecursive } else { WatchKind::Persistent };
            client.add_watch(WatchSpec::new(&path, kind)).await?;
            loop {
                let next = tokio::select! {
                    _ = super::shutdown_signal() => break,
                    ev = events.recv() => ev,
                };
                match next {
                    Some(Ok(ev)) => print(
                        j,
                        json!({ "index": ev.index, "seq": ev.seq, "path": ev.path, "event": format!("{:?}", ev.kind) }),
                        || format!("{:>10}  {:<16} {}", ev.index, format!("{:?}", ev.kind), ev.path),
                    ),
                    Some(Err(e)) => eprintln!("warning: {e}"),
                    None => break,
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
            client.close_session().await?;
        }
        Cmd::Txn { file } => {
            let ops = super::txn::read_ops(&file)?;
            let n = ops.len();
            let replies = client.multi(ops).await?;
            let results: Vec<serde_json::Value> = replies.iter().map(reply_json).collect();
            print(j, json!({ "applied": n, "results": results }), || format!("applied {n} operations"));
        }
        Cmd::Sync => {
            let index = client.sync().await?;
            print(j, json!({ "index": index }), || format!("synced to index {index}"));
        }
        Cmd::Acl(AclCmd::Get { path }) => {
            let acl = client.get_acl(&path).await?;
            let text = corral_client::acl::format(&acl);
            print(j, json!({ "path": path, "acl": text }), || text.clone());
        }
        Cmd::Acl(AclCmd::Set { path, acl }) => {
            let parsed = corral_client::acl::parse(&acl).map_err(|e| anyhow!("ACL {acl:?}: {e}"))?;
            client.set_acl(&path, parsed).await?;
            print(j, json!({ "path": path, "acl": acl }), String::new);
        }
        Cmd::Member(m) => {
            let what = match m {
                MemberCmd::Add { id, addr, learner } => {
                    client.member_add(id, &addr, learner).await?;
                    format!("added node {id} at {addr}{}", if learner { " as a learner" } else { "" })
                }
                MemberCmd::Promote { id } => {
                    client.member_promote(id).await?;
                    format!("promoted node {id}")
                }
                MemberCmd::Remove { id } => {
                    client.member_remove(id).await?;
                    format!("removed node {id}")
                }
            };
            print(j, json!({ "ok": what }), || what.clone());
        }
        Cmd::Plugin(p) => super::plugin_cmd::run(&client, p, j).await?,
        Cmd::Lock(args) => super::lock_cmd::run(&client, args).await?,
        Cmd::Election(e) => super::election_cmd::run(&client, e, j).await?,
        Cmd::Counter(cmd) => super::counter_cmd::run(&client, cmd, j).await?,
        Cmd::Queue(cmd) => super::queue_cmd::run(&client, cmd, j).await?,
        Cmd::Registry(cmd) => super::registry_cmd::run(&client, cmd, j).await?,
        Cmd::Serve | Cmd::Dev { .. } | Cmd::Certs(_) | Cmd::Status | Cmd::Bench(_) => unreachable_cmd()?,
    }
    Ok(())
}

fn reply_json(r: &corral_client::Reply) -> serde_json::Value {
    use corral_client::Reply;
    match r {
        Reply::Created { path, stat } => json!({ "created": path, "stat": stat_json(stat) }),
        Reply::Stat(Some(stat)) => json!({ "stat": stat_json(stat) }),
        Reply::Done { index } => json!({ "done": index }),
        other => json!({ "reply": format!("{other:?}") }),
    }
}

fn unreachable_cmd() -> Result<()> {
    bail!("not a client command")
}

/// Ask every node it can find (the config's endpoints and the members any node reports).
async fn status(cfg: &ClientConfig, j: bool) -> Result<()> {
    let mut addrs: Vec<String> = cfg.endpoints.clone();
    let mut rows = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let addr = addrs[i].clone();
        i += 1;
        let mut pinned = cfg.pinned(&addr);
        pinned.timeout_ms = pinned.timeout_ms.min(3_000);
        let res = match Client::new(&pinned) {
            Ok(c) => c.status().await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match res {
            Ok(s) => {
                for m in &s.members {
                    if !addrs.contains(&m.addr) {
                        addrs.push(m.addr.clone());
                    }
                }
                rows.push(Ok(s));
            }
            Err(e) => rows.push(Err((addr, format!("{e:#}")))),
        }
    }
    if j {
        for r in &rows {
            match r {
                Ok(s) => println!("{}", status_json(s)),
                Err((addr, e)) => println!("{}", json!({ "addr": addr, "error": e })),
            }
        }
    } else {
        println!(
            "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10} {:>7}  DIGEST@INDEX",
            "ID", "ADDRESS", "ROLE", "TERM", "LAST_LOG", "APPLIED", "LEADER"
        );
        for r in &rows {
            match r {
                Ok(s) => println!(
                    "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10} {:>7}  {}@{}",
                    s.id,
                    s.addr,
                    s.role,
                    s.term,
                    s.last_log_index,
                    s.applied_index,
                    s.leader.map_or("-".into(), |l| l.to_string()),
                    &s.digest[..s.digest.len().min(12)],
                    s.digest_index
                ),
                Err((addr, e)) => println!("{:<4} {:<22} unreachable: {e}", "?", addr),
            }
        }
    }
    for s in rows.iter().flatten() {
        if let Some(d) = &s.divergence {
            eprintln!("ALARM on node {}: {d}", s.id);
        }
    }
    if rows.iter().all(|r| r.is_err()) {
        bail!("no node answered");
    }
    Ok(())
}

//! The command line: `serve`, `dev`, `certs`, and client commands (`create`, `get`, ...).
//! Client commands find the cluster through `--config FILE`, then `$CORRAL_CONFIG`, then
//! `./.corral-dev/client.toml`. Every command accepts `--json`.

mod bench;
mod certs_cmd;
mod client_cmds;
mod counter_cmd;
mod dev;
mod election_cmd;
mod lock_cmd;
mod output;
mod plugin_cmd;
mod queue_cmd;
mod registry_cmd;
mod txn;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "corral", version, about = "corral: a coordination service with WebAssembly recipes")]
pub struct Cli {
    /// Client config file (default: $CORRAL_CONFIG, then ./.corral-dev/client.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Machine-readable output: one JSON object per result.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run one node (its config: --config node.toml).
    Serve,
    /// Run a local ensemble: certificates, configs and N nodes under DIR. Ctrl-C stops it.
    Dev {
        #[arg(long, default_value = ".corral-dev")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
    },
    /// Create a CA and issue node and client certificates.
    #[command(subcommand)]
    Certs(certs_cmd::CertsCmd),
    /// Bootstrap a new ensemble whose voters are ID=ADDR ... (sent to one fresh node).
    Init { members: Vec<String> },
    /// Create a node.
    Create {
        path: String,
        /// Data ("-" reads standard input).
        data: Option<String>,
        /// Owned by this command's session: gone when the command ends (see --hold).
        #[arg(long)]
        ephemeral: bool,
        /// Append a zero-padded, increasing counter to the name.
        #[arg(long)]
        sequential: bool,
        /// Deleted when its last child is deleted.
        #[arg(long)]
        container: bool,
        /// Deleted once unmodified for MS milliseconds while it has no children.
        #[arg(long, value_name = "MS")]
        ttl: Option<u64>,
        /// Keep the session (and so an ephemeral node) until Ctrl-C.
        #[arg(long)]
        hold: bool,
        /// Session timeout in ms (for --ephemeral).
        #[arg(long, default_value_t = 10_000)]
        session_timeout: u64,
    },
    /// Print a node's data.
    Get {
        path: String,
        /// Read the connected node's replica without asking the leader (may be stale).
        #[arg(long)]
        serializable: bool,
    },
    /// Set a node's data.
    Set {
        path: String,
        data: String,
        /// Only if the node is at this version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Delete a node (it must have no children).
    Delete {
        path: String,
        #[arg(long)]
        version: Option<u64>,
    },
    /// List a node's children.
    Ls {
        path: String,
        #[arg(long)]
        serializable: bool,
    },
    /// Print a node's stat.
    Stat {
        path: String,
        #[arg(long)]
        serializable: bool,
    },
    /// Stream the changes to PATH (and, with --recursive, below it) until Ctrl-C.
    Watch {
        path: String,
        #[arg(long)]
        recursive: bool,
    },
    /// Apply a list of operations (JSON, from FILE or `-` for stdin) atomically: all or none.
    Txn { file: String },
    /// Wait until the connected node has applied everything committed.
    Sync,
    /// Every node's id, address, role, term, log and applied index, and the leader.
    Status,
    /// Read or replace a node's ACL (`ID:PERMS,...`, PERMS from r w c d a; `*` is anyone).
    #[command(subcommand)]
    Acl(client_cmds::AclCmd),
    /// Change the ensemble's membership.
    #[command(subcommand)]
    Member(client_cmds::MemberCmd),
    /// Load the ensemble and report throughput and latency (see `corral bench --help`).
    Bench(bench::BenchArgs),
    /// Run a command while holding a lock (the `lock` recipe); its fencing token is in
    /// CORRAL_FENCING_TOKEN: `corral lock NAME -- CMD ARGS...`.
    Lock(lock_cmd::LockArgs),
    /// Atomic counters and sequences (the `counter` recipe).
    #[command(subcommand)]
    Counter(counter_cmd::CounterCmd),
    /// A work queue (the `queue` recipe): put, take, consume, size.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCmd),
    /// Service discovery (the `registry` recipe): register -- CMD, lookup, pick.
    #[command(subcommand)]
    Registry(registry_cmd::RegistryCmd),
    /// Leader election (the `election` recipe): campaign -- CMD, leader, observe.
    #[command(subcommand)]
    Election(election_cmd::ElectionCmd),
    /// Deploy, upgrade, remove, list, call and query WebAssembly plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCmd),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG").unwrap_or_else(|_| "warn".into());
    let serve = matches!(cli.cmd, Cmd::Serve);
    let filter = if serve && std::env::var("CORRAL_LOG").is_err() { "info".into() } else { filter };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let _ = rustls::crypto::ring::default_provider().install_default();

    // A node's config may size its runtime; a bad config is reported by `serve` itself.
    let workers = match (&cli.cmd, &cli.config) {
        (Cmd::Serve, Some(path)) => crate::config::NodeConfig::load(path).ok().and_then(|c| c.worker_threads),
        _ => None,
    };
    let rt = match runtime(workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(json, &e);
            ExitCode::FAILURE
        }
    }
}

/// The multi-threaded runtime, with `workers` threads if given (else one per core).
fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().build()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve => serve(cli.config).await,
        Cmd::Dev { dir, nodes } => dev::run(&dir, nodes, cli.json).await,
        Cmd::Certs(c) => certs_cmd::run(c, cli.json),
        cmd => client_cmds::run(cmd, cli.config, cli.json).await,
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config.ok_or_else(|| anyhow::anyhow!("serve needs --config node.toml"))?;
    let cfg = crate::config::NodeConfig::load(&path)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        s.cancel();
    });
    crate::server::run(cfg, stop, |_| {}).await
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_runtime_has_the_worker_threads_its_config_asks_for() {
        for n in [1, 3] {
            let rt = super::runtime(Some(n)).expect("runtime");
            assert_eq!(rt.metrics().num_workers(), n);
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        assert_eq!(super::runtime(None).expect("runtime").metrics().num_workers(), cores);
    }
}

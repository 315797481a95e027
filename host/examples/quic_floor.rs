//! The transport's ceiling on this machine: how many request/response round trips per second
//! QUIC with mutual TLS carries when nothing stands behind it, with corral's own TLS and
//! transport settings and `corral bench`'s shape (three server processes with one runtime
//! worker each, as `corral dev` runs its nodes; N clients in this process, each with its own
//! endpoint and connection, spread over the servers; one long-lived stream per connection, a
//! 40-byte request and a 200-byte reply, about a serializable read's sizes).
//!
//! Why: at 64 clients a serializable read keeps both cores busy, and this says how much of
//! that is the transport alone. A workload cannot go faster than this, whatever the server
//! does behind the transport.
//!
//! `cargo run --release -p corral --example quic_floor -- [CLIENTS=64] [SECONDS=5]`
//! prints ops/s and the CPU per round trip of the client process and of the servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral::certs;
use corral::net::{server_config, TlsFiles};
use corral_client::tls as ctls;
use tokio::io::AsyncBufReadExt;

const SERVERS: usize = 3;
const REQUEST: usize = 40;
const REPLY: usize = 200;
const IDLE: Duration = Duration::from_secs(5);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let dir = PathBuf::from(args.get(2).context("serve DIR")?);
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?
            .block_on(serve(&dir));
    }
    let clients: usize = args.get(1).map_or(Ok(64), |a| a.parse()).context("CLIENTS")?;
    let secs: u64 = args.get(2).map_or(Ok(5), |a| a.parse()).context("SECONDS")?;
    if clients == 0 || secs == 0 {
        bail!("CLIENTS and SECONDS must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    certs::create_ca(dir.path())?;
    let ca = certs::load_ca(dir.path())?;
    certs::issue_node(&ca, dir.path(), 1, &[])?;
    certs::issue_client(&ca, dir.path(), "floor")?;
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..SERVERS {
        // stdin stays a pipe: a server whose parent is gone reads its end and exits.
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", &dir.path().display().to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
        addrs.push(line.trim().parse::<SocketAddr>().with_context(|| format!("server said {line:?}"))?);
        children.push(child);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(load(dir.path(), &addrs, clients, Duration::from_secs(secs), &children));
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let (ops, client_cpu, server_cpu) = result?;
    let per_sec = ops as f64 / secs as f64;
    println!(
        "quic floor x{clients}: {per_sec:.0} round trips/s; CPU per round trip: client {:.1} us, servers {:.1} us",
        client_cpu.as_secs_f64() * 1e6 / ops as f64,
        server_cpu.as_secs_f64() * 1e6 / ops as f64
    );
    Ok(())
}

/// Run the clients for `time` after a second's warm-up: (round trips, client CPU, servers' CPU).
async fn load(
    dir: &Path,
    addrs: &[SocketAddr],
    clients: usize,
    time: Duration,
    children: &[std::process::Child],
) -> Result<(u64, Duration, Duration)> {
    let ca = ctls::load_certs(&dir.join("ca.pem"))?;
    let chain = ctls::load_certs(&dir.join("floor.pem"))?;
    let key = ctls::load_key(&dir.join("floor.key"))?;
    let quic = ctls::quic_client_config(&ca, chain, key.clone_key(), corral_proto::ALPN_CLIENT, IDLE)?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        let conn = endpoint.connect_with(quic.clone(), addrs[i % addrs.len()], ctls::NODE_SERVER_NAME)?.await?;
        let (mut tx, mut rx) = conn.open_bi().await?;
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let request = frame(REQUEST);
            let mut reply = vec![0u8; 4 + REPLY];
            while !stop.load(Ordering::Relaxed) {
                tx.write_all(&request).await?;
                rx.read_exact(&mut reply).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            drop((endpoint, conn));
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ops0, me0, them0) = (done.load(Ordering::Relaxed), cpu(std::process::id())?, servers_cpu(children)?);
    tokio::time::sleep(time).await;
    let (ops1, me1, them1) = (done.load(Ordering::Relaxed), cpu(std::process::id())?, servers_cpu(children)?);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((ops1 - ops0, me1.saturating_sub(me0), them1.saturating_sub(them0)))
}

/// One server: answer every 40-byte request on every stream with a 200-byte reply.
async fn serve(dir: &Path) -> Result<()> {
    let tls = TlsFiles::load(&dir.join("ca.pem"), &dir.join("node1.pem"), &dir.join("node1.key"))
        .map_err(anyhow::Error::msg)?;
    let endpoint =
        quinn::Endpoint::server(server_config(&tls, IDLE).map_err(anyhow::Error::msg)?, "127.0.0.1:0".parse()?)?;
    println!("{}", endpoint.local_addr()?);
    tokio::spawn(async {
        // The parent closing our stdin (or dying) ends this server.
        let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut String::new()).await;
        std::process::exit(0);
    });
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut tx, mut rx)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let reply = frame(REPLY);
                    let mut request = vec![0u8; 4 + REQUEST];
                    while rx.read_exact(&mut request).await.is_ok() {
                        if tx.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    Ok(())
}

/// A length-prefixed frame of `n` bytes, as corral's framing sends.
fn frame(n: usize) -> Vec<u8> {
    let mut f = (n as u32).to_be_bytes().to_vec();
    f.resize(4 + n, 7);
    f
}

fn servers_cpu(children: &[std::process::Child]) -> Result<Duration> {
    children.iter().try_fold(Duration::ZERO, |sum, c| Ok(sum + cpu(c.id())?))
}

/// User plus system time of process `pid` so far, from /proc.
fn cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').context("/proc stat")?.1.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

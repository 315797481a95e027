//! `corral dev`, the README's run command: a 3-node ensemble that prints one line when ready,
//! writes pid files and client.toml, serves the CLI, and takes its children down on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corral(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corral")).args(args).env_remove("CORRAL_CONFIG").output().expect("run corral")
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// `corral dev` in a directory of its own, stopped with its nodes when the test ends, whether
/// it passes or not.
struct Dev {
    child: std::process::Child,
    /// The ensemble's directory (inside `_tmp`).
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl Dev {
    /// The `--config` argument for a client of this ensemble.
    fn config(&self) -> String {
        self.dir.join("client.toml").to_str().expect("utf-8").to_string()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe_sigint(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// `corral dev`, once it says it is ready.
fn start_dev() -> Dev {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("ens");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["dev", "--dir", d.to_str().expect("utf-8"), "--nodes", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corral dev");
    let mut line = String::new();
    BufReader::new(dev.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    assert!(line.contains("3 nodes ready"), "{line:?}");
    Dev { child: dev, dir: d, _tmp: tmp }
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn dev_brings_up_an_ensemble_and_ctrl_c_stops_it() {
    let mut dev = start_dev();
    let (d, c) = (dev.dir.clone(), dev.config());
    let c = c.as_str();
    assert!(corral(&["--config", c, "create", "/dev-test", "hi"]).status.success());
    let got = corral(&["--config", c, "get", "/dev-test"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "hi");
    let rows = json_lines(&corral(&["--config", c, "--json", "status"]));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["role"] == "leader").count(), 1);
    // The recipes are deployed out of the box.
    let ls = json_lines(&corral(&["--config", c, "--json", "plugin", "ls"]));
    let names: Vec<String> = ls.iter().map(|p| p["name"].as_str().unwrap_or("").to_string()).collect();
    for recipe in ["lock", "rwlock", "semaphore", "multilock", "barrier", "queue", "election", "counter", "registry"] {
        assert!(names.iter().any(|n| n == recipe), "{recipe} not deployed: {names:?}");
    }
    // The nodes share one cache of compiled plugins: one artifact per recipe, none per node.
    let artifacts = std::fs::read_dir(d.join("plugin-cache")).expect("shared cache").count();
    assert_eq!(artifacts, names.len(), "{names:?}");
    assert!((1..=3).all(|k| !d.join(format!("node{k}/plugin-cache")).exists()));
    // A pid file being rewritten by a restarting node reads as none for a moment.
    let pid_of =
        |k: u64| -> Option<i32> { std::fs::read_to_string(d.join(format!("node{k}/pid"))).ok()?.trim().parse().ok() };
    assert!((1..=3).all(|k| pid_of(k).is_some_and(alive)));

    // A node killed -9 is restarted, as a supervisor would.
    let killed = pid_of(2).expect("node 2's pid");
    assert_eq!(unsafe_kill(killed, libc::SIGKILL), 0);
    let restarted = || pid_of(2).is_some_and(|p| p != killed && alive(p));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !restarted() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(restarted(), "node 2 was not restarted");
    let pids: Vec<i32> = (1..=3).map(|k| pid_of(k).expect("pid")).collect();

    // Ctrl-C.
    let rc = unsafe_sigint(dev.child.id());
    assert_eq!(rc, 0);
    let exited = dev.child.wait().expect("dev exits");
    assert!(exited.success(), "{exited:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pids.iter().all(|&p| !alive(p)), "a node outlived corral dev");
}

/// `corral bench` runs every workload against `corral dev`, the README's pair: every steady
/// workload completes operations without an error, and both failovers lose no write.
#[test]
fn bench_runs_every_workload_against_dev() {
    let mut dev = start_dev();
    let c = dev.config();
    let c = c.as_str();
    for (bad, why) in [
        ("--duration=0s", "--duration"),
        ("--runs=0", "--runs"),
        ("--clients=0", "--clients"),
        ("--connections=0", "--connections"),
    ] {
        let out = corral(&["--config", c, "bench", "--workload", "write", bad]);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{bad}: {out:?}");
    }
    let short = ["--clients", "2", "--contenders", "2", "--runs", "1", "--warmup", "200ms", "--duration", "300ms"];
    let out = corral(&[&["--config", c, "--json", "bench"][..], &short[..]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}\n{}", out.status, &stderr[stderr.len().saturating_sub(500)..]);
    let rows: Vec<_> = json_lines(&out).into_iter().filter(|r| r["summary"] == true).collect();
    let steady = ["write", "read", "read-serializable", "ping", "ephemeral", "lock", "plugin", "builtin"];
    for w in steady {
        let row = rows.iter().find(|r| r["workload"] == w).unwrap_or_else(|| panic!("no {w} row: {rows:?}"));
        assert!(row["ops"].as_u64() > Some(0), "{row}");
        assert_eq!(row["errors"], 0, "{row}\n{}", failures(&out));
        assert!(row["p50_us"].as_u64() > Some(0), "{row}");
    }
    for w in ["failover-kill", "failover-stop"] {
        let row = rows.iter().find(|r| r["workload"] == w).unwrap_or_else(|| panic!("no {w} row: {rows:?}"));
        assert_eq!(row["errors"], 0, "a write failed: {row}");
        assert!(row["unavailable_ms"].as_u64() > Some(0), "{row}");
    }
    assert_eq!(rows.len(), steady.len() + 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["connections"] == r["clients"]), "a client per connection by default: {rows:?}");
    // Clients sharing connections: several requests in flight on each, sessions shared.
    let shared = ["--workload", "read-serializable,ephemeral", "--clients", "4", "--connections", "2"];
    let out = corral(&[&["--config", c, "--json", "bench"][..], &shared[..], &short[4..]].concat());
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<_> = json_lines(&out).into_iter().filter(|r| r["summary"] == true).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!((row["clients"].as_u64(), row["connections"].as_u64()), (Some(4), Some(2)), "{row}");
        assert!(row["ops"].as_u64() > Some(0) && row["errors"] == 0, "{row}\n{}", failures(&out));
    }
    assert_eq!(unsafe_sigint(dev.child.id()), 0);
    assert!(dev.child.wait().expect("dev exits").success());
}

/// What the bench said of its failed operations (it prints the first few of each client's).
fn failures(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().filter(|l| l.starts_with("corral bench: ") && l.contains(" client ")).collect::<Vec<_>>().join("\n")
}

fn unsafe_sigint(pid: u32) -> i32 {
    unsafe_kill(pid as i32, libc::SIGINT)
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, signal: i32) -> i32 {
    // SAFETY: kill(2) on our own child or grandchild.
    unsafe { libc::kill(pid as libc::pid_t, signal) }
}

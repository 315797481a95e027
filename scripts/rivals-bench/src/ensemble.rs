//! Three local members of ZooKeeper 3.8 or etcd 3.4, started from Debian's packages with their
//! default settings, on loopback. The tool owns the processes: it can tell which one leads,
//! kill or stop it, start it again, and read every member's CPU time from /proc.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum System {
    Zookeeper,
    Etcd,
}

const MEMBERS: u16 = 3;
/// How long the ensemble must stay unchanged (all up, same leader) before a run.
const QUIET: Duration = Duration::from_secs(2);
const GIVE_UP: Duration = Duration::from_secs(90);

pub struct Ensemble {
    pub system: System,
    dir: PathBuf,
    base_port: u16,
    children: Vec<Option<Child>>,
}

impl Ensemble {
    pub fn start(system: System, dir: &Path, base_port: u16) -> Result<Ensemble> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        let mut e = Ensemble { system, dir: dir.to_path_buf(), base_port, children: Vec::new() };
        for i in 0..MEMBERS {
            e.prepare(i)?;
            e.children.push(None);
            e.spawn(i)?;
        }
        Ok(e)
    }

    /// Client addresses, one per member (host:port).
    pub fn endpoints(&self) -> Vec<String> {
        (0..MEMBERS).map(|i| format!("127.0.0.1:{}", self.client_port(i))).collect()
    }

    fn client_port(&self, i: u16) -> u16 {
        self.base_port + i
    }

    fn member_dir(&self, i: u16) -> PathBuf {
        self.dir.join(format!("m{}", i + 1))
    }

    fn prepare(&self, i: u16) -> Result<()> {
        let dir = self.member_dir(i);
        std::fs::create_dir_all(dir.join("data"))?;
        if self.system == System::Zookeeper {
            // ZooKeeper's defaults (tickTime 2000, initLimit 10, syncLimit 5, forceSync yes);
            // only what three members on one host need: their own ports, no admin server, and
            // the `srvr` command the tool asks for the leader with.
            let mut cfg = format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=srvr\n",
                dir.join("data").display(),
                self.client_port(i)
            );
            for j in 0..MEMBERS {
                cfg +=
                    &format!("server.{}=127.0.0.1:{}:{}\n", j + 1, self.base_port + 100 + j, self.base_port + 200 + j);
            }
            std::fs::write(dir.join("zoo.cfg"), cfg)?;
            std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1))?;
        }
        Ok(())
    }

    fn spawn(&mut self, i: u16) -> Result<()> {
        let dir = self.member_dir(i);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("out.log"))?;
        let mut cmd = match self.system {
            System::Zookeeper => {
                let mut c = Command::new("java");
                c.args(["-Xmx1000m", "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"])
                    .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(dir.join("zoo.cfg"));
                c
            }
            System::Etcd => {
                let peer = |j: u16| format!("http://127.0.0.1:{}", self.base_port + 100 + j);
                let cluster: Vec<String> = (0..MEMBERS).map(|j| format!("m{}={}", j + 1, peer(j))).collect();
                let client = format!("http://127.0.0.1:{}", self.client_port(i));
                let mut c = Command::new("etcd");
                c.arg("--name")
                    .arg(format!("m{}", i + 1))
                    .arg("--data-dir")
                    .arg(dir.join("data"))
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer(i), "--initial-advertise-peer-urls", &peer(i)])
                    .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-token", "rivals"])
                    .args(["--initial-cluster-state", "new"]);
                c
            }
        };
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // A member must not outlive the tool, however the tool ends (a kill -9 included).
        #[allow(unsafe_code)]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {:?} member {}", self.system, i + 1))?;
        self.children[i as usize] = Some(child);
        Ok(())
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(|c| c.id())
    }

    /// Start again every member that has exited (after a kill -9).
    pub fn restart_dead(&mut self) -> Result<()> {
        for i in 0..MEMBERS {
            let dead = match &mut self.children[i as usize] {
                Some(c) => c.try_wait()?.is_some(),
                None => true,
            };
            if dead {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// CPU milliseconds (user + system) all members have used so far.
    pub fn cpu_ms(&self) -> u64 {
        #[allow(unsafe_code)]
        // SAFETY: sysconf has no memory effects.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        (0..MEMBERS as usize)
            .filter_map(|i| self.pid(i))
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .map(|stat| {
                // Fields after the command name, which is in parentheses and may hold spaces.
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
                // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
                (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 1_000 / tick
            })
            .sum()
    }

    /// The index of the member that leads, if every member answers and exactly one leads.
    pub async fn leader(&self) -> Option<usize> {
        match self.system {
            System::Zookeeper => {
                let eps = self.endpoints();
                tokio::task::spawn_blocking(move || {
                    let modes: Vec<Option<String>> = eps.iter().map(|e| zk_mode(e)).collect();
                    if modes.iter().any(|m| m.is_none()) {
                        return None;
                    }
                    let leaders: Vec<usize> =
                        (0..modes.len()).filter(|&i| modes[i].as_deref() == Some("leader")).collect();
                    (leaders.len() == 1).then(|| leaders[0])
                })
                .await
                .ok()
                .flatten()
            }
            System::Etcd => {
                let mut leader = None;
                let mut found = None;
                for (i, ep) in self.endpoints().iter().enumerate() {
                    let opts = etcd_client::ConnectOptions::new()
                        .with_connect_timeout(Duration::from_millis(500))
                        .with_timeout(Duration::from_millis(500));
                    let mut c = etcd_client::Client::connect([format!("http://{ep}")], Some(opts)).await.ok()?;
                    let st = c.status().await.ok()?;
                    if st.leader() == 0 || leader.is_some_and(|l| l != st.leader()) {
                        return None;
                    }
                    leader = Some(st.leader());
                    if st.header().map(|h| h.member_id()) == Some(st.leader()) {
                        found = Some(i);
                    }
                }
                found
            }
        }
    }

    /// Wait until every member is up and the same member has led for [`QUIET`].
    pub async fn wait_steady(&mut self) -> Result<usize> {
        let deadline = Instant::now() + GIVE_UP;
        let mut steady: Option<(usize, Instant)> = None;
        loop {
            self.restart_dead()?;
            let now = self.leader().await;
            steady = match (now, steady) {
                (Some(l), Some((was, since))) if l == was => {
                    if since.elapsed() >= QUIET {
                        return Ok(l);
                    }
                    Some((was, since))
                }
                (Some(l), _) => Some((l, Instant::now())),
                (None, _) => None,
            };
            if Instant::now() > deadline {
                bail!(
                    "the {:?} ensemble did not settle within {GIVE_UP:?} (see {}/m*/out.log)",
                    self.system,
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            // A stopped member must be continued for SIGKILL's exit to be reaped promptly.
            signal(c.id(), libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// ZooKeeper's `srvr` answer's mode (leader, follower, standalone), if the member answers.
fn zk_mode(endpoint: &str) -> Option<String> {
    let addr = endpoint.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
}

#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with a plain pid and a valid signal number; no memory is shared.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

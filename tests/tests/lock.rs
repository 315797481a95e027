//! The `lock` recipe on a 3-node ensemble of real processes: 16 clients × 200 acquisitions of
//! one lock while lock-holding processes (`corral lock NAME -- CMD`) are killed -9 and the
//! leader is killed, at seeded moments. A fenced resource checks every grant: never two
//! holders at once, tokens strictly increasing. Waiters are served in the order they queued
//! (FIFO), and every client gets all its turns.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::DeployOptions;
use corral_tests::{eventually, plugin_wasm, Cluster, NodeOpts};

const CLIENTS: u64 = 16;
const TURNS: u64 = 200;
const KILLED_HOLDERS: u64 = 4;
const LEADER_KILLS: u64 = 2;

/// What the lock protects: refuses stale tokens, and sees any overlap of holders.
#[derive(Default)]
struct Resource {
    last: u64,
    holder: Option<u64>,
    violations: Vec<String>,
    grants: u64,
}

impl Resource {
    fn enter(&mut self, who: u64, token: u64) {
        if token <= self.last {
            self.violations.push(format!("{who} got token {token} after {}", self.last));
        }
        if let Some(h) = self.holder {
            self.violations.push(format!("{who} entered (token {token}) while {h} held the lock"));
        }
        self.last = token;
        self.holder = Some(who);
        self.grants += 1;
    }

    fn leave(&mut self, who: u64) {
        if self.holder == Some(who) {
            self.holder = None;
        }
    }
}

/// xorshift64*: the test's only randomness, from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_with_fencing_while_holders_and_the_leader_die() -> anyhow::Result<()> {
    let seed: u64 = std::env::var("CORRAL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    println!("seed {seed} (CORRAL_SEED to replay)");
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.plugin_deploy("lock", plugin_wasm("lock"), DeployOptions::default()).await?;
    let resource = Arc::new(Mutex::new(Resource::default()));
    // (queued at, token) of every grant that waited in the queue.
    let queued: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();

    let mut workers = Vec::new();
    for who in 0..CLIENTS {
        let client = c.client()?;
        let (resource, queued) = (resource.clone(), queued.clone());
        let mut rng = Rng(seed.wrapping_add(who).wrapping_mul(0x9E3779B97F4A7C15) | 1);
        workers.push(tokio::spawn(async move {
            let mut turns = 0;
            client.start_session(3_000).await?;
            while turns < TURNS {
                let guard = match client.lock("L").acquire().await {
                    Ok(g) => g,
                    Err(_) => {
                        // The outcome is unknown (a failover ate the reply): give up this
                        // session and whatever it may hold, and start afresh.
                        let _ = client.close_session().await;
                        client.start_session(3_000).await?;
                        continue;
                    }
                };
                resource.lock().unwrap().enter(who, guard.token());
                if let Some(at) = guard.queued_at() {
                    queued.lock().unwrap().push((at, guard.token()));
                }
                tokio::time::sleep(Duration::from_millis(rng.next(3))).await;
                resource.lock().unwrap().leave(who);
                turns += 1;
                if guard.release().await.is_err() {
                    // Maybe still held by this session: end the session to be sure.
                    let _ = client.close_session().await;
                    client.start_session(3_000).await?;
                }
            }
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }

    // Holders in other processes, killed while they hold the lock.
    let dir = tempfile::tempdir()?;
    let mut rng = Rng(seed | 1);
    for k in 0..KILLED_HOLDERS {
        tokio::time::sleep(Duration::from_millis(500 + rng.next(2_000))).await;
        let token_file = dir.path().join(format!("holder{k}"));
        let script = format!("echo $CORRAL_FENCING_TOKEN > {}.tmp && mv {0}.tmp {0} && sleep 60", token_file.display());
        let mut holder = c
            .cli()?
            .args(["lock", "L", "--session-timeout", "1000", "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        eventually(Duration::from_secs(60), "the holder process to get the lock", || async { token_file.exists() })
            .await?;
        let token: u64 = std::fs::read_to_string(&token_file)?.trim().parse()?;
        let who = 1_000 + k;
        resource.lock().unwrap().enter(who, token);
        holder.kill()?;
        let _ = holder.wait();
        resource.lock().unwrap().leave(who);
        if k < LEADER_KILLS {
            tokio::time::sleep(Duration::from_millis(rng.next(1_000))).await;
            let leader = c.wait_leader(Duration::from_secs(10)).await?;
            c.kill(leader);
            c.wait_leader(Duration::from_secs(10)).await?;
            c.restart(leader).await?;
        }
    }

    for w in workers {
        tokio::time::timeout(Duration::from_secs(600), w).await???;
    }
    let r = resource.lock().unwrap();
    assert!(r.violations.is_empty(), "mutual exclusion violated: {:?}", r.violations);
    assert_eq!(r.grants, CLIENTS * TURNS + KILLED_HOLDERS, "every turn was served");
    let mut queued = queued.lock().unwrap().clone();
    queued.sort();
    assert!(queued.len() as u64 > CLIENTS * TURNS / 2, "the lock was contended ({} waited)", queued.len());
    for pair in queued.windows(2) {
        // Each acquisition has a position of its own, even when several share a log entry,
        // so the queue order is total and the check below is strict.
        assert!(pair[0].0 < pair[1].0, "two acquisitions queued at one position: {pair:?}");
        assert!(
            pair[0].1 < pair[1].1,
            "served out of FIFO order: queued at {} got {}, queued at {} got {}",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1
        );
    }
    println!("{} grants, {} after waiting in the queue, all in FIFO order", r.grants, queued.len());
    Ok(())
}

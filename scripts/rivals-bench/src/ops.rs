//! One client connection to either system and the operations of each workload, done the way
//! an application of that system would do them (and as `corral bench` does them on corral):
//!
//! | workload | ZooKeeper | etcd |
//! |---|---|---|
//! | write | setData of 100 bytes (create if missing), each client on its own 100 nodes | put of 100 bytes, each client on its own 100 keys |
//! | read | sync + getData | range (linearizable, the default) |
//! | read-serializable | getData from the member connected to | range with serializable |
//! | ephemeral | create ephemeral sequential + delete | put with the client's lease + delete |
//! | lock | the recipe of ZooKeeper's documentation: ephemeral sequential child, wait for the predecessor's deletion; release = delete | the v3lock service's Lock with the client's lease; release = Unlock |

use std::time::Duration;

use anyhow::{bail, Result};
use etcd_client::{GetOptions, LockOptions, PutOptions};
use zookeeper_client as zk;

use crate::ensemble::System;
use crate::Workload;

pub enum Conn {
    Zk(zk::Client),
    Etcd { client: Box<etcd_client::Client>, lease: i64 },
}

const VALUE: [u8; 100] = [b'v'; 100];

impl Conn {
    /// A client of `endpoints` (host:port); its session or lease lives at least `life`.
    pub async fn connect(
        system: System,
        endpoints: &[String],
        life: Duration,
        timeout: Option<Duration>,
    ) -> Result<Conn> {
        match system {
            System::Zookeeper => {
                let c = zk::Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(&endpoints.join(","))
                    .await?;
                Ok(Conn::Zk(c))
            }
            System::Etcd => {
                let mut opts = etcd_client::ConnectOptions::new();
                if let Some(t) = timeout {
                    opts = opts.with_timeout(t);
                }
                let urls: Vec<String> = endpoints.iter().map(|e| format!("http://{e}")).collect();
                let mut client = etcd_client::Client::connect(urls, Some(opts)).await?;
                // The lease stands in for a session: it must outlive the run without keep-alives.
                let ttl = life.as_secs().max(10) as i64 + 30;
                let lease = client.lease_grant(ttl, None).await?.id();
                Ok(Conn::Etcd { client: Box::new(client), lease })
            }
        }
    }

    /// The nodes every workload needs (idempotent).
    pub async fn prepare(&mut self) -> Result<()> {
        match self {
            Conn::Zk(c) => {
                for p in ["/bench", "/bench/eph", "/bench/lock"] {
                    match c.create(p, &VALUE, &persistent()).await {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                c.set_data("/bench", &VALUE, None).await?;
            }
            Conn::Etcd { client, .. } => {
                client.put("/bench", VALUE.to_vec(), None).await?;
            }
        }
        Ok(())
    }

    pub async fn op(&mut self, w: Workload, client: usize, k: u64) -> Result<()> {
        match self {
            Conn::Zk(c) => zk_op(c, w, client, k).await,
            Conn::Etcd { client: c, lease } => etcd_op(c, *lease, w, client, k).await,
        }
    }

    /// Whether the client can never succeed again (a ZooKeeper session that expired while the
    /// ensemble had no leader): an application then starts a new session.
    pub fn is_dead(&self) -> bool {
        match self {
            Conn::Zk(c) => c.state().is_terminated(),
            Conn::Etcd { .. } => false,
        }
    }

    /// Let the session go (ZooKeeper's ephemeral nodes, etcd's lease).
    pub async fn close(self) {
        match self {
            Conn::Zk(c) => drop(c),
            Conn::Etcd { mut client, lease } => {
                let _ = client.lease_revoke(lease).await;
            }
        }
    }
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn zk_op(c: &zk::Client, w: Workload, client: usize, k: u64) -> Result<()> {
    match w {
        Workload::Write => {
            let path = format!("/bench/w{client}-{}", k % 100);
            match c.set_data(&path, &VALUE, None).await {
                Err(zk::Error::NoNode) => {
                    c.create(&path, &VALUE, &persistent()).await?;
                }
                r => {
                    r?;
                }
            }
        }
        Workload::Read => {
            c.sync("/bench").await?;
            c.get_data("/bench").await?;
        }
        Workload::ReadSerializable => {
            c.get_data("/bench").await?;
        }
        Workload::Ephemeral => {
            let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
            let (_, seq) = c.create("/bench/eph/e-", b"", &mode).await?;
            c.delete(&format!("/bench/eph/e-{seq}"), None).await?;
        }
        Workload::Lock => {
            let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
            let (_, seq) = c.create("/bench/lock/l-", b"", &mode).await?;
            let mine = format!("l-{seq}");
            loop {
                let mut children = c.list_children("/bench/lock").await?;
                children.sort();
                let Some(at) = children.iter().position(|n| *n == mine) else {
                    bail!("lost our lock node {mine}");
                };
                if at == 0 {
                    break;
                }
                // Watch only the predecessor: no herd when the holder releases.
                let before = format!("/bench/lock/{}", children[at - 1]);
                if let (Some(_), watcher) = c.check_and_watch_stat(&before).await? {
                    watcher.changed().await;
                }
            }
            c.delete(&format!("/bench/lock/{mine}"), None).await?;
        }
    }
    Ok(())
}

async fn etcd_op(c: &mut etcd_client::Client, lease: i64, w: Workload, client: usize, k: u64) -> Result<()> {
    match w {
        Workload::Write => {
            c.put(format!("/bench/w{client}-{}", k % 100), VALUE.to_vec(), None).await?;
        }
        Workload::Read => {
            c.get("/bench", None).await?;
        }
        Workload::ReadSerializable => {
            c.get("/bench", Some(GetOptions::new().with_serializable())).await?;
        }
        Workload::Ephemeral => {
            let key = format!("/bench/eph/{client}-{k}");
            c.put(key.clone(), "", Some(PutOptions::new().with_lease(lease))).await?;
            c.delete(key, None).await?;
        }
        Workload::Lock => {
            let held = c.lock("/bench/lock", Some(LockOptions::new().with_lease(lease))).await?;
            c.unlock(held.key().to_vec()).await?;
        }
    }
    Ok(())
}

//! Reads. Linearizable (default): learn the leader's read index (ReadIndex: the leader
//! confirms with a quorum that it still leads), wait until this replica has applied it, then
//! read locally. Serializable: read locally at once.

use std::time::{Duration, Instant};

use corral_proto::{Consistency, Error, Reply, WatchSpec};

use super::{store_err, Api, Ctx};

impl Api {
    pub(super) async fn get(
        &self,
        path: &str,
        c: Consistency,
        ctx: &Ctx,
        w: Option<WatchSpec>,
    ) -> Result<Reply, Error> {
        self.barrier(c).await?;
        self.check_read(&ctx.identity, path)?;
        let (data, stat) = self.read_watched(ctx, w, || self.state.get(path))?.map_err(store_err)??;
        Ok(Reply::Data { data, stat })
    }

    pub(super) async fn exists(
        &self,
        path: &str,
        c: Consistency,
        ctx: &Ctx,
        w: Option<WatchSpec>,
    ) -> Result<Reply, Error> {
        self.barrier(c).await?;
        match self.read_watched(ctx, w, || self.state.get(path))?.map_err(store_err)? {
            Ok((_, stat)) => Ok(Reply::Stat(Some(stat))),
            Err(Error::NoNode { .. }) => Ok(Reply::Stat(None)),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn children(
        &self,
        path: &str,
        c: Consistency,
        ctx: &Ctx,
        w: Option<WatchSpec>,
    ) -> Result<Reply, Error> {
        self.barrier(c).await?;
        self.check_read(&ctx.identity, path)?;
        Ok(Reply::Children(self.read_watched(ctx, w, || self.state.children(path))?.map_err(store_err)??))
    }

    pub(super) async fn sync(&self) -> Result<Reply, Error> {
        let index = self.barrier(Consistency::Linearizable).await?;
        Ok(Reply::Done { index })
    }

    /// Wait until this replica has applied `index` (bounded by the request timeout).
    pub(super) async fn wait_applied(&self, index: u64) -> Result<(), Error> {
        self.applied_at_least(index, self.timeout, "the client's last seen index")
            .await
            .map_err(|e| Error::unavailable(format!("this node has not reached index {index}: {e}")))
    }

    /// Wait up to `within` until this replica has applied `index`. Usually it already has,
    /// and then openraft's wait (which clones the metrics and formats `why`) is skipped.
    async fn applied_at_least(&self, index: u64, within: Duration, why: &str) -> Result<(), String> {
        if self.applied_index() >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(within))
            .applied_index_at_least(Some(index), why)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The index this replica has applied.
    pub fn applied_index(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |l| l.index)
    }

    pub(super) async fn linearizable(&self) -> Result<u64, Error> {
        self.barrier(Consistency::Linearizable).await
    }

    /// Make the local replica at least as fresh as `c` requires; returns the index reached.
    pub(super) async fn barrier(&self, c: Consistency) -> Result<u64, Error> {
        if c == Consistency::Serializable || self.stale_reads {
            return Ok(self.applied_index());
        }
        let deadline = Instant::now() + self.timeout;
        let index = self.read_index(deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        self.applied_at_least(index, left, "linearizable read")
            .await
            .map_err(|e| Error::unavailable(format!("replica did not catch up: {e}")))?;
        Ok(index)
    }

    /// The index a linearizable read must wait for, from the leader.
    async fn read_index(&self, deadline: Instant) -> Result<u64, Error> {
        loop {
            let Some(leader) = self.wait_for_leader(deadline).await else {
                return Err(Error::NotLeader { leader: None });
            };
            if leader == self.id {
                match self.leader_read_index().await {
                    Ok(i) => return Ok(i),
                    Err(Error::NotLeader { .. }) => {}
                    Err(e) => return Err(e),
                }
            } else if let Some(addr) = self.node_addr(leader) {
                let res = tokio::select! {
                    r = self.read_rounds.forwarded(leader, addr) => Some(r),
                    _ = self.leader_moved_from(leader) => None,
                };
                match res {
                    Some(Ok(i)) => return Ok(i),
                    None | Some(Err(Error::NotLeader { .. })) => {}
                    Some(Err(e)) => return Err(e),
                }
            }
            self.wait_leader_change(Some(leader), deadline).await;
            if Instant::now() >= deadline {
                return Err(Error::NotLeader { leader: None });
            }
        }
    }

    /// On the leader: confirm leadership with a quorum and return the index to read at.
    ///
    /// openraft's read log id is the leader's commit index, and a leader that restarts keeps
    /// its term and restores that index from storage, where it may lag what was committed
    /// before the crash (found by the power-loss test: a read missed an acknowledged write).
    /// Every committed entry is in the leader's log (Leader Completeness), so reading at the
    /// leader's last log index is always safe; it only waits for in-flight entries to commit.
    pub async fn leader_read_index(&self) -> Result<u64, Error> {
        self.read_rounds.local().await
    }
}

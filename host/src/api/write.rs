//! Writes: checked here (cheap, before anything is proposed), then routed to the leader, which
//! "preps" the command (stamps its clock) and proposes it.

use corral_proto::{path, Error, Reply, Request};

use super::Api;
use crate::state::{Command, Op};

impl Api {
    pub(super) async fn write(&self, req: Request, forwarded: bool) -> Result<Reply, Error> {
        self.to_op(&req)?;
        self.route(req, forwarded).await
    }

    /// The state-machine operation for a write request, or why it is refused.
    pub(super) fn to_op(&self, req: &Request) -> Result<Op, Error> {
        let (p, data) = match req {
            Request::Create { path, data } | Request::Set { path, data, .. } => (path, Some(data)),
            Request::Delete { path, .. } => (path, None),
            other => return Err(Error::bad_request(format!("{other:?} is not a write"))),
        };
        path::validate(p).map_err(|reason| Error::InvalidPath { path: p.clone(), reason: reason.into() })?;
        if let Some(d) = data {
            if d.len() > self.limits.max_data_bytes {
                return Err(Error::TooLarge {
                    what: format!("data for {p}"),
                    size: d.len(),
                    max: self.limits.max_data_bytes,
                });
            }
        }
        Ok(match req.clone() {
            Request::Create { path, data } => Op::Create { path, data },
            Request::Set { path, data, version } => Op::Set { path, data, version },
            Request::Delete { path, version } => Op::Delete { path, version },
            _ => unreachable_op(),
        })
    }

    /// On the leader: stamp the command and propose it.
    pub(super) async fn propose(&self, op: Op) -> Result<Reply, super::route::Step> {
        let cmd = Command { ts_ms: now_ms(), op };
        match self.raft.client_write(cmd).await {
            Ok(resp) => resp.data.map_err(super::route::Step::Done),
            Err(e) => Err(super::route::Step::from_write_error(e)),
        }
    }
}

fn unreachable_op() -> Op {
    // `to_op` matched the same variants above; keep the compiler happy without a panic.
    Op::Delete { path: "/".into(), version: Some(u64::MAX) }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

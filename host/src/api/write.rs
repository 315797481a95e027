//! Writes: checked here (cheap, before anything is proposed), then routed to the leader, which
//! "preps" the command (stamps its clock) and proposes it.

use corral_proto::{path, Error, MultiOp, Reply, Request};

use super::route::Step;
use super::{Api, Ctx};
use crate::state::{Command, Op, TreeLimits};

impl Api {
    pub(super) async fn write(&self, req: Request, ctx: Ctx, forwarded: bool) -> Result<Reply, Error> {
        if is_plugin_write(&req) {
            // Compiling is for the leader, once.
            self.precheck_plugin(&req)?;
        } else {
            self.to_op(&req)?;
        }
        self.route(req, ctx, forwarded).await
    }

    fn check_path(&self, p: &str) -> Result<(), Error> {
        path::validate(p).map_err(|reason| Error::InvalidPath { path: p.into(), reason: reason.into() })
    }

    fn check_data(&self, p: &str, d: &[u8]) -> Result<(), Error> {
        if d.len() > self.limits.max_data_bytes {
            return Err(Error::TooLarge {
                what: format!("data for {p}"),
                size: d.len(),
                max: self.limits.max_data_bytes,
            });
        }
        Ok(())
    }

    /// The state-machine operation for a write request, or why it is refused (before anything
    /// is proposed).
    pub(super) fn to_op(&self, req: &Request) -> Result<Op, Error> {
        if is_plugin_write(req) {
            return self.plugin_op(req);
        }
        Ok(match req.clone() {
            Request::Create { path, data, mode } => {
                self.check_path(&path)?;
                self.check_data(&path, &data)?;
                Op::Create { path, data, mode }
            }
            Request::Set { path, data, version } => {
                self.check_path(&path)?;
                self.check_data(&path, &data)?;
                Op::Set { path, data, version }
            }
            Request::Delete { path, version } => {
                self.check_path(&path)?;
                Op::Delete { path, version }
            }
            Request::Multi { ops } => {
                for op in &ops {
                    match op {
                        MultiOp::Check { path, .. } | MultiOp::Delete { path, .. } => self.check_path(path)?,
                        MultiOp::Create { path, data, .. } | MultiOp::Set { path, data, .. } => {
                            self.check_path(path)?;
                            self.check_data(path, data)?;
                        }
                    }
                }
                Op::Multi { ops }
            }
            Request::CreateSession { timeout_ms } => {
                let mut secret = vec![0u8; 16];
                getrandom::getrandom(&mut secret).map_err(Error::internal)?;
                Op::CreateSession { timeout_ms: self.sessions.clamp(timeout_ms), secret }
            }
            Request::CloseSession => Op::CloseSession,
            Request::SetAcl { path, acl } => {
                self.check_path(&path)?;
                if acl.is_empty() {
                    return Err(Error::bad_request("an ACL needs at least one entry"));
                }
                Op::SetAcl { path, acl }
            }
            other => return Err(Error::bad_request(format!("{other:?} is not a write"))),
        })
    }

    /// On the leader: stamp the command and propose it.
    pub(super) async fn propose(&self, op: Op, ctx: Ctx) -> Result<Reply, Step> {
        let limits = TreeLimits { max_children: self.limits.max_children, max_nodes: self.limits.max_nodes };
        let (term, applied_term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_term, m.last_applied.map(|l| l.leader_id.term))
        };
        let cmd = Command {
            ts_ms: self.state.leader_now_ms(term, applied_term),
            session: ctx.session,
            req: ctx.req,
            done_below: ctx.done_below,
            limits,
            admin: self.is_admin(&ctx.identity),
            identity: ctx.identity,
            default_acl: self.acl.default.clone(),
            op,
        };
        if cmd.op.batchable() {
            self.batcher.propose(cmd).await
        } else {
            super::batch::write_one(&self.raft, cmd).await
        }
    }
}

fn is_plugin_write(req: &Request) -> bool {
    matches!(
        req,
        Request::PluginDeploy { .. }
            | Request::PluginUpgrade { .. }
            | Request::PluginRemove { .. }
            | Request::PluginCall { .. }
            | Request::AckNotifications { .. }
    )
}

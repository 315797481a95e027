//! Client requests: validate → route to the leader (propose, or forward) → reply; reads wait
//! for the local replica to be fresh enough, then read it.
//!
//! Error contract with clients: `NotLeader` means *nothing was done* and the request may be
//! sent again; `Unavailable` after a forward means the outcome is unknown.

mod acl;
mod admin;
mod batch;
mod divergence;
mod forward;
mod linger;
mod plugins;
mod read;
mod read_rounds;
mod route;
mod session;
mod watches;
mod write;

use std::sync::Arc;
use std::time::Duration;

use corral_proto::{Error, Reply, Request, Response, WatchKind, WatchSpec};

use serde::{Deserialize, Serialize};

use crate::config::{AclConfig, Limits};
use crate::net::PeerPool;
use crate::raft::Raft;
use crate::session::Sessions;
use crate::state::State;
use crate::watch::WatchHub;
pub use batch::Batcher;
pub use divergence::run as divergence_check;
pub use forward::Forwarder;
pub use read_rounds::ReadRounds;

/// Who is asking: the session the connection is bound to (0: none) and the request's id in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ctx {
    /// The client's identity, from its certificate.
    pub identity: String,
    pub session: u64,
    pub req: u64,
    pub done_below: u64,
    /// The highest index the client has seen: reads wait until this replica has applied it.
    pub min_index: u64,
}

pub struct Api {
    pub id: u64,
    pub raft: Raft,
    pub state: State,
    pub pool: Arc<PeerPool>,
    pub limits: Limits,
    pub sessions: Arc<Sessions>,
    pub watches: Arc<WatchHub>,
    pub plugins: Arc<crate::plugin::Plugins>,
    pub acl: AclConfig,
    /// Test-only: the deliberate stale-read bug (`[test] stale_reads`).
    pub stale_reads: bool,
    /// How long one request may wait for a leader, a quorum or the local replica.
    pub timeout: Duration,
    /// The last divergence this node found between its state and another replica's.
    pub divergence: std::sync::Mutex<Option<String>>,
    /// Groups concurrent tree writes into one log entry.
    pub batcher: Batcher,
    /// Sends requests for the leader in groups (on a follower).
    pub forwarder: Forwarder,
    /// Serves concurrent linearizable reads with one leadership check.
    pub read_rounds: ReadRounds,
}

impl Api {
    /// Handle one client request. `forwarded`: it came from a follower, so it is not forwarded
    /// again (a stale leader answers `NotLeader` and the follower retries).
    pub async fn handle(&self, req: Request, ctx: Ctx, forwarded: bool) -> Response {
        self.sessions.touch(ctx.session);
        let reads_here = matches!(
            req,
            Request::Get { .. }
                | Request::Exists { .. }
                | Request::Children { .. }
                | Request::AttachSession { .. }
                | Request::Ping
                | Request::AddWatch { .. }
                | Request::Notifications { .. }
        );
        if reads_here && ctx.min_index > 0 {
            if let Err(e) = self.wait_applied(ctx.min_index).await {
                return Response::Err(e);
            }
        }
        let res = match req {
            Request::Create { .. }
            | Request::Set { .. }
            | Request::Delete { .. }
            | Request::Multi { .. }
            | Request::SetAcl { .. }
            | Request::PluginDeploy { .. }
            | Request::PluginUpgrade { .. }
            | Request::PluginRemove { .. }
            | Request::PluginCall { .. } => self.write(req, ctx, forwarded).await,
            Request::AckNotifications { .. } if ctx.session == 0 => Err(Error::NoSession),
            Request::AckNotifications { .. } => self.write(req, ctx, forwarded).await,
            Request::PluginList { consistency } => self.plugin_list(consistency).await,
            Request::PluginQuery { name, input, consistency } => {
                self.plugin_query(&name, &input, consistency, &ctx).await
            }
            Request::Notifications { after, wait_ms } => self.notifications(&ctx, after, wait_ms).await,
            Request::GetAcl { path } => self.get_acl(&ctx, &path).await,
            Request::CreateSession { .. } => self.route(req, ctx, forwarded).await,
            Request::CloseSession if ctx.session == 0 => Err(Error::NoSession),
            Request::CloseSession => self.route(req, ctx, forwarded).await,
            Request::AttachSession { id, secret } => self.attach(id, &secret).await,
            Request::Ping => self.ping(ctx.session).await,
            Request::Get { path, consistency, watch } => {
                let w = watch.then(|| WatchSpec::new(&path, WatchKind::Data));
                self.get(&path, consistency, &ctx, w).await
            }
            Request::Exists { path, consistency, watch } => {
                let w = watch.then(|| WatchSpec::new(&path, WatchKind::Exists));
                self.exists(&path, consistency, &ctx, w).await
            }
            Request::Children { path, consistency, watch } => {
                let w = watch.then(|| WatchSpec::new(&path, WatchKind::Children));
                self.children(&path, consistency, &ctx, w).await
            }
            Request::AddWatch { spec } => self.add_watch(&ctx, spec),
            Request::Events { .. } => Err(Error::bad_request("an event stream is opened on its own stream")),
            Request::Multiplex { .. } => {
                Err(Error::bad_request("Multiplex is only valid as the first frame of a stream"))
            }
            Request::Sync => self.sync().await,
            Request::Status => Ok(Reply::Status(self.status())),
            Request::Initialize { members } => self.initialize(members).await,
            Request::MemberAdd { .. } | Request::MemberPromote { .. } | Request::MemberRemove { .. } => {
                self.route(req, ctx, forwarded).await
            }
        };
        match res {
            Ok(r) => Response::Ok(r),
            Err(e) => Response::Err(e),
        }
    }
}

pub(crate) fn store_err(e: crate::state::StoreError) -> Error {
    Error::internal(e)
}

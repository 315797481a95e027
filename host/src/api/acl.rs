//! ACL checks at the serving node (reads, watch events) and the ACL requests. Writes are
//! checked in apply, against the identity, admin flag and default ACL the leader stamps into
//! the command.

use corral_proto::{acl, Error, Event, EventKind, Reply};

use super::{store_err, Api, Ctx};
use crate::state::effective_acl_of;

impl Api {
    pub(super) fn is_admin(&self, identity: &str) -> bool {
        self.acl.admins.iter().any(|a| a == identity)
    }

    /// Whether `identity` may read `path` on this replica (a missing node: yes, the read will
    /// say it does not exist).
    pub(super) fn may_read(&self, identity: &str, path: &str) -> Result<bool, Error> {
        if self.is_admin(identity) {
            return Ok(true);
        }
        Ok(match self.state.acl_of(path).map_err(store_err)? {
            Some(own) => acl::allows(effective_acl_of(&own, &self.acl.default), identity, acl::READ),
            None => true,
        })
    }

    pub(super) fn check_read(&self, identity: &str, path: &str) -> Result<(), Error> {
        if self.may_read(identity, path)? {
            return Ok(());
        }
        Err(Error::NoAuth { path: path.into(), identity: identity.into(), what: "read".into() })
    }

    /// Whether an event may be delivered to `identity`: it must be able to read the node (a
    /// deleted node: its parent) now.
    pub(super) fn may_see(&self, identity: &str, ev: &Event) -> bool {
        let path = match ev.kind {
            EventKind::Deleted => corral_proto::path::parent(&ev.path),
            _ => ev.path.as_str(),
        };
        self.may_read(identity, path).unwrap_or(false)
    }

    pub(super) async fn get_acl(&self, ctx: &Ctx, path: &str) -> Result<Reply, Error> {
        self.linearizable().await?;
        self.check_read(&ctx.identity, path)?;
        match self.state.acl_of(path).map_err(store_err)? {
            Some(own) => Ok(Reply::Acl(effective_acl_of(&own, &self.acl.default).to_vec())),
            None => Err(Error::NoNode { path: path.into() }),
        }
    }
}

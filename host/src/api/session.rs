//! Binding a connection to a session, and heartbeats. Both look the session up on this
//! replica; if it is not there, the replica may just be behind (the session was created a
//! moment ago through another node), so it is made linearizable and asked again.

use corral_proto::{Error, Reply};

use super::{store_err, Api};
use crate::state::StoreError;

impl Api {
    pub(super) async fn attach(&self, id: u64, secret: &[u8]) -> Result<Reply, Error> {
        let timeout = self.fresh(|| self.state.verify_session(id, secret)).await?;
        let timeout_ms = timeout.ok_or(Error::SessionExpired { id })?;
        self.sessions.touch(id);
        Ok(Reply::Session { id, secret: secret.to_vec(), timeout_ms })
    }

    pub(super) async fn ping(&self, session: u64) -> Result<Reply, Error> {
        if session == 0 {
            return Err(Error::NoSession);
        }
        let live = self.fresh(|| Ok(self.state.session_exists(session)?.then_some(()))).await?;
        live.ok_or(Error::SessionExpired { id: session })?;
        Ok(Reply::Done { index: self.applied_index() })
    }

    /// `look` on this replica; if it finds nothing, again after a linearizable barrier.
    async fn fresh<T>(&self, look: impl Fn() -> Result<Option<T>, StoreError>) -> Result<Option<T>, Error> {
        if let Some(found) = look().map_err(store_err)? {
            return Ok(Some(found));
        }
        self.linearizable().await?;
        look().map_err(store_err)
    }
}

//! One client connection: each bidirectional stream carries one request and its reply. A
//! malformed request gets an error reply on its stream; the connection and the node go on.

use std::sync::Arc;

use anyhow::Result;
use corral_proto::{Error, RequestFrame, Response};
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::net::identity_of;

pub async fn serve(conn: quinn::Connection, api: Arc<Api>, stop: CancellationToken) -> Result<()> {
    let who = identity_of(&conn).map(|i| i.to_string()).unwrap_or_else(|e| format!("unknown ({e})"));
    tracing::debug!(client = %who, remote = %conn.remote_address(), "client connected");
    super::streams::serve(&conn, &stop, move |req: Result<RequestFrame, _>| {
        let api = api.clone();
        async move {
            match req {
                Ok(req) => api.handle(req.body, false).await,
                Err(e) => Response::Err(Error::bad_request(format!("malformed request: {e}"))),
            }
        }
    })
    .await
}

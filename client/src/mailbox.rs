//! The session's notifications from plugins, fanned out to whoever listens in this process
//! (a lock waiting for its grant, an election candidate, ...). One task reads the mailbox with
//! long polls on whichever node the client is connected to, hands each notification to every
//! listener, then acknowledges it; after a reconnection it resumes from the last position it
//! handled, so a notification is delivered once per listener, none lost.
//!
//! Listen before sending the request whose outcome may come as a notification: one that
//! arrives before you listen is not kept for you.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use corral_proto::Notification;
use tokio::sync::mpsc;

use crate::client::Inner;
use crate::{Client, ClientError, ServerError};

/// How long one read of the mailbox waits on the server for something to arrive.
const LONG_POLL_MS: u64 = 20_000;

#[derive(Default)]
pub(crate) struct Mailbox {
    listeners: Mutex<Vec<mpsc::UnboundedSender<Notification>>>,
    reading: AtomicBool,
}

impl Client {
    /// Every notification the session receives from now on. Needs a session.
    pub fn listen(&self) -> Result<mpsc::UnboundedReceiver<Notification>, ClientError> {
        if self.session_id().is_none() {
            return Err(ClientError::Server(ServerError::NoSession));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.mailbox.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        if !self.inner.mailbox.reading.swap(true, Ordering::SeqCst) {
            tokio::spawn(read_mailbox(std::sync::Arc::downgrade(&self.inner)));
        }
        Ok(rx)
    }
}

async fn read_mailbox(weak: Weak<Inner>) {
    let mut after = (0, 0);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        match client.notifications(after, LONG_POLL_MS).await {
            Ok(notes) => {
                let Some(last) = notes.last().map(|n| n.pos) else { continue };
                {
                    let mut ls = client.inner.mailbox.listeners.lock().unwrap_or_else(|p| p.into_inner());
                    for n in notes {
                        ls.retain(|l| l.send(n.clone()).is_ok());
                    }
                }
                after = last;
                // Best effort: an unacknowledged notification is only read again (and skipped,
                // being at or before `after`).
                let _ = client.ack_notifications(after).await;
            }
            Err(ClientError::Server(ServerError::SessionExpired { .. } | ServerError::NoSession)) => {
                client.inner.mailbox.reading.store(false, Ordering::SeqCst);
                client.inner.mailbox.listeners.lock().unwrap_or_else(|p| p.into_inner()).clear();
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

//! The session's notifications from plugins, fanned out to whoever listens in this process
//! (a lock waiting for its grant, an election candidate, ...). One task reads the mailbox with
//! long polls on whichever node the client is connected to, hands each notification to every
//! listener, then acknowledges it (a group at a time, see [`Acks`]); after a reconnection it
//! resumes from the last position it handled, so a notification is delivered once per
//! listener, none lost.
//!
//! Listen before sending the request whose outcome may come as a notification: one that
//! arrives before you listen is not kept for you.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use corral_proto::Notification;
use tokio::sync::mpsc;

use crate::client::Inner;
use crate::{Client, ClientError, ServerError};

/// How long one read of the mailbox waits on the server for something to arrive.
const LONG_POLL_MS: u64 = 20_000;
/// Acknowledge handled notifications once this many wait...
const ACK_AFTER_COUNT: usize = 32;
/// ...or once the oldest has waited this long.
const ACK_AFTER: Duration = Duration::from_millis(500);

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
    let mut acks = Acks::default();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let client = Client { inner };
        match client.notifications(after, acks.wait_ms()).await {
            Ok(notes) => {
                if let Some(last) = notes.last().map(|n| n.pos) {
                    acks.handled(notes.len());
                    let mut ls = client.inner.mailbox.listeners.lock().unwrap_or_else(|p| p.into_inner());
                    for n in notes {
                        ls.retain(|l| l.send(n.clone()).is_ok());
                    }
                    after = last;
                }
                if acks.due() {
                    // Best effort: an unacknowledged notification is only read again (and
                    // skipped, being at or before `after`).
                    let _ = client.ack_notifications(after).await;
                    acks = Acks::default();
                }
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

/// When to acknowledge what was handled. An acknowledgement is a log entry (it empties the
/// replicated mailbox), so they are grouped: one per [`ACK_AFTER_COUNT`] notifications or
/// [`ACK_AFTER`], whichever comes first. A lock handed over every few milliseconds cost an
/// entry per handover otherwise, a third of the entries of the lock benchmark. Waiting costs
/// nothing else: the next read asks only for what is after the last one handled.
#[derive(Default)]
struct Acks {
    unacked: usize,
    /// When the oldest unacknowledged notification must be acknowledged.
    by: Option<Instant>,
}

impl Acks {
    fn handled(&mut self, n: usize) {
        self.unacked += n;
        self.by.get_or_insert_with(|| Instant::now() + ACK_AFTER);
    }

    fn due(&self) -> bool {
        self.unacked >= ACK_AFTER_COUNT || self.by.is_some_and(|t| Instant::now() >= t)
    }

    /// How long the next read may wait on the server: no longer than the next acknowledgement.
    fn wait_ms(&self) -> u64 {
        self.by.map_or(LONG_POLL_MS, |t| {
            (t.saturating_duration_since(Instant::now()).as_millis() as u64).min(LONG_POLL_MS)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_wait_for_a_group_or_a_deadline() {
        let mut a = Acks::default();
        assert!(!a.due(), "nothing handled, nothing to acknowledge");
        assert_eq!(a.wait_ms(), LONG_POLL_MS);
        a.handled(1);
        assert!(!a.due());
        assert!(a.wait_ms() <= ACK_AFTER.as_millis() as u64, "the next read must return in time to acknowledge");
        a.handled(ACK_AFTER_COUNT - 1);
        assert!(a.due());
        let late = Acks { unacked: 1, by: Some(Instant::now()) };
        assert!(late.due());
        assert_eq!(late.wait_ms(), 0);
    }
}

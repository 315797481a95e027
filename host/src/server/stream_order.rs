//! The order in which a peer opened its streams on one connection, for the requests whose
//! order matters: a leader pipelines AppendEntries (a second before the first is answered, see
//! vendor/openraft/CORRAL-PATCH.md), and each stream is served on a task of its own, which the
//! runtime may run in any order (tokio runs the newest spawned task first). A second append
//! that reaches Raft before the first is refused (its previous entry is not there yet), and the
//! leader sends it again a round trip later: pipelining for nothing.
//!
//! So each accepted stream takes a [`Turn`], in the order streams are accepted (QUIC stream
//! ids, the order the peer opened them). A request that must keep its place waits for every
//! earlier turn to end before it goes on; every other request ends its turn at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The turns of one connection's streams.
pub struct StreamOrder {
    state: Mutex<State>,
    /// Every turn below this has ended.
    head: watch::Sender<u64>,
}

struct State {
    next: u64,
    /// Ended turns at or above `head` (an earlier one is still going).
    ended: BTreeSet<u64>,
}

impl StreamOrder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { next: 0, ended: BTreeSet::new() }), head: watch::Sender::new(0) })
    }

    /// The next stream's turn: take it when the stream is accepted, before reading it.
    pub fn take(self: &Arc<Self>) -> Turn {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let seq = s.next;
        s.next += 1;
        Turn { seq, order: self.clone() }
    }

    fn end(&self, seq: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut head = *self.head.borrow();
        if seq != head {
            s.ended.insert(seq);
            return;
        }
        head += 1;
        while s.ended.remove(&head) {
            head += 1;
        }
        self.head.send_replace(head);
    }
}

/// One stream's place in its connection's order; it ends when dropped.
pub struct Turn {
    seq: u64,
    order: Arc<StreamOrder>,
}

impl Turn {
    /// Wait until every stream accepted before this one has ended its turn.
    pub async fn wait(&self) {
        let mut head = self.order.head.subscribe();
        // `head` cannot pass `seq` while this turn is alive, and the sender lives in `order`.
        let _ = head.wait_for(|h| *h >= self.seq).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.order.end(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn ready(f: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        f.poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn a_turn_waits_for_every_earlier_one_and_no_later_one() {
        let order = StreamOrder::new();
        let (t0, t1, t2, t3) = (order.take(), order.take(), order.take(), order.take());
        assert!(ready(pin!(t0.wait())), "the first turn never waits");

        {
            let mut w2 = pin!(t2.wait());
            assert!(!ready(w2.as_mut()));
            drop(t3);
            assert!(!ready(w2.as_mut()), "a later turn's end let t2 go");
            drop(t1);
            assert!(!ready(w2.as_mut()), "t2 went while t0 was going");
            drop(t0);
            assert!(ready(w2.as_mut()), "t0 and t1 ended, t2 still waits");
        }
        drop(t2);
        // t3 ended before t2: the next turn goes at once.
        assert!(ready(pin!(order.take().wait())));
    }
}

//! Forwarding on a follower: client requests for the leader that arrive while earlier ones are
//! still on their way go to it together, as one `ForwardBatch` peer request.
//!
//! Why: a forwarded write cost the two nodes a peer stream, its frames and its packets of its
//! own, about 40 µs of CPU on this machine kind (write x64: 117 µs per write with clients
//! spread over the three nodes, 90 µs with all of them on the leader). One stream for a group
//! pays that once for the group.
//!
//! How: one lane per leader (id and address), each a task that takes jobs from a queue. It
//! waits for one of `IN_FLIGHT` slots, then takes everything queued (up to `MAX_REQUESTS` /
//! `MAX_BYTES`) and sends it in one exchange; a lone request goes as a plain `Forward`, so an
//! idle follower pays only a channel hop. Lanes are separate so that exchanges stuck on a dead
//! leader (until their timeout) never hold up those to its successor.
//!
//! Each request keeps its own answer, and its own error contract: nothing sent → retry
//! elsewhere; sent and no answer → outcome unknown. A waiter that gives up (its deadline, a
//! leader change) simply stops listening; its request may still run, as a lone forward could.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_proto::{Error, Request, Response};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::Ctx;
use crate::net::{PeerError, PeerPool};
use crate::raft::rpc::{PeerRequest, PeerResponse};

/// Exchanges in flight to one leader. Two keep the pipe full: one is answered while the next
/// is sent, and the leader's own group commit has the same depth.
const IN_FLIGHT: usize = 2;
/// At most this many requests in one exchange...
const MAX_REQUESTS: usize = 256;
/// ...and about this many bytes (an exchange always takes its first request).
const MAX_BYTES: usize = 1 << 20;
/// A lane with nothing to do for this long ends (a leader's lane lives while it leads).
const LANE_IDLE: Duration = Duration::from_secs(60);

type Answer = Result<Response, PeerError>;

struct Job {
    ctx: Ctx,
    req: Request,
    deadline: Instant,
    answer: oneshot::Sender<Answer>,
}

/// Where a lane sends: the leader's id and address.
type Target = (u64, String);

/// How a group reaches the leader: the peer pool, or a test's stand-in. One answer per
/// request, in order, or the exchange's error.
pub(crate) trait Link: Send + Sync + 'static {
    fn exchange(&self, to: &Target, items: Vec<(Ctx, Request)>, timeout: Duration) -> BoxFuture<'_, Exchanged>;
}

type Exchanged = Result<Vec<Response>, PeerError>;
type Lanes = Arc<Mutex<HashMap<Target, mpsc::UnboundedSender<Job>>>>;

pub struct Forwarder {
    link: Arc<dyn Link>,
    lanes: Lanes,
}

impl Forwarder {
    pub fn new(pool: Arc<PeerPool>) -> Forwarder {
        Forwarder::over(Arc::new(PoolLink(pool)))
    }

    pub(crate) fn over(link: Arc<dyn Link>) -> Forwarder {
        Forwarder { link, lanes: Default::default() }
    }

    /// Send `req` to `leader` at `addr` and wait (until `deadline`) for its answer.
    pub async fn forward(&self, leader: u64, addr: &str, ctx: Ctx, req: Request, deadline: Instant) -> Answer {
        let (answer, rx) = oneshot::channel();
        let mut job = Job { ctx, req, deadline, answer };
        // A lane that just ended for idleness refuses the job; the second try finds its sender
        // closed and makes a new one (`lane`). Only the lane itself leaves the map, so no
        // caller can remove a lane another has just made.
        for _ in 0..2 {
            match self.lane(leader, addr).send(job) {
                Ok(()) => {
                    return match tokio::time::timeout_at(deadline.into(), rx).await {
                        Ok(Ok(answer)) => answer,
                        Ok(Err(_)) => Err(PeerError::Transport(leader, "the forwarding lane stopped".into())),
                        Err(_) => Err(PeerError::Timeout(leader)),
                    };
                }
                Err(mpsc::error::SendError(back)) => job = back,
            }
        }
        Err(PeerError::Connect(leader, "no forwarding lane".into()))
    }

    fn lane(&self, leader: u64, addr: &str) -> mpsc::UnboundedSender<Job> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let target = (leader, addr.to_string());
        if let Some(tx) = lanes.get(&target) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_lane(self.link.clone(), self.lanes.clone(), target.clone(), rx));
        lanes.insert(target, tx.clone());
        tx
    }
}

async fn run_lane(link: Arc<dyn Link>, lanes: Lanes, target: Target, mut rx: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let first = match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Leave the map first, then drain: a job sent before the removal is still
                // answered, and one sent after it finds the channel closed and makes a new lane.
                let mut map = lanes.lock().unwrap_or_else(|p| p.into_inner());
                map.remove(&target);
                drop(map);
                rx.close();
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut bytes = size(&first.req);
        let mut group = vec![first];
        while group.len() < MAX_REQUESTS && bytes < MAX_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += size(&next.req);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        group.retain(|job| !job.answer.is_closed());
        if group.is_empty() {
            continue;
        }
        let (link, target) = (link.clone(), target.clone());
        tokio::spawn(async move {
            exchange(&*link, &target, group).await;
            drop(slot);
        });
    }
}

/// Send one group to the leader and hand each waiter its request's answer.
async fn exchange(link: &dyn Link, to: &Target, group: Vec<Job>) {
    let last = group.iter().map(|j| j.deadline).max().unwrap_or_else(Instant::now);
    let left = last.saturating_duration_since(Instant::now());
    let (items, answers): (Vec<(Ctx, Request)>, Vec<oneshot::Sender<Answer>>) =
        group.into_iter().map(|j| ((j.ctx, j.req), j.answer)).unzip();
    let n = items.len();
    match link.exchange(to, items, left).await {
        Ok(rs) if rs.len() == n => {
            for (answer, r) in answers.into_iter().zip(rs) {
                let _ = answer.send(Ok(r));
            }
        }
        Ok(rs) => {
            let e = Error::internal(format!("the leader answered {} of {n} forwarded requests", rs.len()));
            for answer in answers {
                let _ = answer.send(Ok(Response::Err(e.clone())));
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}

/// The real link: a lone request as a plain `Forward` (what every version of the peer protocol
/// knows), a group as one `ForwardBatch`.
struct PoolLink(Arc<PeerPool>);

impl Link for PoolLink {
    fn exchange(&self, to: &Target, mut items: Vec<(Ctx, Request)>, timeout: Duration) -> BoxFuture<'_, Exchanged> {
        let (leader, addr) = (to.0, to.1.clone());
        Box::pin(async move {
            let n = items.len();
            let req = if n == 1 {
                let (ctx, r) = items.remove(0);
                PeerRequest::Forward(ctx, r)
            } else {
                PeerRequest::ForwardBatch(items)
            };
            Ok(match self.0.call_once::<_, PeerResponse>(leader, &addr, &req, timeout).await? {
                PeerResponse::Forward(r) => vec![r],
                PeerResponse::ForwardBatch(rs) => rs,
                other => vec![unexpected(&other); n],
            })
        })
    }
}

fn unexpected(other: &PeerResponse) -> Response {
    Response::Err(Error::internal(format!("the leader answered a forward with {}", describe(other))))
}

/// A peer answer, shortly (an AppendEntries response in full would flood the log line).
fn describe(r: &PeerResponse) -> String {
    match r {
        PeerResponse::Refused(why) => format!("a refusal: {why}"),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}

/// What a request adds to an exchange, roughly: its paths and data.
fn size(req: &Request) -> usize {
    bincode::serialized_size(req).map_or(MAX_BYTES, |n| n as usize)
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;

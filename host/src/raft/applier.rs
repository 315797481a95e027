//! Where entries are applied: in place, on the runtime worker that runs openraft's state
//! machine task, or on the node's own apply thread when they may run plugin code for long
//! (`State::may_run_long`: calls expected to burn more than `state::INLINE_FUEL` in all, going
//! by what their code has burned on this node so far, or granted more than
//! `state::INLINE_BUDGET`; a deploy, an upgrade, a removal, a session's end, a timer that may
//! be due).
//!
//! Why two places: a plugin call may burn its fuel for a tenth of a second or more, a deploy
//! compiles on every replica, and one entry may hold hundreds of calls. Run on a worker, that
//! holds up every task of the worker, Raft heartbeats among them, and a node with one worker
//! (`corral dev` on 2 cores) would go silent past its election timeout. Handing every entry to
//! a thread costs two thread wake-ups per apply instead: +0.1 ms on a lone client's write
//! (measured: write x1 p50 0.65 → 0.75 ms). So entries of tree writes, bounded and quick, and
//! of calls that have been cheap stay in place; the rest cross over.
//!
//! Which place never changes a result: entries are applied one call at a time either way (the
//! state machine task waits for each), through the same function.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{ApplyResult, StorageError, TypeConfig};
use crate::state::State;

type Entry = openraft::Entry<TypeConfig>;
pub type Applied = Result<Vec<ApplyResult>, StorageError>;
type ApplyFn = fn(&State, &[Entry]) -> Applied;
type Job = (Vec<Entry>, oneshot::Sender<Applied>);

pub struct Applier {
    state: State,
    apply: ApplyFn,
    thread: mpsc::Sender<Job>,
}

impl Applier {
    /// Start the apply thread for `state`; `apply` is what both places run.
    pub fn start(state: State, apply: ApplyFn) -> std::io::Result<Applier> {
        let (thread, jobs) = mpsc::channel::<Job>();
        let st = state.clone();
        // It ends when the `Applier` is dropped (the channel closes).
        std::thread::Builder::new().name("corral-apply".into()).spawn(move || {
            while let Ok((entries, done)) = jobs.recv() {
                let _ = done.send(apply(&st, &entries));
            }
        })?;
        Ok(Applier { state, apply, thread })
    }

    pub async fn apply(&self, entries: Vec<Entry>) -> Applied {
        let cmds = entries.iter().filter_map(|e| match &e.payload {
            openraft::EntryPayload::Normal(cmd) => Some(cmd),
            _ => None,
        });
        // A store error here would recur in the apply itself: let it report it there.
        if !self.state.may_run_long(cmds).unwrap_or(true) {
            return (self.apply)(&self.state, &entries);
        }
        let (done, answer) = oneshot::channel();
        let gone = || {
            StorageError::from(openraft::StorageIOError::write_state_machine(&super::io_err(
                "the apply thread stopped",
            )))
        };
        self.thread.send((entries, done)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

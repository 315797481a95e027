//! Work that may take long on a runtime worker thread: guest code (a plugin call may burn up to
//! its fuel, a tenth of a second or more), compiling a plugin, applying a large entry,
//! installing a snapshot.
//!
//! Run in place, it would hold up every other task of that worker, Raft heartbeats among them;
//! a node with one worker thread (`corral dev` gives each node one on a 2-core machine) would
//! go silent past its election timeout and set off the spurious elections a coordination
//! service must not have.

/// Run `work`, telling the runtime that this worker is busy: its other tasks move to another
/// thread meanwhile. Outside a multi-threaded runtime (unit tests), run it in place.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

//! `multi`: every operation or none. The caller runs this in a nested overlay that is dropped
//! when any operation fails, so a failure leaves nothing applied.

use corral_proto::{Error, MultiOp, Reply};

use super::command::TreeLimits;
use super::tree::{self, Applied};
use super::txn::Txn;

pub fn apply(txn: &mut Txn<'_>, index: u64, now: u64, session: u64, ops: &[MultiOp], limits: TreeLimits) -> Applied {
    let mut replies = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let res = match op {
            MultiOp::Check { path, version } => tree::check(txn, path, *version)?,
            MultiOp::Create { path, data, mode } => tree::create(txn, index, now, session, path, data, *mode, limits)?,
            MultiOp::Set { path, data, version } => tree::set(txn, index, now, path, data, *version)?,
            MultiOp::Delete { path, version } => tree::delete(txn, index, path, *version)?,
        };
        match res {
            Ok(r) => replies.push(r),
            Err(e) => return Ok(Err(Error::MultiFailed { op: i as u32, cause: Box::new(e) })),
        }
    }
    Ok(Ok(Reply::Multi(replies)))
}

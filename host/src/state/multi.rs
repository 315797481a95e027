//! `multi`: every operation or none. The caller runs this in a nested overlay that is dropped
//! when any operation fails, so a failure leaves nothing applied.

use corral_proto::{Error, MultiOp, Reply};

use super::tree::{self, Applied, At};
use super::txn::Txn;

pub fn apply(txn: &mut Txn<'_>, at: &At<'_>, ops: &[MultiOp]) -> Applied {
    let mut replies = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let res = match op {
            MultiOp::Check { path, version } => tree::check(txn, path, *version)?,
            MultiOp::Create { path, data, mode } => tree::create(txn, at, path, data, *mode)?,
            MultiOp::Set { path, data, version } => tree::set(txn, at, path, data, *version)?,
            MultiOp::Delete { path, version } => tree::delete(txn, at, path, *version)?,
        };
        match res {
            Ok(r) => replies.push(r),
            Err(e) => return Ok(Err(Error::MultiFailed { op: i as u32, cause: Box::new(e) })),
        }
    }
    Ok(Ok(Reply::Multi(replies)))
}

//! `corral txn`: a `multi` from JSON (a file, or standard input with `-`), e.g.
//!
//! ```json
//! [
//!   {"op": "check",  "path": "/config", "version": 3},
//!   {"op": "create", "path": "/jobs/j-", "data": "payload", "sequential": true},
//!   {"op": "set",    "path": "/config", "data": "v4", "version": 3},
//!   {"op": "delete", "path": "/old"}
//! ]
//! ```
//!
//! All of them are applied, or none.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use corral_client::{CreateMode, MultiOp};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum TxnOp {
    Check {
        path: String,
        version: Option<u64>,
    },
    Create {
        path: String,
        #[serde(default)]
        data: String,
        #[serde(default)]
        ephemeral: bool,
        #[serde(default)]
        sequential: bool,
        #[serde(default)]
        container: bool,
        ttl_ms: Option<u64>,
    },
    Set {
        path: String,
        #[serde(default)]
        data: String,
        version: Option<u64>,
    },
    Delete {
        path: String,
        version: Option<u64>,
    },
}

impl From<TxnOp> for MultiOp {
    fn from(op: TxnOp) -> MultiOp {
        match op {
            TxnOp::Check { path, version } => MultiOp::Check { path, version },
            TxnOp::Create { path, data, ephemeral, sequential, container, ttl_ms } => MultiOp::Create {
                path,
                data: data.into_bytes(),
                mode: CreateMode { ephemeral, sequential, container, ttl_ms },
            },
            TxnOp::Set { path, data, version } => MultiOp::Set { path, data: data.into_bytes(), version },
            TxnOp::Delete { path, version } => MultiOp::Delete { path, version },
        }
    }
}

/// Read and parse the operations from `source` (a path, or `-` for standard input).
pub fn read_ops(source: &str) -> Result<Vec<MultiOp>> {
    let text = if source == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(Path::new(source)).with_context(|| format!("reading {source}"))?
    };
    let ops: Vec<TxnOp> = serde_json::from_str(&text).with_context(|| format!("{source}: not a list of operations"))?;
    Ok(ops.into_iter().map(MultiOp::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op_and_rejects_unknown_ones() {
        let ops: Vec<TxnOp> = serde_json::from_str(
            r#"[{"op":"check","path":"/a","version":1},{"op":"create","path":"/b","sequential":true},
                {"op":"set","path":"/a","data":"x"},{"op":"delete","path":"/c"}]"#,
        )
        .expect("parse");
        assert_eq!(ops.len(), 4);
        assert!(serde_json::from_str::<Vec<TxnOp>>(r#"[{"op":"drop","path":"/a"}]"#).is_err());
        assert!(serde_json::from_str::<Vec<TxnOp>>(r#"[{"op":"set","path":"/a","dta":"x"}]"#).is_err());
    }
}

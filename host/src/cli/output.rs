//! Printing results: human text by default, one JSON object per result with `--json`.

use corral_client::{ClientError, NodeStatus, Stat};
use serde_json::{json, Value};

pub fn print(json_mode: bool, value: Value, human: impl FnOnce() -> String) {
    if json_mode {
        println!("{value}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

pub fn error(json_mode: bool, e: &anyhow::Error) {
    let kind = e
        .downcast_ref::<ClientError>()
        .and_then(|c| c.server())
        .map(|s| format!("{s:?}").split([' ', '{', '(']).next().unwrap_or("Error").to_string())
        .unwrap_or_else(|| "Error".into());
    let msg = format!("{e:#}").replace('\n', " ");
    if json_mode {
        println!("{}", json!({ "error": msg, "kind": kind }));
    } else {
        eprintln!("error: {msg}");
    }
}

pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid, "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "ephemeral_owner": s.ephemeral_owner,
        "data_length": s.data_length, "num_children": s.num_children,
    })
}

pub fn stat_text(s: &Stat) -> String {
    format!(
        "czxid = {}\nmzxid = {}\npzxid = {}\nctime = {}\nmtime = {}\nversion = {}\ncversion = {}\nephemeral_owner = {}\ndata_length = {}\nnum_children = {}",
        s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.ephemeral_owner, s.data_length, s.num_children
    )
}

pub fn status_json(s: &NodeStatus) -> Value {
    json!({
        "id": s.id, "addr": s.addr, "role": s.role, "term": s.term,
        "last_log_index": s.last_log_index, "applied_index": s.applied_index,
        "snapshot_index": s.snapshot_index, "leader": s.leader,
        "digest_index": s.digest_index, "digest": s.digest, "divergence": s.divergence,
    })
}

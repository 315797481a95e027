//! Print a node's log from its WAL: one line per command, with the entry's index and leader,
//! the session, request id and `done_below` the command carries, and what it does. For tracing
//! a request through a kept test cluster (`CORRAL_TEST_KEEP=1`), e.g. where a copy came from.
//!
//! `cargo run -p corral --example wal_dump -- NODE_DIR [SESSION]`. It opens a copy of the WAL,
//! so the node's own files are not touched.

use std::io::Write;

use anyhow::Context;

use corral::raft::TypeConfig;
use corral::state::{Command, Op};
use corral::wal::{RecordKind, Wal, WalOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir =
        std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: wal_dump NODE_DIR [SESSION]"))?);
    let session: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let copy = tempfile::tempdir()?;
    let wal = dir.join("wal");
    for f in std::fs::read_dir(&wal).with_context(|| format!("reading {}", wal.display()))? {
        let f = f?;
        std::fs::copy(f.path(), copy.path().join(f.file_name()))?;
    }
    let (_wal, records) = Wal::open(copy.path(), WalOptions::default())?;
    match dump(records, session) {
        // A closed pipe (`| head`) just ends the dump.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        other => other,
    }
}

fn dump(records: Vec<corral::wal::Record>, session: Option<u64>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in records {
        match r.kind {
            RecordKind::Entry => {
                let e: openraft::Entry<TypeConfig> =
                    bincode::Options::deserialize(bincode::DefaultOptions::new(), &r.payload)?;
                let openraft::EntryPayload::Normal(cmd) = &e.payload else {
                    writeln!(out, "{} {} (not a command)", r.index, e.log_id)?;
                    continue;
                };
                let cmds: Vec<&Command> = match &cmd.op {
                    Op::Batch { cmds } => cmds.iter().collect(),
                    _ => vec![cmd],
                };
                for c in cmds {
                    if session.is_none_or(|s| s == c.session) {
                        // A plugin call's input says what it asks (e.g. which queue item a put adds).
                        let input = match &c.op {
                            Op::PluginCall { input, .. } => String::from_utf8_lossy(input).chars().take(120).collect(),
                            _ => String::new(),
                        };
                        writeln!(
                            out,
                            "{} {} session={} req={} done_below={} {c} {input}",
                            r.index, e.log_id, c.session, c.req, c.done_below
                        )?;
                    }
                }
            }
            RecordKind::TruncateFrom => writeln!(out, "truncate from {}", r.index)?,
            RecordKind::PurgeThrough => writeln!(out, "purge through {}", r.index)?,
            RecordKind::Meta => {}
        }
    }
    Ok(())
}

//! A small file written atomically and durably: write a temp file, fsync it, rename it over
//! the old one, fsync the directory. Used for the Raft vote (which must never go backwards)
//! and for the latest snapshot.
//! Contents: `[crc32c u32 LE][payload]`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::segment::sync_dir;

pub fn save(dir: &Path, name: &str, payload: &[u8]) -> io::Result<()> {
    let start = std::time::Instant::now();
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
    f.write_all(payload)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)?;
    // A new file and a directory entry: two journal commits, not one data flush. The vote is
    // saved before a candidate asks for votes, so a slow save delays an election by as much.
    let took = start.elapsed();
    if took >= super::SLOW_SYNC {
        tracing::warn!(ms = took.as_millis() as u64, file = %dir.join(name).display(), "slow durable save");
    }
    Ok(())
}

pub fn load(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(dir.join(name)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 4 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name}: file too short")));
    }
    let (crc, payload) = bytes.split_at(4);
    if crc32c::crc32c(payload).to_le_bytes() != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name}: checksum mismatch")));
    }
    Ok(Some(payload.to_vec()))
}

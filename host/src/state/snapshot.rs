//! Snapshot encoding: `[crc32c u32 LE][bincode of every (key, value)]`. Decoding a corrupt or
//! truncated snapshot is an error, never a panic.

use bincode::Options;

pub fn encode(items: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let body = bincode::DefaultOptions::new().serialize(items).unwrap_or_default();
    let mut out = crc32c::crc32c(&body).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn decode(bytes: &[u8]) -> Result<super::Items, String> {
    if bytes.len() < 4 {
        return Err("snapshot shorter than its checksum".into());
    }
    let (crc, body) = bytes.split_at(4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err("snapshot checksum mismatch".into());
    }
    bincode::DefaultOptions::new()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| format!("snapshot malformed: {e}"))
}

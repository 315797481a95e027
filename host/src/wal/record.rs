//! One WAL record: `[len u32 LE][crc32c u32 LE][kind u8][index u64 LE][payload]`, where `len`
//! counts kind + index + payload and the CRC covers the same bytes. A `len` of 0 is the zeroed,
//! preallocated space after the last record.

/// What a record means to the layer above. The WAL itself only uses `Entry` indexes (to know
/// which segments a purge may delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A log entry at `index`.
    Entry = 1,
    /// Every entry at `index` or later is removed.
    TruncateFrom = 2,
    /// Every entry at `index` or earlier is removed; payload describes the purged id.
    PurgeThrough = 3,
    /// Metadata that the layer above wants kept (e.g. the committed log id).
    Meta = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => RecordKind::Entry,
            2 => RecordKind::TruncateFrom,
            3 => RecordKind::PurgeThrough,
            4 => RecordKind::Meta,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub index: u64,
    pub payload: Vec<u8>,
}

pub(crate) const HEADER: usize = 8;
const BODY_FIXED: usize = 9;

/// Result of decoding at an offset.
pub(crate) enum Decoded {
    Record(Record, usize),
    /// Zeroed space: the end of written data.
    End,
    /// Not a valid record: a torn write or corruption.
    Bad(&'static str),
}

impl Record {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = BODY_FIXED + self.payload.len();
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let crc_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let body_at = out.len();
        out.push(self.kind as u8);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.payload);
        let crc = crc32c::crc32c(&out[body_at..]);
        out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    }

    pub(crate) fn decode(buf: &[u8]) -> Decoded {
        if buf.len() < 4 {
            return if buf.iter().all(|&b| b == 0) { Decoded::End } else { Decoded::Bad("short header") };
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len == 0 {
            return Decoded::End;
        }
        if len < BODY_FIXED || buf.len() < HEADER + len {
            return Decoded::Bad("length runs past the written data");
        }
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let body = &buf[HEADER..HEADER + len];
        if crc32c::crc32c(body) != crc {
            return Decoded::Bad("checksum mismatch");
        }
        let Some(kind) = RecordKind::from_u8(body[0]) else {
            return Decoded::Bad("unknown record kind");
        };
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&body[1..9]);
        let rec = Record { kind, index: u64::from_le_bytes(idx), payload: body[9..].to_vec() };
        Decoded::Record(rec, HEADER + len)
    }
}

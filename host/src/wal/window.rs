//! A window over a segment file for replay: the bytes from some offset on, read a few MiB at a
//! time into one reused buffer. Replay used to read each segment whole; a 64 MiB segment (mostly
//! preallocated zeros) cost the kernel ~60 ms of page zeroing for the fresh buffer, and that
//! delayed every restart, a restarted leader's comeback included.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const CHUNK: usize = 4 << 20;

pub(crate) struct Window<'a> {
    file: &'a File,
    len: u64,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    pub fn new(file: &'a File, len: u64) -> Self {
        Window { file, len, base: 0, buf: Vec::new() }
    }

    /// The bytes from file offset `at` (not before the last `at`) on: at least `need` of them,
    /// or all the file has left.
    pub fn at(&mut self, at: u64, need: usize) -> io::Result<&[u8]> {
        let start = (at - self.base) as usize;
        let more_in_file = self.base + (self.buf.len() as u64) < self.len;
        if self.buf.len() - start < need && more_in_file {
            // Drop what was consumed only now, when refilling: a drain per record would copy
            // the window over and over.
            self.buf.drain(..start);
            self.base = at;
            let have = self.buf.len();
            let left = (self.len - self.base) as usize - have;
            let want = need.saturating_sub(have).max(CHUNK).min(left);
            self.buf.resize(have + want, 0);
            self.file.read_exact_at(&mut self.buf[have..], self.base + have as u64)?;
            return Ok(&self.buf);
        }
        Ok(&self.buf[start..])
    }

    /// Whether every byte from `from` to the end of the file is zero.
    pub fn zero_from(&mut self, from: u64) -> io::Result<bool> {
        let mut pos = from;
        while pos < self.len {
            let want = CHUNK.min((self.len - pos) as usize);
            let bytes = self.at(pos, want)?;
            // A fold rather than `all`: no early exit, so it vectorizes.
            if bytes.iter().fold(0u8, |acc, &b| acc | b) != 0 {
                return Ok(false);
            }
            pos += bytes.len() as u64;
        }
        Ok(true)
    }
}

//! Plaintext collected in memory (mail, inspect), up to a limit, in bounded extra memory.
//!
//! A few kilobytes of compressed data can expand to gigabytes, so an in-memory decrypt stops
//! at a limit with its own error. The bytes are gathered in fixed chunks and joined once the
//! message authenticated, each chunk wiped and freed as it is copied: the peak is the
//! plaintext and one chunk, never a doubled buffer.

use std::io::{self, Write};

use zeroize::Zeroizing;

/// The default in-memory plaintext limit: below 256 MiB so that a decompression bomb stops
/// with the whole process under that, above the 200 MiB attachments mail carries.
pub const DEFAULT_LIMIT: u64 = 224 << 20;

const CHUNK: usize = 1 << 20;

/// The write error a [`Collector`] returns past its limit (the engine turns it into
/// [`crate::error::Error::TooLarge`]).
#[derive(Debug)]
pub struct LimitExceeded(pub u64);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the plaintext is larger than {} bytes", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// The limit a failed write ran into, if that is why it failed.
pub fn exceeded(e: &io::Error) -> Option<u64> {
    e.get_ref()?.downcast_ref::<LimitExceeded>().map(|l| l.0)
}

/// Gathers plaintext for `out`, refusing more than `limit` bytes.
pub struct Collector<'b> {
    out: &'b mut Zeroizing<Vec<u8>>,
    chunks: Vec<Zeroizing<Vec<u8>>>,
    len: u64,
    limit: u64,
}

impl<'b> Collector<'b> {
    pub fn new(out: &'b mut Zeroizing<Vec<u8>>, limit: u64) -> Self {
        Collector {
            out,
            chunks: Vec::new(),
            len: 0,
            limit,
        }
    }

    /// Joins what was gathered onto `out`, freeing each chunk once copied.
    pub fn finish(mut self) {
        let mut joined = Zeroizing::new(Vec::with_capacity(self.out.len() + self.len as usize));
        joined.extend_from_slice(self.out);
        for chunk in self.chunks.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        *self.out = joined;
    }
}

impl Write for Collector<'_> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        if self.len + n as u64 > self.limit {
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        self.len += n as u64;
        while !data.is_empty() {
            match self.chunks.last_mut() {
                Some(last) if last.len() < CHUNK => {
                    let take = data.len().min(CHUNK - last.len());
                    last.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
                _ => self.chunks.push(Zeroizing::new(Vec::with_capacity(CHUNK))),
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_what_it_gathered_in_order() {
        let mut out = Zeroizing::new(b"head:".to_vec());
        let mut c = Collector::new(&mut out, 10 << 20);
        let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        c.write_all(&big).expect("write");
        c.write_all(b"tail").expect("write");
        c.finish();
        assert_eq!(&out[..5], b"head:");
        assert_eq!(&out[5..5 + big.len()], &big[..]);
        assert_eq!(&out[5 + big.len()..], b"tail");
    }

    #[test]
    fn refuses_past_the_limit() {
        let mut out = Zeroizing::new(Vec::new());
        let mut c = Collector::new(&mut out, 8);
        c.write_all(b"12345678").expect("at the limit");
        let e = c.write_all(b"9").expect_err("past the limit");
        assert_eq!(exceeded(&e), Some(8));
    }
}

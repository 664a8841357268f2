//! What pass 1 of a stream keeps of the plaintext it authenticates without writing: all of
//! it in memory while it is small (a message of mail size then needs no second pass); for a
//! compressed message, all of it sealed on disk ([`super::sealed`]: pass 2 then opens it
//! instead of inflating again); otherwise nothing, and pass 2 decrypts again.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use zeroize::Zeroizing;

use super::sealed::{Sealer, Unsealer};

/// Plaintext held in memory, up to this size.
const HELD: usize = 8 << 20;
/// The most plaintext sealed per byte of input (and at least [`SEALED_MIN`], or for an
/// input of unknown size [`SEALED_UNKNOWN`]): beyond it (a decompression bomb, say) the
/// spool is dropped and pass 2 inflates again, so the disk never fills with what a few
/// kilobytes expand to.
const SEALED_PER_INPUT_BYTE: u64 = 8;
const SEALED_MIN: u64 = 64 << 20;
const SEALED_UNKNOWN: u64 = 256 << 20;

/// Where pass 1's plaintext went.
pub(super) enum Kept {
    /// All of it, here.
    Memory(Zeroizing<Vec<u8>>),
    /// All of it, sealed.
    Sealed(Box<Unsealer>),
    /// None: pass 2 decrypts again.
    Nothing,
}

/// Where pass 1's plaintext is going.
enum State {
    /// Into memory, up to the limit.
    Memory(Zeroizing<Vec<u8>>),
    /// Into the seal.
    Sealing(Box<Sealer>),
    /// Nowhere: it outgrew memory and is not compressed, or sealing failed or passed its cap.
    Nowhere,
}

/// Pass 1's output for a stream.
pub(super) struct Held {
    state: State,
    /// Memory's limit: [`HELD`], or 0 for an input too large to fit.
    limit: usize,
    /// Set by the engine when the message is compressed (before any plaintext comes).
    compressed: Arc<AtomicBool>,
    spool_dir: Option<PathBuf>,
    /// The most plaintext sealed.
    cap: u64,
}

impl Held {
    /// For an input of `size` bytes (if known); `compressed` is the flag the engine sets.
    pub(super) fn new(
        size: Option<u64>,
        compressed: Arc<AtomicBool>,
        spool_dir: Option<PathBuf>,
    ) -> Held {
        // A file this much larger than what is held cannot hold less plaintext (even stored
        // deflate blocks grow by a 5-byte header per 64 KiB): nothing is kept in memory then,
        // rather than copying 8 MiB into buffers that only grow, fault in and are wiped.
        let too_large = size.is_some_and(|s| s > (HELD + HELD / 64) as u64 + (1 << 16));
        Held {
            state: State::Memory(Zeroizing::new(Vec::new())),
            limit: if too_large { 0 } else { HELD },
            compressed,
            spool_dir,
            cap: size.map_or(SEALED_UNKNOWN, |s| {
                s.saturating_mul(SEALED_PER_INPUT_BYTE).max(SEALED_MIN)
            }),
        }
    }

    /// What was kept, once pass 1 authenticated the message. A seal that cannot be
    /// finished (the disk filled up) leaves the work to pass 2.
    pub(super) fn kept(self) -> Kept {
        match self.state {
            State::Memory(plaintext) => Kept::Memory(plaintext),
            State::Sealing(sealer) => match sealer.finish() {
                Ok(unsealer) => Kept::Sealed(Box::new(unsealer)),
                Err(_) => Kept::Nothing,
            },
            State::Nowhere => Kept::Nothing,
        }
    }
}

/// Where the plaintext goes once it outgrew memory: sealed, with what memory held, if it is
/// compressed (and the spool can be made), else nowhere.
fn overflow(compressed: bool, spool_dir: Option<&Path>, held: &[u8]) -> State {
    let sealer = compressed
        .then(|| Sealer::new(spool_dir))
        .and_then(Result::ok)
        .and_then(|mut sealer| sealer.write(held).ok().map(|()| sealer));
    sealer.map_or(State::Nowhere, |sealer| State::Sealing(Box::new(sealer)))
}

impl Write for Held {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let State::Memory(plaintext) = &mut self.state {
            if plaintext.len() + data.len() <= self.limit {
                push_wiped(plaintext, data);
                return Ok(data.len());
            }
            // The memory held is wiped when the old state is dropped here.
            let compressed = self.compressed.load(Ordering::Relaxed);
            self.state = overflow(compressed, self.spool_dir.as_deref(), plaintext);
        }
        if let State::Sealing(sealer) = &mut self.state {
            if sealer.write(data).is_err() || sealer.length() > self.cap {
                self.state = State::Nowhere;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `data` to a plaintext buffer, growing it by hand so that the old buffer is wiped,
/// not left to the allocator as `Vec`'s own growth would.
pub fn push_wiped(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * buf.capacity())));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(size: Option<u64>, compressed: bool, dir: &std::path::Path) -> Held {
        Held::new(
            size,
            Arc::new(AtomicBool::new(compressed)),
            Some(dir.to_path_buf()),
        )
    }

    fn write_all(h: &mut Held, total: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(1 << 18) {
            h.write_all(piece).expect("write");
        }
        data
    }

    #[test]
    fn small_plaintext_stays_in_memory_compressed_or_not() {
        let dir = tempfile::tempdir().expect("dir");
        for compressed in [false, true] {
            let mut h = held(None, compressed, dir.path());
            let data = write_all(&mut h, 1000);
            assert!(matches!(h.kept(), Kept::Memory(m) if *m == data));
        }
    }

    #[test]
    fn large_compressed_plaintext_is_sealed_and_the_rest_is_not_kept() {
        let dir = tempfile::tempdir().expect("dir");
        // From memory into the seal, and sealed from the start (a large input).
        for size in [None, Some(64 << 20)] {
            let mut h = held(size, true, dir.path());
            let data = write_all(&mut h, HELD + 12345);
            let Kept::Sealed(unsealer) = h.kept() else {
                panic!("not sealed");
            };
            let mut back = Vec::new();
            unsealer.copy_to(&mut back).expect("unseal");
            assert!(back == data);
        }
        let mut h = held(None, false, dir.path());
        write_all(&mut h, HELD + 1);
        assert!(matches!(h.kept(), Kept::Nothing));
    }

    #[test]
    fn sealing_stops_at_its_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let mut h = held(Some(64 << 20), true, dir.path());
        h.cap = 4 << 20;
        write_all(&mut h, 5 << 20);
        assert!(matches!(h.kept(), Kept::Nothing));
    }
}

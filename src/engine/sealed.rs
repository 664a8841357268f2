//! The plaintext of a compressed message kept between the two passes of a stream, sealed.
//! Pass 1 must inflate all of it (a broken deflate stream must be found before any output),
//! and inflating is most of the work: a second inflate in pass 2 made zlib messages slower
//! than gpg's one pass. So pass 1 writes what it inflated to an unnamed file, encrypted and
//! authenticated per 1 MiB chunk (AES-256-OCB) under a key that exists only in this
//! process's memory, and pass 2 opens it chunk by chunk. A chunk changed on disk fails its
//! tag; chunks cannot be reordered, dropped or added (nonce = index, the last one marked,
//! the length kept in memory).

use std::{
    fs::File,
    io::{self, Read, Seek, Write},
    path::Path,
};

use zeroize::Zeroizing;

use super::{ocb::Ocb, symmetric::BlockCipher};
use crate::error::{Error, Result};

/// Plaintext per chunk.
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;

fn nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

/// The associated data: whether this is the last chunk.
fn last_mark(last: bool) -> [u8; 1] {
    [u8::from(last)]
}

/// Pass 1's side: plaintext in, sealed chunks out to the file.
pub(super) struct Sealer {
    ocb: Ocb,
    file: File,
    writer: crate::output::Background,
    chunk: Zeroizing<Vec<u8>>,
    index: u64,
    length: u64,
}

impl Sealer {
    /// A sealed spool in `dir` (the system's temporary directory by default).
    pub(super) fn new(dir: Option<&Path>) -> Result<Sealer> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut key[..])
            .map_err(|e| Error::Other(format!("no random numbers: {e}")))?;
        let ocb = BlockCipher::new(9, &key[..])
            .and_then(Ocb::new)
            .ok_or_else(|| Error::Other("AES-256 unavailable".into()))?;
        let file = super::source::spool_file(dir)?;
        let writer = crate::output::Background::for_ciphertext(
            file.try_clone()
                .map_err(|e| Error::io("cannot use the spool file", e))?,
        );
        Ok(Sealer {
            ocb,
            file,
            writer,
            chunk: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
            index: 0,
            length: 0,
        })
    }

    /// Plaintext sealed so far and waiting.
    pub(super) fn length(&self) -> u64 {
        self.length
    }

    pub(super) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.length += data.len() as u64;
        while !data.is_empty() {
            if self.chunk.len() == CHUNK {
                self.seal(false)?;
            }
            let take = data.len().min(CHUNK - self.chunk.len());
            self.chunk.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the chunk in hand and hands it to the writing thread.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .ocb
            .encrypt(&nonce(self.index), &last_mark(last), &mut self.chunk);
        self.chunk.extend_from_slice(&tag);
        self.writer.write_all(&self.chunk)?;
        self.chunk.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk, waits for the file to be written and turns to reading it.
    pub(super) fn finish(mut self) -> io::Result<Unsealer> {
        self.seal(true)?;
        self.writer.finish()?;
        self.file.rewind()?;
        Ok(Unsealer {
            ocb: self.ocb,
            file: self.file,
            left: self.length,
            index: 0,
        })
    }
}

/// Pass 2's side: the file's chunks opened in order.
pub(super) struct Unsealer {
    ocb: Ocb,
    file: File,
    left: u64,
    index: u64,
}

impl Unsealer {
    /// Writes the whole plaintext to `out`; a chunk that fails its tag stops it before any of
    /// that chunk is written. Returns the length.
    pub(super) fn copy_to(mut self, out: &mut dyn Write) -> Result<u64> {
        let mut chunk = Zeroizing::new(vec![0u8; CHUNK + TAG]);
        let mut written = 0u64;
        loop {
            let len = usize::try_from(self.left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let last = self.left <= CHUNK as u64;
            self.file
                .read_exact(&mut chunk[..len + TAG])
                .map_err(|_| changed())?;
            let (data, tag) = chunk[..len + TAG].split_at_mut(len);
            if !self
                .ocb
                .decrypt(&nonce(self.index), &last_mark(last), data, tag)
            {
                return Err(changed());
            }
            out.write_all(data)
                .map_err(|e| Error::io("cannot write the plaintext", e))?;
            written += len as u64;
            self.left -= len as u64;
            self.index += 1;
            if last {
                break;
            }
        }
        let mut more = [0u8; 1];
        if self.file.read(&mut more).map_err(|_| changed())? != 0 {
            return Err(changed());
        }
        Ok(written)
    }
}

/// Another program changed the spool file (the plaintext before the changed chunk was
/// written, none after it).
fn changed() -> Error {
    Error::io(
        "the spool file changed between the two passes",
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a sealed chunk failed its check",
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn sealed(data: &[u8], dir: &Path) -> Unsealer {
        let mut s = Sealer::new(Some(dir)).expect("sealer");
        for piece in data.chunks(100_000) {
            s.write(piece).expect("write");
        }
        assert_eq!(s.length(), data.len() as u64);
        s.finish().expect("finish")
    }

    #[test]
    fn what_is_sealed_comes_back() {
        let dir = tempfile::tempdir().expect("dir");
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut back = Vec::new();
            let n = sealed(&data, dir.path())
                .copy_to(&mut back)
                .expect("unseal");
            assert_eq!(n, len as u64);
            assert!(back == data, "len {len}");
        }
    }

    #[test]
    fn a_changed_or_cut_spool_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let data = vec![5u8; 2 * CHUNK + 10];
        for at in [3u64, (CHUNK + TAG + 1) as u64] {
            let unsealer = sealed(&data, dir.path());
            unsealer.file.write_all_at(&[0xFF], at).expect("change");
            let mut back = Vec::new();
            assert!(matches!(unsealer.copy_to(&mut back), Err(Error::Io { .. })));
            assert_eq!(back.len() as u64, at / (CHUNK + TAG) as u64 * CHUNK as u64);
        }
        let unsealer = sealed(&data, dir.path());
        unsealer
            .file
            .set_len((2 * (CHUNK + TAG)) as u64)
            .expect("cut");
        assert!(unsealer.copy_to(&mut Vec::new()).is_err());
    }
}

//! Reading a message twice without trusting it to stay the same, and spooling one that can
//! be read only once.
//!
//! A regular file is read in blocks of [`BLOCK`] bytes. In pass 1 each block's PMAC (OCB's
//! HASH, AES-128 under a key drawn for this run; batched AES-NI, unlike POLYVAL's one block
//! at a time, which took a third of the time) is kept (16 bytes per MiB); in pass 2 a block is
//! returned only if its hash matches, so a file changed between the passes is refused before any of its new
//! content is decrypted. The key and the hashes never leave memory, so nobody can aim a
//! change at a collision.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::Path,
    sync::{atomic::AtomicBool, Arc, Mutex},
};

use zeroize::Zeroizing;

use super::{
    ocb::{Ocb, Pmac, PMAC_STEP},
    symmetric::BlockCipher,
    Failure,
};
use crate::error::{Error, Result};

mod ahead;

use ahead::{Lazy, ReadAhead, AHEAD_FROM};

pub const BLOCK: usize = 1 << 20;

/// What is read and hashed at a time: a multiple of the PMAC's step that stays in cache.
const PIECE: usize = 128 << 10;

/// The per-run key, where the file starts, and the hash of every block read in pass 1.
pub struct Guard {
    key: Zeroizing<[u8; 16]>,
    start: u64,
    hashes: Arc<Mutex<Vec<[u8; 16]>>>,
}

impl Guard {
    /// A guard for `file` from its current position.
    pub fn new(file: &mut File) -> Result<Guard> {
        let mut key = Zeroizing::new([0u8; 16]);
        getrandom::getrandom(&mut key[..])
            .map_err(|e| Error::Other(format!("no random numbers: {e}")))?;
        let start = file
            .stream_position()
            .map_err(|e| Error::io("cannot read the message", e))?;
        Ok(Guard {
            key,
            start,
            hashes: Default::default(),
        })
    }

    fn mac(key: &[u8; 16]) -> Result<Ocb> {
        BlockCipher::new(7, key)
            .and_then(Ocb::new)
            .ok_or_else(|| Error::Other("AES-128 unavailable".into()))
    }

    /// A hasher for what is written to a spool from here on, block by block as
    /// [`verify`](Self::verify) reads it back (pass 1 of a piped message).
    pub fn writer_side(&self) -> Result<SpoolHasher> {
        Ok(SpoolHasher {
            mac: Guard::mac(&self.key)?,
            hashes: self.hashes.clone(),
            pmac: Pmac::default(),
            in_block: 0,
            carry: Vec::with_capacity(PMAC_STEP),
        })
    }

    /// A reader of `file` that records block hashes (pass 1). It reads on the calling
    /// thread, and a block ahead on a thread of its own once `ahead` is set (see [`Lazy`]).
    pub fn record(
        &self,
        file: &File,
        ahead: Arc<AtomicBool>,
    ) -> Result<Box<dyn Read + Send + Sync>> {
        let checked = self.reader(file, false, Failure::default())?;
        Ok(Box::new(Lazy {
            inline: Some(checked),
            ahead: None,
            wanted: ahead,
        }))
    }

    /// A reader of `file` that checks every block against pass 1 (pass 2). A mismatch is
    /// reported through `failure`.
    /// With `share`, the read-ahead thread checks the odd blocks and the reading side the
    /// even ones: for SEIPD v1, whose pass 2 decrypts at VAES speed, the re-read (kernel
    /// copies) and the check would otherwise fill one core alone while the other waits. An
    /// AEAD container's own work fills the reading side, which then checks nothing.
    pub fn verify(
        &self,
        file: &File,
        failure: Failure,
        share: bool,
    ) -> Result<Box<dyn Read + Send + Sync>> {
        let mut checked = self.reader(file, true, failure)?;
        if !checked.large() {
            return Ok(Box::new(checked));
        }
        checked.defer_even = share;
        let deferred = share.then(|| checked.deferred(&self.key)).transpose()?;
        Ok(Box::new(ReadAhead::new(checked, deferred)))
    }

    fn reader(&self, file: &File, check: bool, failure: Failure) -> Result<Checked> {
        let mut file = file
            .try_clone()
            .map_err(|e| Error::io("cannot read the message", e))?;
        file.seek(SeekFrom::Start(self.start))
            .map_err(|e| Error::io("cannot read the message", e))?;
        Ok(Checked {
            file,
            mac: Guard::mac(&self.key)?,
            hashes: self.hashes.clone(),
            check,
            index: 0,
            block: Zeroizing::new(Vec::with_capacity(BLOCK)),
            at: 0,
            eof: false,
            failure,
            defer_even: false,
        })
    }
}

/// The block hashes of a spool, taken as it is written: the same blocks [`Checked`] reads
/// back, so pass 2 of a piped message checks its spool as it checks a file read again.
pub struct SpoolHasher {
    mac: Ocb,
    hashes: Arc<Mutex<Vec<[u8; 16]>>>,
    pmac: Pmac,
    /// Bytes of the current block hashed or waiting in `carry`.
    in_block: usize,
    carry: Vec<u8>,
}

impl SpoolHasher {
    /// Hashes `data` as it goes by (no copy of the block is kept), block by block.
    pub fn update(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let take = data.len().min(BLOCK - self.in_block);
            let (now, rest) = data.split_at(take);
            self.absorb(now);
            self.in_block += take;
            data = rest;
            if self.in_block == BLOCK {
                self.push()?;
            }
        }
        Ok(())
    }

    /// Into the PMAC in whole steps; less than a step waits in `carry`.
    fn absorb(&mut self, mut now: &[u8]) {
        if !self.carry.is_empty() {
            let take = now.len().min(PMAC_STEP - self.carry.len());
            self.carry.extend_from_slice(&now[..take]);
            now = &now[take..];
            if self.carry.len() < PMAC_STEP {
                return;
            }
            self.pmac.update(&self.mac, &self.carry);
            self.carry.clear();
        }
        let whole = now.len() / PMAC_STEP * PMAC_STEP;
        self.pmac.update(&self.mac, &now[..whole]);
        self.carry.extend_from_slice(&now[whole..]);
    }

    /// Hashes the last block (short, possibly empty), as the reader's last read finds it.
    pub fn finish(&mut self) -> io::Result<()> {
        self.push()
    }

    fn push(&mut self) -> io::Result<()> {
        let hash = std::mem::take(&mut self.pmac)
            .finish(&self.mac, &self.carry)
            .to_be_bytes();
        self.carry.clear();
        self.in_block = 0;
        self.hashes
            .lock()
            .map_err(|_| io::Error::other("guard poisoned"))?
            .push(hash);
        Ok(())
    }
}

/// A file read in whole blocks, hashing (pass 1) or checking (pass 2) each.
pub struct Checked {
    file: File,
    mac: Ocb,
    hashes: Arc<Mutex<Vec<[u8; 16]>>>,
    check: bool,
    index: usize,
    block: Zeroizing<Vec<u8>>,
    at: usize,
    eof: bool,
    failure: Failure,
    /// Pass 2 read ahead: every other block (the even ones) is left for the reading side to
    /// check ([`Deferred`]), so that the two threads share the re-read check.
    defer_even: bool,
}

impl Checked {
    fn next_block(&mut self) -> io::Result<()> {
        let mut block = std::mem::take(&mut self.block);
        let read = self.read_block(&mut block);
        self.block = block;
        self.at = 0;
        read.map(drop)
    }

    /// Reads the next block into `block`, hashing or checking it. It is read and hashed a
    /// piece at a time, each hashed while it is still in the processor's cache. Returns the
    /// index of a block whose check was left to the reading side.
    fn read_block(&mut self, block: &mut Vec<u8>) -> io::Result<Option<usize>> {
        block.clear();
        if self.check && self.defer_even && self.index.is_multiple_of(2) {
            let filled = (&mut self.file).take(BLOCK as u64).read_to_end(block)?;
            self.eof = filled < BLOCK;
            self.index += 1;
            return Ok(Some(self.index - 1));
        }
        let mut pmac = Pmac::default();
        let last = loop {
            let at = block.len();
            // read_to_end grows the buffer only as far as the file goes: a small message
            // costs no megabyte of zeroing.
            let filled = (&mut self.file).take(PIECE as u64).read_to_end(block)?;
            if filled < PIECE {
                self.eof = true;
                break at;
            }
            if block.len() == BLOCK {
                break at;
            }
            pmac.update(&self.mac, &block[at..]);
        };
        let hash = pmac.finish(&self.mac, &block[last..]).to_be_bytes();
        if self.check {
            compare(&self.hashes, &self.failure, self.index, &hash, block)?;
        } else {
            self.hashes
                .lock()
                .map_err(|_| io::Error::other("guard poisoned"))?
                .push(hash);
        }
        self.index += 1;
        Ok(None)
    }

    /// Whether the file is large enough to be read ahead on a thread of its own.
    fn large(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.len() >= AHEAD_FROM)
    }

    /// What the reading side needs to check the blocks left to it.
    fn deferred(&self, key: &[u8; 16]) -> Result<Deferred> {
        Ok(Deferred {
            mac: Guard::mac(key)?,
            hashes: self.hashes.clone(),
            failure: self.failure.clone(),
        })
    }
}

/// Block `index` (in `block`) against pass 1's hash: a block that changed is wiped and
/// refused.
fn compare(
    hashes: &Mutex<Vec<[u8; 16]>>,
    failure: &Failure,
    index: usize,
    hash: &[u8; 16],
    block: &mut Vec<u8>,
) -> io::Result<()> {
    let same = hashes
        .lock()
        .map_err(|_| io::Error::other("guard poisoned"))?
        .get(index)
        == Some(hash);
    if same {
        Ok(())
    } else {
        zeroize::Zeroize::zeroize(block);
        Err(failure.set(Error::InputChanged))
    }
}

/// The re-read check of the blocks a read-ahead thread left to the reading side.
struct Deferred {
    mac: Ocb,
    hashes: Arc<Mutex<Vec<[u8; 16]>>>,
    failure: Failure,
}

impl Deferred {
    fn check(&self, index: usize, block: &mut Vec<u8>) -> io::Result<()> {
        let hash = self.mac.hash(block).to_be_bytes();
        compare(&self.hashes, &self.failure, index, &hash, block)
    }
}

impl Read for Checked {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.block.len() {
            if self.eof {
                return Ok(0);
            }
            self.next_block()?;
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An unnamed file (mode 0600) for spooling ciphertext, in `dir` or `$TMPDIR`. It vanishes
/// with the process, however the process ends.
pub fn spool_file(dir: Option<&Path>) -> Result<File> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    crate::output::unnamed_file(&dir).map_err(|e| {
        Error::io(
            format!("cannot create a spool file in {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Writes `data` to a spool through the hasher, then reads it back checked.
    fn spooled(
        data: &[u8],
        change_at: Option<usize>,
        share: bool,
    ) -> std::result::Result<Vec<u8>, Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = spool_file(Some(dir.path())).expect("spool");
        let guard = Guard::new(&mut spool).expect("guard");
        let mut hasher = guard.writer_side().expect("hasher");
        for piece in data.chunks(70_000) {
            hasher.update(piece).expect("hash");
            spool.write_all(piece).expect("write");
        }
        hasher.finish().expect("finish");
        if let Some(at) = change_at {
            spool.seek(SeekFrom::Start(at as u64)).expect("seek");
            spool.write_all(&[data[at] ^ 1]).expect("change");
        }
        let failure = Failure::default();
        let mut back = Vec::new();
        match guard
            .verify(&spool, failure.clone(), share)
            .expect("verify")
            .read_to_end(&mut back)
        {
            Ok(_) => Ok(back),
            Err(_) => Err(failure.take().expect("the reason")),
        }
    }

    #[test]
    fn a_spool_reads_back_as_written_and_a_change_is_refused() {
        for len in [
            0,
            5,
            PIECE,
            PIECE + 1,
            BLOCK - 1,
            BLOCK,
            2 * BLOCK,
            BLOCK + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(
                spooled(&data, None, true).expect("unchanged"),
                data,
                "{len}"
            );
            if len > 0 {
                let err = spooled(&data, Some(len - 1), true).expect_err("changed");
                assert!(matches!(err, Error::InputChanged), "{len}: {err}");
            }
        }
    }

    /// Large enough to be read ahead: every block checked, by the thread or (sharing) by
    /// the reading side, to the last one, whether the end falls on a block boundary or not.
    #[test]
    fn a_spool_read_ahead_checks_every_block_on_either_side() {
        for len in [4 * BLOCK + 5, 5 * BLOCK, 6 * BLOCK] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            for share in [false, true] {
                let back = spooled(&data, None, share).expect("unchanged");
                assert!(back == data, "{len}, share {share}");
                for at in [2 * BLOCK + 7, 3 * BLOCK + 7, len - 1] {
                    let err = spooled(&data, Some(at), share).expect_err("changed");
                    assert!(
                        matches!(err, Error::InputChanged),
                        "{len}, share {share}, at {at}: {err}"
                    );
                }
            }
        }
    }
}

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
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use zeroize::Zeroizing;

use super::{
    ocb::{Ocb, Pmac, PMAC_STEP},
    symmetric::BlockCipher,
    Failure,
};
use crate::error::{Error, Result};

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
    pub fn verify(&self, file: &File, failure: Failure) -> Result<Box<dyn Read + Send + Sync>> {
        self.reader(file, true, failure).map(ahead)
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
}

impl Checked {
    fn next_block(&mut self) -> io::Result<()> {
        let mut block = std::mem::take(&mut self.block);
        let read = self.read_block(&mut block);
        self.block = block;
        self.at = 0;
        read
    }

    /// Reads the next block into `block`, hashing or checking it. It is read and hashed a
    /// piece at a time, each hashed while it is still in the processor's cache.
    fn read_block(&mut self, block: &mut Vec<u8>) -> io::Result<()> {
        block.clear();
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
        let mut hashes = self
            .hashes
            .lock()
            .map_err(|_| io::Error::other("guard poisoned"))?;
        if self.check {
            if hashes.get(self.index) != Some(&hash) {
                block.clear();
                drop(hashes);
                return Err(self.failure.set(Error::InputChanged));
            }
        } else {
            hashes.push(hash);
        }
        self.index += 1;
        Ok(())
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

/// Files larger than this are read a block ahead on a thread of their own.
const AHEAD_FROM: u64 = 4 * BLOCK as u64;

/// `checked` as it is for a small file, or read ahead on a second thread for a large one:
/// reading and the keyed block check then run beside the decryption.
fn ahead(checked: Checked) -> Box<dyn Read + Send + Sync> {
    let large = checked.file.metadata().is_ok_and(|m| m.len() >= AHEAD_FROM);
    if large {
        Box::new(ReadAhead::new(checked))
    } else {
        Box::new(checked)
    }
}

/// Pass 1 of a file: read on the calling thread until the engine knows the container, then,
/// for an AEAD one, a block ahead on a thread of its own. A SEIPD v1 container keeps reading
/// here: SHA-1 has a thread of its own, and a third busy thread on two cores would take turns
/// with it (measured: SHA-1 then ran at two thirds of its speed).
struct Lazy {
    inline: Option<Checked>,
    ahead: Option<ReadAhead>,
    wanted: Arc<AtomicBool>,
}

impl Read for Lazy {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(ahead) = &mut self.ahead {
            return ahead.read(out);
        }
        let switch = self.inline.as_ref().is_some_and(|c| {
            c.at == c.block.len()
                && !c.eof
                && self.wanted.load(Ordering::Relaxed)
                && c.file.metadata().is_ok_and(|m| m.len() >= AHEAD_FROM)
        });
        match self.inline.take() {
            Some(checked) if switch => self.ahead.insert(ReadAhead::new(checked)).read(out),
            Some(mut checked) => {
                let n = checked.read(out);
                self.inline = Some(checked);
                n
            }
            None => Ok(0),
        }
    }
}

type Filled = io::Result<Vec<u8>>;

/// A [`Checked`] file read on its own thread, blocks handed over through a channel and
/// their buffers handed back (three in all: bounded memory, no page faults per block).
struct ReadAhead {
    /// In a mutex only to be `Sync`, as the engine's readers must be.
    full: Option<Mutex<std::sync::mpsc::Receiver<Filled>>>,
    empty: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl ReadAhead {
    fn new(mut checked: Checked) -> ReadAhead {
        use std::sync::mpsc::sync_channel;
        const BUFFERS: usize = 3;
        let (full_tx, full) = sync_channel::<Filled>(BUFFERS);
        let (empty, empty_rx) = sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = empty.send(Vec::with_capacity(BLOCK));
        }
        let thread = std::thread::spawn(move || {
            while let Ok(mut block) = empty_rx.recv() {
                let read = checked.read_block(&mut block);
                let last = checked.eof || read.is_err();
                let sent = full_tx.send(read.map(|()| block));
                if last {
                    // An empty block after the last one says "end".
                    let _ = full_tx.send(Ok(Vec::new()));
                    return;
                }
                if sent.is_err() {
                    return;
                }
            }
        });
        ReadAhead {
            full: Some(Mutex::new(full)),
            empty: Some(empty),
            thread: Some(thread),
            current: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.current.len() {
                let n = out.len().min(self.current.len() - self.at);
                out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let used = std::mem::take(&mut self.current);
            if used.capacity() > 0 {
                if let Some(empty) = &self.empty {
                    let _ = empty.send(used);
                }
            }
            self.at = 0;
            let next = self
                .full
                .as_mut()
                .and_then(|f| f.get_mut().ok())
                .and_then(|f| f.recv().ok());
            match next {
                Some(Ok(block)) => {
                    self.done = block.is_empty();
                    self.current = block;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Err(io::Error::other("the reading thread stopped"));
                }
            }
        }
    }
}

impl Drop for ReadAhead {
    /// Stops the thread and waits for it: pass 2 must not start while pass 1's thread may
    /// still record block hashes.
    fn drop(&mut self) {
        self.full.take();
        self.empty.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
    fn spooled(data: &[u8], change_at: Option<usize>) -> std::result::Result<Vec<u8>, Error> {
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
            .verify(&spool, failure.clone())
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
            assert_eq!(spooled(&data, None).expect("unchanged"), data, "{len}");
            if len > 0 {
                let err = spooled(&data, Some(len - 1)).expect_err("changed");
                assert!(matches!(err, Error::InputChanged), "{len}: {err}");
            }
        }
    }
}

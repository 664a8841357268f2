//! SEIPD v1: CFB-encrypted data ending in a Modification Detection Code (SHA-1 over the
//! random prefix, the plaintext and the MDC packet's header). The last 22 decrypted bytes
//! are the MDC packet: they are withheld, and the reader reports its end only once the MDC
//! matched.

use std::io::{self, Read};

use std::{
    sync::mpsc::{channel, sync_channel, Receiver, SyncSender},
    thread::JoinHandle,
};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::{symmetric::CfbDecryptor, Failure};
use crate::error::Error;

/// Ciphertext read per refill.
const READ: usize = 1 << 18;
/// The MDC packet: 0xD3 0x14 and a 20-byte SHA-1.
const MDC: usize = 22;

/// SHA-1 over the decrypted data on a second core, while this one decrypts, parses and
/// writes: the MDC's hash is the largest single cost of SEIPD v1 (about a third of the time
/// on one core). Each refill's bytes go to a worker through a bounded channel, in buffers
/// that come back for reuse and are wiped when dropped (they hold plaintext).
struct ParallelSha1 {
    to_worker: Option<SyncSender<Zeroizing<Vec<u8>>>>,
    /// In a mutex only to make the reader `Sync`, as sequoia's reader stack wants.
    spare: std::sync::Mutex<Receiver<Zeroizing<Vec<u8>>>>,
    worker: Option<JoinHandle<Sha1>>,
    /// Bytes gathered for the worker: handed over from [`HAND_OVER`] bytes on, so that it
    /// wakes up once per MiB, not once per refill (a wake-up across cores is costly, in a VM
    /// most of all).
    pending: Option<Zeroizing<Vec<u8>>>,
    /// Set once the worker's digest was taken.
    digest: Option<[u8; 20]>,
}

/// See [`ParallelSha1::pending`].
const HAND_OVER: usize = 1 << 20;

impl ParallelSha1 {
    /// `enabled`: `false` hashes nothing (pass 2 of a stream).
    fn new(enabled: bool) -> Self {
        let (to_worker, work) = sync_channel::<Zeroizing<Vec<u8>>>(3);
        let (give_back, spare) = channel();
        let worker = enabled.then(|| {
            std::thread::spawn(move || {
                let mut sha1 = Sha1::new();
                for chunk in work {
                    sha1.update(&chunk[..]);
                    // The buffer goes back for reuse; if nobody takes it, it is wiped.
                    let _ = give_back.send(chunk);
                }
                sha1
            })
        });
        ParallelSha1 {
            to_worker: enabled.then_some(to_worker),
            spare: std::sync::Mutex::new(spare),
            worker,
            pending: None,
            digest: None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        let Some(to_worker) = &self.to_worker else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let mut buf = match self.pending.take() {
            Some(buf) => buf,
            None => {
                let reused = self
                    .spare
                    .lock()
                    .ok()
                    .and_then(|spare| spare.try_recv().ok());
                let mut buf = reused
                    .unwrap_or_else(|| Zeroizing::new(Vec::with_capacity(HAND_OVER + READ + 64)));
                buf.clear();
                buf
            }
        };
        super::push_wiped(&mut buf, data);
        if buf.len() >= HAND_OVER {
            // A worker that is gone (it cannot panic on bytes) leaves the digest unset, and
            // the MDC check then fails: never a false match.
            let _ = to_worker.send(buf);
        } else {
            self.pending = Some(buf);
        }
    }

    /// The digest of everything sent; all zeros if hashing was off or the worker failed
    /// (which no MDC matches by chance in practice, and pass 2 does not check it).
    fn finalize(&mut self) -> [u8; 20] {
        if let Some(d) = self.digest {
            return d;
        }
        if let (Some(buf), Some(to_worker)) = (self.pending.take(), &self.to_worker) {
            let _ = to_worker.send(buf);
        }
        drop(self.to_worker.take());
        let digest = self
            .worker
            .take()
            .and_then(|w| w.join().ok())
            .map(|sha1| {
                let mut out = [0u8; 20];
                out.copy_from_slice(&sha1.finalize());
                out
            })
            .unwrap_or([0u8; 20]);
        self.digest = Some(digest);
        digest
    }
}

pub struct SeipdV1Reader<R> {
    inner: R,
    cfb: CfbDecryptor,
    sha1: ParallelSha1,
    /// `data[start..end]` is decrypted and not yet returned; `data[hashed..]` not yet hashed.
    data: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
    hashed: usize,
    /// Bytes of random prefix (block size + 2) still to skip.
    prefix: usize,
    /// Ciphertext bytes that did not fill a whole block yet.
    carry: [u8; 16],
    carry_len: usize,
    eof: bool,
    authenticated: bool,
    /// An error was returned: every later read fails too. Nothing above may take a retry
    /// for an end of data (which would pass unauthenticated bytes), and sequoia's packet
    /// parser must not be read again after an error (it panics: "body_hash is None").
    poisoned: bool,
    /// `false` in pass 2 of a stream: the same ciphertext already passed the MDC in pass 1
    /// (the input is checked block by block), so SHA-1 is not run again.
    check: bool,
    failure: Failure,
}

impl<R: Read> SeipdV1Reader<R> {
    pub fn new(inner: R, cfb: CfbDecryptor, check: bool, failure: Failure) -> Self {
        let prefix = cfb.block_size() + 2;
        SeipdV1Reader {
            inner,
            cfb,
            sha1: ParallelSha1::new(check),
            data: Zeroizing::new(vec![0; READ + 64]),
            start: 0,
            end: 0,
            hashed: 0,
            prefix,
            carry: [0; 16],
            carry_len: 0,
            eof: false,
            authenticated: false,
            poisoned: false,
            check,
            failure,
        }
    }

    /// Bytes that may be returned now: all but the withheld MDC packet.
    fn ready(&self) -> usize {
        if self.authenticated {
            self.end - self.start
        } else {
            (self.end - self.start).saturating_sub(MDC)
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        // Keep what is not returned yet at the front.
        self.data.copy_within(self.start..self.end, 0);
        self.hashed -= self.start;
        self.end -= self.start;
        self.start = 0;
        let bs = self.cfb.block_size();
        let room_start = self.end;
        self.data[room_start..room_start + self.carry_len]
            .copy_from_slice(&self.carry[..self.carry_len]);
        let mut filled = room_start + self.carry_len;
        let limit = self.data.len();
        let n = loop {
            match self.inner.read(&mut self.data[filled..limit]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        filled += n;
        let fresh = filled - room_start;
        let whole = if n == 0 { fresh } else { fresh / bs * bs };
        self.cfb
            .decrypt(&mut self.data[room_start..room_start + whole]);
        self.carry_len = fresh - whole;
        self.carry[..self.carry_len].copy_from_slice(&self.data[room_start + whole..filled]);
        self.end = room_start + whole;
        if n == 0 {
            self.eof = true;
        }
        // Hash everything but the last 20 bytes (they may be the MDC's own value).
        let hash_to = self.end.saturating_sub(20).max(self.hashed);
        if self.check {
            self.sha1.update(&self.data[self.hashed..hash_to]);
        }
        self.hashed = hash_to;
        // The random prefix is hashed but never returned.
        let skip = self
            .prefix
            .min(self.end.saturating_sub(MDC).saturating_sub(self.start));
        self.start += skip;
        self.prefix -= skip;
        if self.eof {
            self.check_mdc()?;
        }
        Ok(())
    }

    fn check_mdc(&mut self) -> io::Result<()> {
        if self.prefix > 0 || self.end - self.start < MDC {
            return Err(self
                .failure
                .set(Error::BadMessage("the encrypted data is truncated".into())));
        }
        let tail = &self.data[self.end - MDC..self.end];
        let digest = self.sha1.finalize();
        if tail[..2] != [0xD3, 0x14]
            || (self.check && !super::ocb::constant_time_eq(&digest, &tail[2..]))
        {
            return Err(self.failure.set(Error::BadMessage(
                "the modification detection code does not match: the message was \
                 manipulated, truncated, damaged or altered"
                    .into(),
            )));
        }
        self.end -= MDC;
        self.authenticated = true;
        Ok(())
    }
}

impl<R: Read> Read for SeipdV1Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(super::poisoned());
        }
        while self.ready() == 0 {
            if self.eof && self.authenticated {
                return Ok(0);
            }
            if let Err(e) = self.refill() {
                self.poisoned = true;
                return Err(e);
            }
        }
        let n = out.len().min(self.ready());
        out[..n].copy_from_slice(&self.data[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

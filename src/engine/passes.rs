//! One pass over a message (armor, spool tee, the packet walk), and the two passes of a
//! stream: pass 1 authenticates with no output (keeping a small plaintext, so mail needs no
//! second pass), pass 2 decrypts again with the session key from pass 1 and writes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use sequoia_openpgp::{crypto::SessionKey, types::SymmetricAlgorithm, Cert};

use super::{
    armor,
    held::{Held, Kept},
    packets::decrypt_packets,
    source, Facts, Failure, Input, ProgressFn, SessionKeys, Settings, PROGRESS_FROM,
};
use crate::error::{Error, Result};

/// A session key found in pass 1, kept for pass 2.
pub(super) struct Unlocked {
    pub(super) sym: Option<SymmetricAlgorithm>,
    pub(super) key: SessionKey,
}

pub(super) enum Keys<'k> {
    Ask(&'k mut dyn SessionKeys),
    Known(&'k Unlocked),
}

/// One pass over a message.
pub(super) struct Pass<'p> {
    /// Certificates to check signatures against; `None` skips collecting verdicts.
    pub(super) certs: Option<&'p [Cert]>,
    pub(super) facts: &'p mut Facts,
    /// Set once the session key is known (pass 1).
    pub(super) unlocked: Option<Unlocked>,
    /// The binary message is copied here as it is read (spooling a pipe).
    pub(super) tee: Option<(std::fs::File, source::SpoolHasher)>,
    /// Write the inner packet stream, not the literal data ([`Settings::unwrap`]).
    pub(super) unwrap: bool,
    /// Set for an AEAD container when writing to a file: the file is then written on a
    /// thread of its own (SEIPD v1 keeps its second core for SHA-1).
    pub(super) threaded_output: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Set for an AEAD container in pass 1 of a file: the file is then read ahead on a
    /// thread of its own (SEIPD v1 keeps the second core for SHA-1).
    pub(super) read_ahead: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Set once the message inside turns out to be compressed: pass 1 of a stream then
    /// keeps its plaintext sealed ([`super::sealed`]) rather than inflating it twice.
    pub(super) compressed: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Keep the session key in the facts ([`Settings::export_session_key`]).
    pub(super) export_session_key: bool,
}

/// Input buffered for reading packet headers and armor. Smaller than the engine's reads
/// of the encrypted data, which then bypass it (no extra copy of the bulk).
const INPUT_BUFFER: usize = 1 << 16;

/// Reads `input` up to the encrypted container, gets the session key, decrypts, parses the
/// inner message and writes the literal data to `out`. Returns the plaintext length.
pub(super) fn run_pass(
    input: Box<dyn Read + Send + Sync + '_>,
    armored: Option<bool>,
    keys: Keys<'_>,
    pass: &mut Pass<'_>,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    let mut input = BufReader::with_capacity(INPUT_BUFFER, input);
    let armored = match armored {
        Some(a) => a,
        None => looks_armored(&mut input)?,
    };
    let binary: Box<dyn Read + Send + Sync + '_> = if armored {
        let mut dearmor = armor::Dearmor::new(input);
        dearmor.read_headers()?;
        if !dearmor.kind.starts_with("MESSAGE") && !dearmor.kind.starts_with("ARMORED FILE") {
            return Err(Error::NotOpenPgp(format!(
                "the armor holds a PGP {}, not an encrypted message",
                dearmor.kind.trim_end_matches('-')
            )));
        }
        Box::new(dearmor)
    } else {
        Box::new(input)
    };
    let binary: Box<dyn Read + Send + Sync + '_> = match pass.tee.take() {
        Some((spool, hasher)) => Box::new(Tee {
            inner: binary,
            copy: crate::output::Background::for_ciphertext(spool),
            hasher,
            done: false,
            failure: failure.clone(),
        }),
        None => binary,
    };
    let result = decrypt_packets(binary, armored, keys, pass, out, failure);
    // An error any layer recorded fails the pass, even if a layer above swallowed it.
    match (failure.take(), result) {
        (Some(e), _) => Err(e),
        (None, r) => r,
    }
}

/// Armored unless the first byte that is not white space is a packet tag.
fn looks_armored(input: &mut BufReader<Box<dyn Read + Send + Sync + '_>>) -> Result<bool> {
    loop {
        let buf = input
            .fill_buf()
            .map_err(|e| Error::io("cannot read the message", e))?;
        if buf.is_empty() {
            return Err(Error::NotOpenPgp("the input is empty".into()));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => return Ok(buf[i] & 0x80 == 0),
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

/// Copies what is read to a file (the spool of a piped message), written on a thread of its
/// own; at the end of the input everything is on the file, or the read fails.
struct Tee<R> {
    inner: R,
    copy: crate::output::Background,
    /// The spool's block hashes, for pass 2 to check.
    hasher: source::SpoolHasher,
    done: bool,
    failure: Failure,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let spool_error =
            |failure: &Failure, e| failure.set(Error::io("cannot write the spool file", e));
        if n == 0 {
            if !self.done {
                self.done = true;
                self.hasher
                    .finish()
                    .and_then(|()| self.copy.finish())
                    .map_err(|e| spool_error(&self.failure, e))?;
            }
            return Ok(0);
        }
        self.hasher
            .update(&buf[..n])
            .and_then(|()| self.copy.write_all(&buf[..n]))
            .map_err(|e| spool_error(&self.failure, e))?;
        Ok(n)
    }
}

/// Counts what a pass reads and reports it.
struct Counting<R> {
    inner: R,
    phase: &'static str,
    done: u64,
    total: u64,
    next: u64,
    report: Arc<ProgressFn>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done >= self.next || n == 0 {
            (self.report)(self.phase, self.done.min(self.total), self.total);
            self.next = self.done + (self.total / 100).max(1);
        }
        Ok(n)
    }
}

/// `input` counted for the progress report, when there is one to make.
pub(super) fn counted<'r>(
    input: Box<dyn Read + Send + Sync + 'r>,
    phase: &'static str,
    total: Option<u64>,
    settings: &Settings,
) -> Box<dyn Read + Send + Sync + 'r> {
    match (&settings.progress, total) {
        (Some(report), Some(total)) if total >= PROGRESS_FROM => Box::new(Counting {
            inner: input,
            phase,
            done: 0,
            total,
            next: 0,
            report: report.clone(),
        }),
        _ => input,
    }
}

/// Pass 2 of a stream: decrypt again with the key from pass 1, now writing to `out`.
pub(super) fn second_pass(
    input: Box<dyn Read + Send + Sync + '_>,
    armored: Option<bool>,
    mut first: Pass<'_>,
    length: u64,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    let unlocked = first
        .unlocked
        .take()
        .ok_or_else(|| Error::Other("pass 1 ended without a session key".into()))?;
    let mut facts = Facts::default();
    let mut second = Pass {
        certs: None,
        facts: &mut facts,
        unlocked: None,
        tee: None,
        unwrap: first.unwrap,
        threaded_output: None,
        read_ahead: None,
        compressed: None,
        export_session_key: false,
    };
    let n = run_pass(
        input,
        armored,
        Keys::Known(&unlocked),
        &mut second,
        out,
        failure,
    )?;
    same_length(length, n)
}

fn same_length(first: u64, second: u64) -> Result<u64> {
    if first == second {
        Ok(first)
    } else {
        Err(Error::BadMessage(
            "the message changed while it was being decrypted".into(),
        ))
    }
}

/// The two passes of a stream: pass 1 authenticates without output (keeping the plaintext
/// while it is small, so that a message of mail size needs no second pass), pass 2 decrypts
/// again from the re-read file or the spool and writes to `out`.
pub(super) fn two(
    input: Input,
    size: Option<u64>,
    out: &mut dyn Write,
    keys: &mut dyn SessionKeys,
    mut pass: Pass<'_>,
    settings: &Settings,
    failure: &Failure,
) -> Result<u64> {
    // Pass 1 authenticates without output, keeping the plaintext while it is small (or,
    // compressed, sealed on disk).
    let compressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    pass.compressed = Some(compressed.clone());
    let mut held = Held::new(size, compressed, settings.spool_dir.clone());
    // The guard of what pass 2 would read again: the file, or the pipe's spool.
    let (n, guard, again, armored) = match input {
        Input::File(mut file) => {
            let guard = source::Guard::new(&mut file)?;
            let ahead = Arc::new(std::sync::atomic::AtomicBool::new(false));
            pass.read_ahead = Some(ahead.clone());
            let first = counted(guard.record(&file, ahead)?, "checking", size, settings);
            let n = run_pass(first, None, Keys::Ask(keys), &mut pass, &mut held, failure)?;
            (n, guard, file, None)
        }
        Input::Stream(stream) => {
            let mut spool = source::spool_file(settings.spool_dir.as_deref())?;
            // The spool is checked in pass 2 as a file read again is: a block
            // changed on disk meanwhile is refused before it is decrypted.
            let guard = source::Guard::new(&mut spool)?;
            pass.tee = Some((
                spool
                    .try_clone()
                    .map_err(|e| Error::io("cannot use the spool file", e))?,
                guard.writer_side()?,
            ));
            let n = run_pass(stream, None, Keys::Ask(keys), &mut pass, &mut held, failure)?;
            (n, guard, spool, Some(false))
        }
    };
    match held.kept() {
        Kept::Memory(plaintext) => {
            out.write_all(&plaintext)
                .map_err(|e| Error::io("cannot write the plaintext", e))?;
            Ok(n)
        }
        Kept::Sealed(sealed) => same_length(n, sealed.copy_to(out)?),
        Kept::Nothing => {
            // Read again (a file read ahead on a thread from here on) only when needed.
            let share = pass.facts.aead_algo.is_none();
            let second = guard.verify(&again, failure.clone(), share)?;
            let second = counted(second, "writing", size, settings);
            second_pass(second, armored, pass, n, out, failure)
        }
    }
}

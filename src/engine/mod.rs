//! The decryption engine: any message size in bounded memory, and no plaintext released
//! before the whole message authenticated.
//!
//! The outer framing is ours ([`framing`]: packet headers, partial lengths; each session key
//! packet is handed to sequoia whole). Sequoia parses the PKESKs and SKESKs and, inside the
//! encryption, signatures and whatever is not the common case. The encryption layer itself is
//! ours ([`seipd`], [`aead`]): batched CFB with SHA-NI SHA-1 for SEIPD v1, batched OCB for
//! SEIPD v2 and GnuPG's tag-20 packet, and every cipher old archives use. Armor is removed by
//! [`armor`], in SIMD.
//!
//! Where plaintext goes decides how many passes there are:
//! - memory (mail) and `-o FILE` (an unnamed temporary file linked into place at the end):
//!   one pass; nothing is visible before authentication.
//! - a stream (stdout, a FIFO, a device): pass 1 decrypts and authenticates without output,
//!   pass 2 decrypts again and writes. The card is asked once; the session key is kept in
//!   protected memory between the passes. A regular input file is read twice and every
//!   1 MiB of it is checked in pass 2 against a keyed hash taken in pass 1 ([`source`]); any
//!   other input is spooled (ciphertext only, mode 0600, unnamed) during pass 1.

//!
//! Inside: `passes` runs one pass and the two of a stream, `packets` walks the packets up to
//! the encryption and opens it, `inner` reads the message inside and writes it out: a lone
//! literal data packet (`literal`) or one inside ZIP or ZLIB compression (`compressed`)
//! directly, anything else through sequoia (`reframe` mending its framing first).

pub mod aead;
pub mod armor;
mod compressed;
pub mod framing;
mod held;
mod inner;
mod literal;
pub mod memory;
pub mod ocb;
mod packets;
mod passes;
mod reframe;
mod sealed;
pub mod seipd;
pub mod source;
pub mod symmetric;

use std::{
    io::{self, Read, Write},
    sync::{Arc, Mutex},
};

use sequoia_openpgp::{
    crypto::SessionKey,
    packet::{PKESK, SKESK},
    types::SymmetricAlgorithm,
    Cert,
};
use zeroize::Zeroizing;

pub use held::push_wiped;
pub(crate) use inner::poisoned;
use passes::{counted, run_pass, Keys, Pass};

use crate::{
    error::{Error, Result},
    verify::SignatureCheck,
};

/// The first error an engine layer hit, kept in full: sequoia turns the `io::Error`s our
/// readers return into strings, and the exact error decides the exit code and hint.
#[derive(Clone, Default)]
pub struct Failure(Arc<Mutex<Option<Error>>>);

impl Failure {
    /// Records `e` (the first one wins) and returns an `io::Error` to hand up the stack.
    pub fn set(&self, e: Error) -> io::Error {
        let text = e.to_string();
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
        io::Error::new(io::ErrorKind::InvalidData, text)
    }

    pub fn take(&self) -> Option<Error> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Where the session key comes from: the card layer implements this.
pub trait SessionKeys {
    /// Unwraps a session key from one of `pkesks`. `fits` tells whether a candidate suits
    /// the encrypted container (algorithm and key length), so that a wrong key for a
    /// hidden recipient is passed over.
    /// `sym` is the container's algorithm where the container names it (SEIPD v2), for
    /// PKESKs that do not carry one.
    fn unwrap(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym: Option<SymmetricAlgorithm>,
        fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> Result<(Option<SymmetricAlgorithm>, SessionKey)>;
}

/// What decryption found, for status lines, diagnostics and `inspect`.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Symmetric algorithm id, and the AEAD algorithm id for AEAD containers.
    pub sym_algo: Option<u8>,
    pub aead_algo: Option<u8>,
    /// The container is GnuPG's OCB Encrypted Data packet (tag 20).
    pub librepgp: bool,
    /// Literal data packet: format byte, date (seconds), file name.
    pub literal: Option<(u8, u32, Vec<u8>)>,
    pub signatures: Vec<SignatureCheck>,
    /// The cipher is old; this says which and why.
    pub weak_cipher: Option<&'static str>,
    /// The compression algorithm id of the first compressed data packet inside.
    pub compression: Option<u8>,
    /// Packets passed over, and why (said with `-v`).
    pub skipped: Vec<String>,
    /// With [`Settings::export_session_key`]: the cipher and the session key, once the
    /// message authenticated.
    pub session_key: Option<(u8, SessionKey)>,
}

/// Where plaintext goes.
pub enum Dest<'d> {
    /// Collected in memory (mail, tests), at most the limit (bytes): one pass; the caller
    /// drops it on error.
    Memory(&'d mut Zeroizing<Vec<u8>>, u64),
    /// A new or regular file: one pass into an unnamed file linked into place at the end.
    File(crate::output::PendingFile),
    /// A stream: two passes, output only in the second.
    Stream(&'d mut dyn Write),
    /// Nowhere: one pass that authenticates and measures (`inspect --decrypt`), in bounded
    /// memory at any size.
    Discard,
}

/// The message to decrypt.
pub enum Input {
    /// A regular file, read again in pass 2 under a keyed check of every block.
    File(std::fs::File),
    /// Anything else; spooled when two passes are needed.
    Stream(Box<dyn Read + Send + Sync>),
}

impl Input {
    /// A file or standard input (`None`), as a re-readable file where it is one.
    pub fn open(path: Option<&std::path::Path>) -> Result<Input> {
        use std::os::fd::AsFd;
        let file = match path {
            Some(p) => std::fs::File::open(p)
                .map_err(|e| Error::io(format!("cannot open {}", p.display()), e))?,
            None => {
                let fd = io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("cannot read standard input", e))?;
                std::fs::File::from(fd)
            }
        };
        let regular = file
            .metadata()
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        Ok(if regular {
            Input::File(file)
        } else {
            crate::paths::widen_pipe(&file);
            Input::Stream(Box::new(file))
        })
    }
}

/// Engine settings from the command line.
#[derive(Default, Clone)]
pub struct Settings {
    /// Where a piped message is spooled for two passes (`$TMPDIR` when `None`).
    pub spool_dir: Option<std::path::PathBuf>,
    /// Certificates to check signatures against.
    pub signer_certs: Vec<Cert>,
    /// Write the decrypted packet stream (compressed, literal, signature packets) instead
    /// of the literal data: gpg's `--unwrap`. It is still released only once authenticated.
    pub unwrap: bool,
    /// Told how far each pass has read a file input of more than [`PROGRESS_FROM`] bytes.
    pub progress: Option<Arc<ProgressFn>>,
    /// Keep the session key in [`Facts::session_key`] (gpg's `--show-session-key`).
    pub export_session_key: bool,
}

/// `report(phase, bytes read, total)`: phase is "decrypting" (one pass), or "checking" then
/// "writing" (the two passes of a stream). Called about every 1 % and once at the end.
pub type ProgressFn = dyn Fn(&'static str, u64, u64) + Send + Sync;

/// Inputs smaller than this finish before a progress display would help.
pub const PROGRESS_FROM: u64 = 64 << 20;

/// Decrypts `input` to `dest`; returns the plaintext length. Nothing reaches `dest` visibly
/// unless the whole message authenticated.
pub fn decrypt(
    input: Input,
    dest: Dest<'_>,
    keys: &mut dyn SessionKeys,
    settings: &Settings,
    facts: &mut Facts,
) -> Result<u64> {
    let certs = Some(&settings.signer_certs[..]);
    let mut pass = Pass {
        certs,
        facts,
        unlocked: None,
        tee: None,
        unwrap: settings.unwrap,
        threaded_output: None,
        read_ahead: None,
        compressed: None,
        export_session_key: settings.export_session_key,
    };
    let size = match &input {
        Input::File(f) => f.metadata().ok().map(|m| m.len()),
        Input::Stream(_) => None,
    };
    let reader = |input: Input| -> Box<dyn Read + Send + Sync> {
        match input {
            Input::File(f) => counted(Box::new(f), "decrypting", size, settings),
            Input::Stream(s) => s,
        }
    };
    let failure = Failure::default();
    match dest {
        Dest::Memory(buf, limit) => {
            let mut collector = memory::Collector::new(buf, limit);
            let n = run_pass(
                reader(input),
                None,
                Keys::Ask(keys),
                &mut pass,
                &mut collector,
                &failure,
            )?;
            collector.finish();
            Ok(n)
        }
        Dest::Discard => run_pass(
            reader(input),
            None,
            Keys::Ask(keys),
            &mut pass,
            &mut io::sink(),
            &failure,
        ),
        Dest::File(pending) => {
            let threaded = Arc::new(std::sync::atomic::AtomicBool::new(false));
            pass.threaded_output = Some(threaded.clone());
            let n = {
                let mut w = pending.writer_for(threaded);
                let n = run_pass(
                    reader(input),
                    None,
                    Keys::Ask(keys),
                    &mut pass,
                    &mut w,
                    &failure,
                )?;
                w.flush()
                    .map_err(|e| Error::io("cannot write the plaintext", e))?;
                n
            };
            pending.commit()?;
            Ok(n)
        }
        Dest::Stream(out) => passes::two(input, size, out, keys, pass, settings, &failure),
    }
}

//! The decryption engine: any message size in bounded memory, and no plaintext released
//! before the whole message authenticated.
//!
//! The outer framing is ours ([`framing`]: packet headers, partial lengths; each session key
//! packet is handed to sequoia whole). Sequoia parses the PKESKs and SKESKs and, inside the
//! encryption, the compressed, literal and signature packets. The encryption layer itself is
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

pub mod aead;
pub mod armor;
pub mod framing;
pub mod memory;
pub mod ocb;
pub mod seipd;
pub mod source;
pub mod symmetric;

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    sync::{Arc, Mutex},
};

use sequoia_openpgp::{
    self as openpgp,
    crypto::SessionKey,
    packet::{Packet, Tag, PKESK, SKESK},
    parse::{
        stream::{MessageStructure, VerificationHelper, VerifierBuilder},
        PacketParser, Parse,
    },
    policy::StandardPolicy,
    types::SymmetricAlgorithm,
    Cert, KeyHandle,
};

use zeroize::{Zeroize, Zeroizing};

use crate::{
    error::{Error, Result},
    verify::{self, SignatureCheck},
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
}

/// A session key found in pass 1, kept for pass 2.
struct Unlocked {
    sym: Option<SymmetricAlgorithm>,
    key: SessionKey,
}

enum Keys<'k> {
    Ask(&'k mut dyn SessionKeys),
    Known(&'k Unlocked),
}

/// One pass over a message.
struct Pass<'p> {
    /// Certificates to check signatures against; `None` skips collecting verdicts.
    certs: Option<&'p [Cert]>,
    facts: &'p mut Facts,
    /// Set once the session key is known (pass 1).
    unlocked: Option<Unlocked>,
    /// The binary message is copied here as it is read (spooling a pipe).
    tee: Option<(std::fs::File, source::SpoolHasher)>,
    /// Write the inner packet stream, not the literal data ([`Settings::unwrap`]).
    unwrap: bool,
    /// Set for an AEAD container when writing to a file: the file is then written on a
    /// thread of its own (SEIPD v1 keeps its second core for SHA-1).
    threaded_output: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Input buffered for reading packet headers and armor. Smaller than the engine's reads
/// of the encrypted data, which then bypass it (no extra copy of the bulk).
const INPUT_BUFFER: usize = 1 << 16;
/// Literal data sequoia's verifier holds back until signatures are checked. Authentication
/// is ours, so this needs no size of its own; but at 64 KiB the verifier's reader grew its
/// buffers with the message (measured: 900 MiB peak for 256 MiB), at 1 MiB it stays flat.
const VERIFIER_BUFFER: usize = 1 << 20;

/// Reads `input` up to the encrypted container, gets the session key, decrypts, parses the
/// inner message and writes the literal data to `out`. Returns the plaintext length.
fn run_pass(
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
            copy: crate::output::Background::spawn(spool),
            hasher,
            done: false,
            failure: failure.clone(),
        }),
        None => binary,
    };
    let binary = crate::lenient::MendedPkesks::new(binary).map_err(|e| {
        failure
            .take()
            .unwrap_or_else(|| Error::io("cannot read the message", e))
    })?;
    let result = decrypt_packets(Box::new(binary), armored, keys, pass, out, failure);
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

fn parse_error(armored: bool, e: &anyhow::Error) -> Error {
    let text = anyhow_chain(e);
    if !armored && text.contains("Invalid CTB") {
        Error::NotOpenPgp("no OpenPGP data found".into())
    } else {
        malformed_or_damaged(text)
    }
}

/// Sequoia's words for a message that breaks the format's grammar ("Malformed ...") are
/// that, not damage; anything else it reports is.
fn malformed_or_damaged(text: String) -> Error {
    if text.contains("Malformed") {
        Error::Malformed(text)
    } else {
        Error::BadMessage(text)
    }
}

fn anyhow_chain(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.join(": ")
}

/// The encrypted container and what its header says.
enum Container {
    SeipdV1,
    Aead(aead::Params),
}

/// Session key packets larger than this are refused (an RSA-16384 PKESK is 2 KiB).
const MAX_SESSION_KEY_PACKET: u64 = 1 << 16;

fn decrypt_packets(
    mut binary: Box<dyn Read + Send + Sync + '_>,
    armored: bool,
    keys: Keys<'_>,
    pass: &mut Pass<'_>,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    let read_error = |e: io::Error| {
        failure
            .take()
            .unwrap_or_else(|| Error::io("cannot read the message", e))
    };
    let mut pkesks = Vec::new();
    let mut skesks = Vec::new();
    let mut first = true;
    let (tag, length) = loop {
        let header = match framing::read_header(&mut binary).map_err(read_error)? {
            None => {
                return Err(Error::BadMessage(
                    if pkesks.is_empty() && skesks.is_empty() {
                        "the message holds no encrypted data".into()
                    } else {
                        "the message ends before its encrypted data".into()
                    },
                ));
            }
            Some(Err(framing::HeaderError::NotAPacket)) if first && !armored => {
                return Err(Error::NotOpenPgp("no OpenPGP data found".into()));
            }
            Some(Err(framing::HeaderError::NotAPacket)) => {
                return Err(Error::Malformed(
                    "Malformed packet header: not an OpenPGP packet tag".into(),
                ));
            }
            Some(Err(framing::HeaderError::Truncated)) => {
                return Err(Error::BadMessage(
                    "the message is truncated inside a packet header".into(),
                ));
            }
            Some(Ok(h)) => h,
        };
        first = false;
        match header.tag {
            // SEIP, OCB/AEAD Encrypted Data (tag 20), SED.
            18 | 20 | 9 if pkesks.is_empty() && skesks.is_empty() => {
                if let Some(why) = pass.facts.skipped.first() {
                    return Err(Error::Unsupported(format!(
                        "no encrypted session key this program can read: {why}"
                    )));
                }
                break (header.tag, header.length);
            }
            18 | 20 | 9 => break (header.tag, header.length),
            // PKESK, SKESK, Marker, Padding: small, whole packets.
            1 | 3 | 10 | 21 => {
                let framing::Length::Full(len) = header.length else {
                    return Err(Error::BadMessage(format!(
                        "a {} packet without a definite length",
                        Tag::from(header.tag)
                    )));
                };
                if len > MAX_SESSION_KEY_PACKET {
                    return Err(Error::BadMessage(format!(
                        "a {} packet of {len} bytes",
                        Tag::from(header.tag)
                    )));
                }
                let mut body = Vec::with_capacity(len as usize);
                (&mut binary)
                    .take(len)
                    .read_to_end(&mut body)
                    .map_err(read_error)?;
                if body.len() as u64 != len {
                    return Err(Error::BadMessage(format!(
                        "the message is truncated inside a {} packet",
                        Tag::from(header.tag)
                    )));
                }
                if !matches!(header.tag, 1 | 3) {
                    continue;
                }
                if header.tag == 1 {
                    if let Some(why) = unknown_pkesk(&body) {
                        // RFC 9580: a session key packet of an unknown version or algorithm
                        // is skipped, and another one may fit the card.
                        if !pass.facts.skipped.contains(&why) {
                            pass.facts.skipped.push(why);
                        }
                        continue;
                    }
                }
                let packet = Packet::from_bytes(&crate::lenient::packet(header.tag, &body))
                    .map_err(|e| parse_error(armored, &e))?;
                match packet {
                    Packet::PKESK(p) => pkesks.push(p),
                    Packet::SKESK(s) => skesks.push(s),
                    // A password packet of a version this program cannot read does not
                    // stand in the way of a card's PKESK.
                    Packet::Unknown(u) if u.tag() == Tag::SKESK => {}
                    Packet::Unknown(u) => {
                        return Err(Error::BadMessage(format!(
                            "an encrypted session key cannot be read: {}",
                            u.error()
                        )));
                    }
                    other => {
                        return Err(Error::BadMessage(format!(
                            "a {} packet where encrypted data was expected",
                            other.tag()
                        )));
                    }
                }
            }
            // Literal data, compressed data, one-pass signature: a message not encrypted.
            11 | 8 | 4 => return Err(Error::Unencrypted),
            other => {
                return Err(Error::BadMessage(format!(
                    "a {} packet where encrypted data was expected",
                    Tag::from(other)
                )));
            }
        }
    };
    let mut body = framing::Body::new(&mut binary, length);
    let container = read_container_header(tag, &mut body)?;
    let unlocked;
    let asked = matches!(keys, Keys::Ask(_));
    let unlocked = match keys {
        Keys::Known(k) => k,
        Keys::Ask(source) => {
            let mut fits = |algo: Option<SymmetricAlgorithm>, key: &SessionKey| {
                key_fits(&container, algo, key)
            };
            let hint = match &container {
                Container::Aead(p) if matches!(p.container, aead::Container::SeipdV2 { .. }) => {
                    Some(SymmetricAlgorithm::from(p.sym))
                }
                _ => None,
            };
            let (sym, key) = source.unwrap(&pkesks, &skesks, hint, &mut fits)?;
            unlocked = Unlocked { sym, key };
            &unlocked
        }
    };
    if let (Container::Aead(_), Some(flag)) = (&container, &pass.threaded_output) {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let facts = &mut *pass.facts;
    let decrypted: Box<dyn Read + Send + Sync + '_> = match &container {
        Container::SeipdV1 => {
            let sym = unlocked.sym.map(u8::from).unwrap_or(0);
            let cipher = symmetric::BlockCipher::new(sym, &unlocked.key).ok_or_else(|| {
                Error::Unsupported(format!(
                    "the message is encrypted with {}",
                    symmetric::name(sym)
                ))
            })?;
            facts.sym_algo = Some(sym);
            facts.weak_cipher = symmetric::weakness(sym);
            Box::new(seipd::SeipdV1Reader::new(
                &mut body,
                symmetric::CfbDecryptor::new(cipher),
                asked,
                failure.clone(),
            ))
        }
        Container::Aead(params) => {
            facts.sym_algo = Some(params.sym);
            facts.aead_algo = Some(params.aead);
            facts.librepgp = matches!(params.container, aead::Container::Librepgp { .. });
            Box::new(aead::AeadReader::new(
                &mut body,
                params,
                &unlocked.key,
                failure.clone(),
            )?)
        }
    };
    let written = if pass.unwrap {
        copy_authenticated(decrypted, out, failure)?
    } else {
        inner_message(decrypted, pass.certs, facts, out, failure)?
    };
    // One message per input: a second one glued on could be shown as if it were part of the
    // first (RFC 9580's message grammar has one encrypted container).
    match framing::read_header(body.rest()).map_err(read_error)? {
        None => {}
        Some(Ok(next)) => {
            return Err(Error::BadMessage(format!(
                "a {} packet follows the encrypted data: the input is not one OpenPGP message",
                Tag::from(next.tag)
            )));
        }
        Some(Err(_)) => {
            return Err(Error::BadMessage(
                "data that is not OpenPGP follows the encrypted data".into(),
            ));
        }
    }
    if asked {
        pass.unlocked = Some(Unlocked {
            sym: unlocked.sym,
            key: unlocked.key.clone(),
        });
    }
    Ok(written)
}

/// Why the PKESK `body` is passed over, if it is: a version other than 3 and 6, or a public
/// key algorithm that RFC 9580 does not define.
fn unknown_pkesk(body: &[u8]) -> Option<String> {
    let algo = match *body.first()? {
        3 => *body.get(9)?,
        6 => {
            let named = usize::from(*body.get(1)?);
            *body.get(2 + named)?
        }
        version => {
            return Some(format!(
                "an encrypted session key of version {version}, which this program does not \
                 know, was passed over"
            ))
        }
    };
    // RSA (1-3), Elgamal (16), ECDH (18), X25519 (25), X448 (26).
    (!matches!(algo, 1..=3 | 16 | 18 | 25 | 26)).then(|| {
        format!(
            "an encrypted session key for public key algorithm {algo}, which this program \
             does not know, was passed over"
        )
    })
}

/// Whether a session key unwrapped from a PKESK can be the key of `container`.
fn key_fits(container: &Container, algo: Option<SymmetricAlgorithm>, key: &SessionKey) -> bool {
    match container {
        Container::SeipdV1 => algo
            .and_then(|a| symmetric::key_size(u8::from(a)))
            .is_some_and(|size| size == key.len()),
        Container::Aead(params) => {
            algo.is_none_or(|a| u8::from(a) == params.sym)
                && symmetric::key_size(params.sym) == Some(key.len())
        }
    }
}

/// Reads the container's version and parameters from the start of its body.
fn read_container_header(tag: u8, body: &mut dyn Read) -> Result<Container> {
    let truncated = |_| Error::BadMessage("the encrypted data packet is truncated".into());
    match tag {
        9 => Err(Error::NoIntegrity),
        18 => {
            let mut version = [0u8; 1];
            body.read_exact(&mut version).map_err(truncated)?;
            match version[0] {
                1 => Ok(Container::SeipdV1),
                2 => {
                    let mut head = [0u8; 35];
                    body.read_exact(&mut head).map_err(truncated)?;
                    let [sym, aead, chunk_octet, ..] = head;
                    let mut salt = [0u8; 32];
                    salt.copy_from_slice(&head[3..]);
                    Ok(Container::Aead(aead::Params {
                        sym,
                        aead,
                        chunk_octet,
                        container: aead::Container::SeipdV2 { salt },
                    }))
                }
                v => Err(Error::Unsupported(format!(
                    "version {v} of the encrypted data packet"
                ))),
            }
        }
        _ => {
            let mut head = [0u8; 4];
            body.read_exact(&mut head).map_err(truncated)?;
            let [version, sym, aead, chunk_octet] = head;
            if version != 1 {
                return Err(Error::Unsupported(format!(
                    "version {version} of the OCB/AEAD Encrypted Data packet"
                )));
            }
            let nonce_len = aead::nonce_len(aead).ok_or_else(|| {
                Error::Unsupported(format!("the AEAD mode {}", aead::aead_name(aead)))
            })?;
            let mut iv = vec![0u8; nonce_len];
            body.read_exact(&mut iv).map_err(truncated)?;
            Ok(Container::Aead(aead::Params {
                sym,
                aead,
                chunk_octet,
                container: aead::Container::Librepgp { iv },
            }))
        }
    }
}

/// The packets inside the encryption: decompression, literal data, signatures. Everything is
/// read to the end so that the MDC or final tag is checked before this returns.
fn inner_message(
    mut decrypted: Box<dyn Read + Send + Sync + '_>,
    certs: Option<&[Cert]>,
    facts: &mut Facts,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    let policy = StandardPolicy::new();
    let helper = InnerHelper { certs, facts };
    let inner_error = |e: anyhow::Error| {
        failure
            .take()
            .unwrap_or_else(|| malformed_or_damaged(anyhow_chain(&e)))
    };
    let mut decrypted = crate::lenient::Reframed::new(&mut decrypted);
    let mut verifier = VerifierBuilder::from_reader(&mut decrypted)
        .map(|b| b.buffer_size(VERIFIER_BUFFER).mapping(false))
        .and_then(|b| b.with_policy(&policy, None, helper))
        .map_err(inner_error)?;
    let written = pump(&mut verifier, out, failure, "cannot write the plaintext")?;
    if !verifier.message_processed() {
        return Err(Error::BadMessage("the message ended early".into()));
    }
    drop(verifier);
    // Anything after the inner message still has to pass the MDC / final tag.
    io::copy(&mut decrypted, &mut io::sink()).map_err(|e| {
        failure
            .take()
            .unwrap_or_else(|| malformed_or_damaged(io_error_chain(&e)))
    })?;
    Ok(written)
}

/// The decrypted packet stream as it is, to its end (so the MDC or final tag is checked).
fn copy_authenticated(
    mut decrypted: Box<dyn Read + Send + Sync + '_>,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    pump(
        &mut decrypted,
        out,
        failure,
        "cannot write the decrypted data",
    )
}

/// Copies `from` to `out` to its end through a buffer that is wiped afterwards; a read
/// error is the one a layer recorded, else what sequoia said.
fn pump(from: &mut dyn Read, out: &mut dyn Write, failure: &Failure, writing: &str) -> Result<u64> {
    let mut buf = Zeroizing::new(vec![0u8; 1 << 18]);
    let mut written = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(failure
                    .take()
                    .unwrap_or_else(|| malformed_or_damaged(io_error_chain(&e))))
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| match memory::exceeded(&e) {
                Some(limit) => Error::TooLarge { limit },
                None => Error::io(writing, e),
            })?;
        written += n as u64;
    }
    Ok(written)
}

/// What a decrypting reader returns after it failed once.
pub(crate) fn poisoned() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the encrypted data failed to decrypt or authenticate",
    )
}

pub(crate) fn io_error_chain(e: &io::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

struct InnerHelper<'h> {
    certs: Option<&'h [Cert]>,
    facts: &'h mut Facts,
}

impl VerificationHelper for InnerHelper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self
            .certs
            .map(|certs| verify::certs_for(certs, ids))
            .unwrap_or_default())
    }

    /// Records every verdict and accepts the message whatever they are: authentication
    /// comes from decryption, and a bad signature is reported, never allowed to hide text.
    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        if self.certs.is_some() {
            verify::collect(structure, &mut self.facts.signatures);
        }
        Ok(())
    }

    fn inspect(&mut self, pp: &PacketParser<'_>) -> openpgp::Result<()> {
        if let Packet::CompressedData(c) = &pp.packet {
            self.facts.compression.get_or_insert(u8::from(c.algo()));
        }
        if let Packet::Literal(l) = &pp.packet {
            let date = l.date().map_or(0, |d| crate::time::to_secs(d) as u32);
            self.facts.literal = Some((
                u8::from(l.format()),
                date,
                l.filename().unwrap_or_default().to_vec(),
            ));
        }
        Ok(())
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
}

/// `report(phase, bytes read, total)`: phase is "decrypting" (one pass), or "checking" then
/// "writing" (the two passes of a stream). Called about every 1 % and once at the end.
pub type ProgressFn = dyn Fn(&'static str, u64, u64) + Send + Sync;

/// Inputs smaller than this finish before a progress display would help.
pub const PROGRESS_FROM: u64 = 64 << 20;

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
fn counted<'r>(
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
        Dest::Stream(out) => {
            // Pass 1 authenticates without output. Its plaintext is kept while it is small,
            // so that a message of mail size needs no second pass.
            let mut held = Held::default();
            let (n, second, armored): (_, Box<dyn Read + Send + Sync>, _) = match input {
                Input::File(mut file) => {
                    let guard = source::Guard::new(&mut file)?;
                    let first = counted(Box::new(guard.record(&file)?), "checking", size, settings);
                    let n = run_pass(first, None, Keys::Ask(keys), &mut pass, &mut held, &failure)?;
                    let second = Box::new(guard.verify(&file, failure.clone())?);
                    (n, counted(second, "writing", size, settings), None)
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
                    let n = run_pass(
                        stream,
                        None,
                        Keys::Ask(keys),
                        &mut pass,
                        &mut held,
                        &failure,
                    )?;
                    (n, guard.verify(&spool, failure.clone())?, Some(false))
                }
            };
            if !held.overflowed {
                out.write_all(&held.plaintext)
                    .map_err(|e| Error::io("cannot write the plaintext", e))?;
                return Ok(n);
            }
            drop(held);
            second_pass(second, armored, pass, n, out, &failure)
        }
    }
}

/// Plaintext held in pass 1 of a stream, up to this size.
const HELD: usize = 8 << 20;

/// Pass 1's output for a stream: the plaintext while it stays within [`HELD`] bytes, then
/// nothing (it is wiped, and pass 2 will write it).
#[derive(Default)]
struct Held {
    plaintext: Zeroizing<Vec<u8>>,
    overflowed: bool,
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

impl Write for Held {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.overflowed {
            let needed = self.plaintext.len() + data.len();
            if needed <= HELD {
                push_wiped(&mut self.plaintext, data);
            } else {
                self.overflowed = true;
                self.plaintext.zeroize();
                *self.plaintext = Vec::new();
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pass 2 of a stream: decrypt again with the key from pass 1, now writing to `out`.
fn second_pass(
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

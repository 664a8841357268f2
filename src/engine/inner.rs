//! Inside the encryption: decompression, literal data and signatures parsed by sequoia's
//! verifier (which only reports signatures; authentication is the container's), and the
//! copy to the destination through a buffer that is wiped.

use std::io::{self, Read, Write};

use sequoia_openpgp::{
    self as openpgp,
    packet::Packet,
    parse::{
        stream::{MessageStructure, VerificationHelper, VerifierBuilder},
        PacketParser, Parse,
    },
    policy::StandardPolicy,
    Cert, KeyHandle,
};
use zeroize::Zeroizing;

use super::{
    compressed, literal, memory,
    packets::{anyhow_chain, malformed_or_damaged},
    Facts, Failure,
};
use crate::{
    error::{Error, Result},
    verify,
};

/// Literal data sequoia's verifier holds back until signatures are checked. Authentication
/// is ours, so this needs no size of its own; but at 64 KiB the verifier's reader grew its
/// buffers with the message (measured: 900 MiB peak for 256 MiB), at 1 MiB it stays flat.
const VERIFIER_BUFFER: usize = 1 << 20;

/// The packets inside the encryption: decompression, literal data, signatures. Everything is
/// read to the end so that the MDC or final tag is checked before this returns.
pub(super) fn inner_message(
    mut decrypted: Box<dyn Read + Send + Sync + '_>,
    certs: Option<&[Cert]>,
    facts: &mut Facts,
    compressed_flag: Option<&std::sync::atomic::AtomicBool>,
    out: &mut dyn Write,
    failure: &Failure,
) -> Result<u64> {
    let mut first = [0u8; 1];
    let got = loop {
        match decrypted.read(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(failure
                    .take()
                    .unwrap_or_else(|| malformed_or_damaged(io_error_chain(&e))))
            }
            Ok(n) => break n,
        }
    };
    let mut decrypted: Box<dyn Read + Send + Sync + '_> =
        Box::new(io::Cursor::new(first).take(got as u64).chain(decrypted));
    if got == 1 && literal::starts_literal(first[0]) {
        return literal::then_drain(&mut decrypted, failure, |stream| {
            literal::literal_message(stream, facts, out, |body, out| {
                pump(body, out, failure, "cannot write the plaintext")
            })
        });
    }
    if got == 1 && compressed::starts_compressed(first[0]) {
        if let Some(flag) = compressed_flag {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let peeked = compressed::peek(&mut decrypted);
        if let Some(algorithm) = peeked.algorithm {
            facts.compression.get_or_insert(algorithm);
        }
        decrypted = Box::new(io::Cursor::new(peeked.replay).chain(decrypted));
        if peeked.literal_inside {
            return literal::then_drain(&mut decrypted, failure, |stream| {
                compressed::read_packet(stream, |inflated| {
                    literal::literal_message(inflated, facts, out, |body, out| {
                        pump(body, out, failure, "cannot write the plaintext")
                    })
                })
            });
        }
    }
    let policy = StandardPolicy::new();
    let helper = InnerHelper { certs, facts };
    let inner_error = |e: anyhow::Error| {
        failure
            .take()
            .unwrap_or_else(|| malformed_or_damaged(anyhow_chain(&e)))
    };
    let mut decrypted = super::reframe::Reframed::new(&mut decrypted);
    let parsed = (|| {
        let mut verifier = VerifierBuilder::from_reader(&mut decrypted)
            .map(|b| b.buffer_size(VERIFIER_BUFFER).mapping(false))
            .and_then(|b| b.with_policy(&policy, None, helper))
            .map_err(inner_error)?;
        let written = pump(&mut verifier, out, failure, "cannot write the plaintext")?;
        if !verifier.message_processed() {
            return Err(Error::BadMessage("the message ended early".into()));
        }
        Ok(written)
    })();
    // The rest still has to pass the MDC / final tag, also when the packets inside could not
    // be parsed: garbage from altered ciphertext is damage, not a malformed message.
    let drained = io::copy(&mut decrypted, &mut io::sink());
    match parsed {
        Ok(written) => drained.map(|_| written).map_err(|e| {
            failure
                .take()
                .unwrap_or_else(|| malformed_or_damaged(io_error_chain(&e)))
        }),
        // What the decryption layer found (the MDC or a tag failed) explains the parse error.
        Err(e) => Err(match drained {
            Err(_) => failure.take().unwrap_or(e),
            Ok(_) => e,
        }),
    }
}

/// The decrypted packet stream as it is, to its end (so the MDC or final tag is checked).
pub(super) fn copy_authenticated(
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

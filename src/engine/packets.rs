//! The packet walk up to the encryption: session key packets (passed over where RFC 9580
//! says so), the container's header, and which session key fits it; then the container
//! opened for the inner message. Sequoia's parse errors are worded here as malformed or
//! damaged.

use std::io::{self, Read, Write};

use sequoia_openpgp::{
    crypto::SessionKey,
    packet::{Packet, Tag, PKESK, SKESK},
    parse::Parse,
    types::SymmetricAlgorithm,
};

use super::{
    aead, framing,
    inner::{copy_authenticated, inner_message},
    passes::{Keys, Pass, Unlocked},
    seipd, symmetric, Failure, SessionKeys,
};
use crate::error::{Error, Result};

pub(super) fn parse_error(armored: bool, e: &anyhow::Error) -> Error {
    let text = anyhow_chain(e);
    if !armored && text.contains("Invalid CTB") {
        Error::NotOpenPgp("no OpenPGP data found".into())
    } else {
        malformed_or_damaged(text)
    }
}

/// Sequoia's words for a message that breaks the format's grammar ("Malformed ...") are
/// that, not damage; anything else it reports is.
pub(super) fn malformed_or_damaged(text: String) -> Error {
    if text.contains("Malformed") {
        Error::Malformed(text)
    } else {
        Error::BadMessage(text)
    }
}

pub(super) fn anyhow_chain(e: &anyhow::Error) -> String {
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

/// The packets before the encryption, as read.
#[derive(Default)]
struct SessionKeyPackets {
    pkesks: Vec<PKESK>,
    skesks: Vec<SKESK>,
    /// Passed over, and why.
    skipped: Vec<String>,
}

/// Walks the message in `binary` (after armor): the session key packets, the container, the
/// inner message written to `out`, and nothing after it. Returns the plaintext length.
pub(super) fn decrypt_packets(
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
    let mut found = SessionKeyPackets::default();
    let (tag, length) = read_session_keys(&mut binary, armored, &read_error, &mut found)?;
    for why in found.skipped.drain(..) {
        if !pass.facts.skipped.contains(&why) {
            pass.facts.skipped.push(why);
        }
    }
    let mut body = framing::Body::new(&mut binary, length);
    let container = read_container_header(tag, &mut body)?;
    let asked = matches!(keys, Keys::Ask(_));
    let unlocked = match keys {
        Keys::Known(k) => Unlocked {
            sym: k.sym,
            key: k.key.clone(),
        },
        Keys::Ask(source) => unlock(source, &container, &found)?,
    };
    if let Container::Aead(_) = &container {
        for flag in [&pass.threaded_output, &pass.read_ahead]
            .into_iter()
            .flatten()
        {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let decrypted = open_container(&container, &unlocked, &mut body, asked, pass, failure)?;
    let written = if pass.unwrap {
        copy_authenticated(decrypted, out, failure)?
    } else {
        inner_message(
            decrypted,
            pass.certs,
            pass.facts,
            pass.compressed.as_deref(),
            out,
            failure,
        )?
    };
    nothing_after(body.rest(), &read_error)?;
    if asked && pass.export_session_key {
        let sym = pass.facts.sym_algo.unwrap_or(0);
        pass.facts.session_key = Some((sym, unlocked.key.clone()));
    }
    if asked {
        pass.unlocked = Some(unlocked);
    }
    Ok(written)
}

/// Reads the packets before the container into `found`; the container's tag and length.
fn read_session_keys(
    binary: &mut dyn Read,
    armored: bool,
    read_error: &dyn Fn(io::Error) -> Error,
    found: &mut SessionKeyPackets,
) -> Result<(u8, framing::Length)> {
    let mut first = true;
    loop {
        let header = match framing::read_header(&mut *binary).map_err(read_error)? {
            None if found.pkesks.is_empty() && found.skesks.is_empty() => {
                return Err(Error::BadMessage(
                    "the message holds no encrypted data".into(),
                ))
            }
            None => {
                return Err(Error::BadMessage(
                    "the message ends before its encrypted data".into(),
                ))
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
            18 | 20 | 9 => {
                if found.pkesks.is_empty() && found.skesks.is_empty() {
                    if let Some(why) = found.skipped.first() {
                        return Err(Error::Unsupported(format!(
                            "no encrypted session key this program can read: {why}"
                        )));
                    }
                }
                return Ok((header.tag, header.length));
            }
            // PKESK, SKESK, Marker, Padding: small, whole packets.
            1 | 3 | 10 | 21 => {
                let body = whole_packet(binary, header.tag, header.length, read_error)?;
                if matches!(header.tag, 1 | 3) {
                    session_key_packet(header.tag, &body, armored, found)?;
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
    }
}

/// The body of a small packet of definite length.
fn whole_packet(
    binary: &mut dyn Read,
    tag: u8,
    length: framing::Length,
    read_error: &dyn Fn(io::Error) -> Error,
) -> Result<Vec<u8>> {
    let framing::Length::Full(len) = length else {
        return Err(Error::BadMessage(format!(
            "a {} packet without a definite length",
            Tag::from(tag)
        )));
    };
    if len > MAX_SESSION_KEY_PACKET {
        return Err(Error::BadMessage(format!(
            "a {} packet of {len} bytes",
            Tag::from(tag)
        )));
    }
    let mut body = Vec::with_capacity(len as usize);
    binary
        .take(len)
        .read_to_end(&mut body)
        .map_err(read_error)?;
    if body.len() as u64 != len {
        return Err(Error::BadMessage(format!(
            "the message is truncated inside a {} packet",
            Tag::from(tag)
        )));
    }
    Ok(body)
}

/// Parses one PKESK (`tag` 1) or SKESK (3) into `found`, or notes why it is passed over.
fn session_key_packet(
    tag: u8,
    body: &[u8],
    armored: bool,
    found: &mut SessionKeyPackets,
) -> Result<()> {
    if tag == 1 {
        if let Some(why) = unknown_pkesk(body) {
            // RFC 9580: a session key packet of an unknown version or algorithm is
            // skipped, and another one may fit the card.
            found.skipped.push(why);
            return Ok(());
        }
    }
    // Non-minimal MPIs (old go crypto, gopenpgp) made minimal: the same values.
    let mended = (tag == 1)
        .then(|| crate::lenient::pkesk_body(body))
        .flatten();
    let body = mended.as_deref().unwrap_or(body);
    let packet = Packet::from_bytes(&crate::lenient::packet(tag, body))
        .map_err(|e| parse_error(armored, &e))?;
    match packet {
        Packet::PKESK(p) => found.pkesks.push(p),
        Packet::SKESK(s) => found.skesks.push(s),
        // A password packet of a version this program cannot read does not stand in the
        // way of a card's PKESK.
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
    Ok(())
}

/// Asks `source` (the card) for a session key that fits `container`.
fn unlock(
    source: &mut dyn SessionKeys,
    container: &Container,
    found: &SessionKeyPackets,
) -> Result<Unlocked> {
    let mut fits =
        |algo: Option<SymmetricAlgorithm>, key: &SessionKey| key_fits(container, algo, key);
    let hint = match container {
        Container::Aead(p) if matches!(p.container, aead::Container::SeipdV2 { .. }) => {
            Some(SymmetricAlgorithm::from(p.sym))
        }
        _ => None,
    };
    let (sym, key) = source.unwrap(&found.pkesks, &found.skesks, hint, &mut fits)?;
    Ok(Unlocked { sym, key })
}

/// The decrypting reader for `container`'s body; notes the cipher in the pass's facts.
fn open_container<'b, R: Read + Send + Sync>(
    container: &'b Container,
    unlocked: &Unlocked,
    body: &'b mut R,
    asked: bool,
    pass: &mut Pass<'_>,
    failure: &Failure,
) -> Result<Box<dyn Read + Send + Sync + 'b>> {
    let facts = &mut *pass.facts;
    Ok(match container {
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
                body,
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
                body,
                params,
                &unlocked.key,
                failure.clone(),
            )?)
        }
    })
}

/// One message per input: a second one glued on could be shown as if it were part of the
/// first (RFC 9580's message grammar has one encrypted container).
fn nothing_after(rest: &mut dyn Read, read_error: &dyn Fn(io::Error) -> Error) -> Result<()> {
    match framing::read_header(rest).map_err(read_error)? {
        None => Ok(()),
        Some(Ok(next)) => Err(Error::BadMessage(format!(
            "a {} packet follows the encrypted data: the input is not one OpenPGP message",
            Tag::from(next.tag)
        ))),
        Some(Err(_)) => Err(Error::BadMessage(
            "data that is not OpenPGP follows the encrypted data".into(),
        )),
    }
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

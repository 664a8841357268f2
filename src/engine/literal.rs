//! A message whose inside is one literal data packet (the common case: no compression, no
//! signature), read here instead of by sequoia's packet parser, which copies every byte once
//! more and hashes it for its own bookkeeping: the header, the format, file name and date,
//! then the body straight to the destination. RFC 9580's grammar allows nothing after a
//! literal data packet that starts the message but padding packets.

use std::io::{self, Read, Write};

use super::{
    framing::{self, Body, Length},
    Facts, Failure,
};
use crate::error::{Error, Result};

/// Packet tags this reader knows.
const LITERAL: u8 = 11;
const PADDING: u8 = 21;

/// Whether the decrypted stream that starts with `first` starts with a literal data packet:
/// a new-format header (0xC0 | tag) or an old-format one (0x80 | tag << 2 | length type).
pub(super) fn starts_literal(first: u8) -> bool {
    first == 0xC0 | LITERAL || first & 0xFC == 0x80 | LITERAL << 2
}

/// Reads the literal data packet at the start of `decrypted` into `out`, its metadata into
/// `facts`, then what follows to the end: padding packets only. Returns the body's length.
pub(super) fn literal_message(
    decrypted: &mut dyn Read,
    facts: &mut Facts,
    out: &mut dyn Write,
    pump: impl FnOnce(&mut dyn Read, &mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let header = match framing::read_header(decrypted).map_err(|e| damaged(&e))? {
        Some(Ok(header)) if header.tag == LITERAL => header,
        _ => return Err(malformed("the literal data packet's header cannot be read")),
    };
    let mut body = Body::new(&mut *decrypted, header.length);
    let mut fields = [0u8; 2 + 255 + 4];
    body.read_exact(&mut fields[..2]).map_err(|e| damaged(&e))?;
    let name_len = usize::from(fields[1]);
    body.read_exact(&mut fields[2..2 + name_len + 4])
        .map_err(|e| damaged(&e))?;
    let date = &fields[2 + name_len..2 + name_len + 4];
    facts.literal = Some((
        fields[0],
        u32::from_be_bytes([date[0], date[1], date[2], date[3]]),
        fields[2..2 + name_len].to_vec(),
    ));
    let written = pump(&mut body, out)?;
    only_padding(decrypted)?;
    Ok(written)
}

/// The rest of the decrypted stream after the literal data: padding packets, or nothing.
pub(super) fn only_padding(decrypted: &mut dyn Read) -> Result<()> {
    loop {
        match framing::read_header(decrypted).map_err(|e| damaged(&e))? {
            None => return Ok(()),
            Some(Ok(h)) if h.tag == PADDING && h.length != Length::Indeterminate => {
                io::copy(&mut Body::new(&mut *decrypted, h.length), &mut io::sink())
                    .map_err(|e| damaged(&e))?;
            }
            Some(Ok(h)) => {
                return Err(malformed(&format!(
                    "a packet with tag {} follows the literal data, which must be the whole \
                     message",
                    h.tag
                )))
            }
            Some(Err(_)) => {
                return Err(malformed(
                    "bytes that are no packet follow the literal data",
                ))
            }
        }
    }
}

fn damaged(e: &io::Error) -> Error {
    Error::BadMessage(format!("the literal data cannot be read: {e}"))
}

fn malformed(why: &str) -> Error {
    Error::Malformed(format!("Malformed message: {why}"))
}

/// Runs `read` on the decrypted stream; whatever it found, the stream is then read to its
/// end so that the MDC or final tag is checked, and what that check found wins: altered
/// ciphertext decrypts to garbage, which is damage, not a malformed message.
pub(super) fn then_drain(
    decrypted: &mut dyn Read,
    failure: &Failure,
    read: impl FnOnce(&mut dyn Read) -> Result<u64>,
) -> Result<u64> {
    let parsed = read(&mut *decrypted);
    let drained = io::copy(decrypted, &mut io::sink());
    match (parsed, drained) {
        (Ok(n), Ok(_)) => Ok(n),
        (Ok(_), Err(e)) => Err(failure.take().unwrap_or_else(|| damaged(&e))),
        (Err(e), _) => Err(failure.take().unwrap_or(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(stream: &[u8]) -> Result<(Vec<u8>, Facts)> {
        let mut facts = Facts::default();
        let mut out = Vec::new();
        let n = literal_message(&mut &stream[..], &mut facts, &mut out, |from, to| {
            io::copy(from, to).map_err(|e| Error::Other(e.to_string()))
        })?;
        assert_eq!(n as usize, out.len());
        Ok((out, facts))
    }

    fn literal(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0xCB, (6 + 4 + body.len()) as u8, b'b', 4];
        p.extend(b"name");
        p.extend([0, 0, 1, 0]);
        p.extend(body);
        p
    }

    #[test]
    fn body_and_metadata_are_read() {
        let (out, facts) = read(&literal(b"hello")).expect("literal");
        assert_eq!(out, b"hello");
        assert_eq!(facts.literal, Some((b'b', 256, b"name".to_vec())));
        assert!(starts_literal(0xCB) && starts_literal(0xAC) && starts_literal(0xAF));
        assert!(!starts_literal(0xC8) && !starts_literal(0xA3));
    }

    #[test]
    fn padding_may_follow_and_nothing_else() {
        let mut m = literal(b"x");
        m.extend([0xD5, 3, 1, 2, 3]);
        assert!(read(&m).is_ok());
        let mut m = literal(b"x");
        m.extend([0xC2, 1, 0]);
        assert!(matches!(read(&m), Err(Error::Malformed(_))));
    }

    #[test]
    fn partial_bodies_are_joined() {
        // 512-byte first chunk (0xE9 = 2^9), then the last 3 bytes.
        let mut m = vec![0xCB, 0xE9, b'b', 0, 0, 0, 0, 0];
        m.extend(vec![b'a'; 506]);
        m.extend([3, b'b', b'c', b'd']);
        let (out, _) = read(&m).expect("partial");
        assert_eq!(out.len(), 509);
        assert!(out.ends_with(b"abcd"));
    }

    #[test]
    fn a_short_body_is_damage() {
        let mut m = literal(b"hello");
        m.truncate(m.len() - 2);
        assert!(read(&m).is_err());
    }
}

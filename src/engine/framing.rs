//! The outer packet framing of a message, read here rather than by sequoia's packet parser:
//! the session key packets before the encrypted container are small and each is handed to
//! sequoia whole, while the container's body (all of the message's size) is read straight
//! from the input, its partial body lengths removed here. Sequoia's reader would copy every
//! byte of it once more and hash it (xxh3) for its own bookkeeping.

use std::io::{self, Read};

/// A packet's body length as its header gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    Full(u64),
    /// A partial chunk of this many bytes; more chunks follow.
    Partial(u64),
    /// Old format, length type 3: to the end of the input.
    Indeterminate,
}

/// A packet header: tag and body length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub tag: u8,
    pub length: Length,
}

/// What is wrong with a header.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The first byte is not a packet tag at all.
    NotAPacket,
    /// The input ends inside the header.
    Truncated,
}

fn byte(r: &mut dyn Read) -> io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn need(r: &mut dyn Read) -> io::Result<Result<u8, HeaderError>> {
    Ok(byte(r)?.ok_or(HeaderError::Truncated))
}

/// A new-format length whose first octet is `first`.
fn new_length(first: u8, r: &mut dyn Read) -> io::Result<Result<Length, HeaderError>> {
    Ok(Ok(match first {
        0..=191 => Length::Full(u64::from(first)),
        192..=223 => {
            let second = match need(r)? {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
            Length::Full((u64::from(first - 192) << 8) + u64::from(second) + 192)
        }
        224..=254 => Length::Partial(1 << (first & 0x1F)),
        255 => {
            let mut len = 0u64;
            for _ in 0..4 {
                match need(r)? {
                    Ok(b) => len = (len << 8) | u64::from(b),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Length::Full(len)
        }
    }))
}

/// Reads the length of a partial body's next chunk (new format); `Truncated` at the end of
/// the input.
pub fn read_chunk_length(r: &mut dyn Read) -> io::Result<Result<Length, HeaderError>> {
    match need(r)? {
        Ok(first) => new_length(first, r),
        Err(e) => Ok(Err(e)),
    }
}

/// Reads one packet header; `Ok(None)` at a clean end of the input.
pub fn read_header(r: &mut dyn Read) -> io::Result<Option<Result<Header, HeaderError>>> {
    let Some(ctb) = byte(r)? else {
        return Ok(None);
    };
    if ctb & 0x80 == 0 {
        return Ok(Some(Err(HeaderError::NotAPacket)));
    }
    if ctb & 0x40 != 0 {
        let tag = ctb & 0x3F;
        let first = match need(r)? {
            Ok(b) => b,
            Err(e) => return Ok(Some(Err(e))),
        };
        return Ok(Some(
            new_length(first, r)?.map(|length| Header { tag, length }),
        ));
    }
    let tag = (ctb >> 2) & 0x0F;
    let octets = match ctb & 3 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => {
            return Ok(Some(Ok(Header {
                tag,
                length: Length::Indeterminate,
            })))
        }
    };
    let mut len = 0u64;
    for _ in 0..octets {
        match need(r)? {
            Ok(b) => len = (len << 8) | u64::from(b),
            Err(e) => return Ok(Some(Err(e))),
        }
    }
    Ok(Some(Ok(Header {
        tag,
        length: Length::Full(len),
    })))
}

/// A packet's body as one reader: chunks of a partial body joined, the end where the header
/// (or the last chunk's) says. A body cut short is an error, not an early end.
pub struct Body<R> {
    inner: R,
    /// Bytes left in this chunk (`u64::MAX` for an indeterminate length).
    left: u64,
    /// More chunks follow this one.
    partial: bool,
    indeterminate: bool,
}

impl<R: Read> Body<R> {
    pub fn new(inner: R, length: Length) -> Body<R> {
        let (left, partial, indeterminate) = match length {
            Length::Full(n) => (n, false, false),
            Length::Partial(n) => (n, true, false),
            Length::Indeterminate => (u64::MAX, false, true),
        };
        Body {
            inner,
            left,
            partial,
            indeterminate,
        }
    }

    /// The input after the body (read the body to its end first).
    pub fn rest(&mut self) -> &mut R {
        &mut self.inner
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the encrypted data packet is truncated",
    )
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.left > 0 {
                let want = out
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                let n = loop {
                    match self.inner.read(&mut out[..want]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    if self.indeterminate {
                        self.left = 0;
                        return Ok(0);
                    }
                    return Err(truncated());
                }
                if !self.indeterminate {
                    self.left -= n as u64;
                }
                return Ok(n);
            }
            if !self.partial {
                return Ok(0);
            }
            let first = byte(&mut self.inner)?.ok_or_else(truncated)?;
            match new_length(first, &mut self.inner)? {
                Ok(Length::Full(n)) => {
                    self.left = n;
                    self.partial = false;
                }
                Ok(Length::Partial(n)) => self.left = n,
                Ok(Length::Indeterminate) | Err(_) => return Err(truncated()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = bytes;
        let header = read_header(&mut r)
            .expect("read")
            .expect("some")
            .expect("valid");
        let mut body = Body::new(r, header.length);
        let mut out = Vec::new();
        // Small reads, across chunk boundaries.
        let mut buf = [0u8; 5];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    #[test]
    fn headers_of_every_form() {
        let h = |b: &[u8]| read_header(&mut &b[..]).expect("io");
        assert_eq!(
            h(&[0xD2, 0x05]),
            Some(Ok(Header {
                tag: 18,
                length: Length::Full(5)
            }))
        );
        assert_eq!(
            h(&[0xD2, 0xC5, 0x01]),
            Some(Ok(Header {
                tag: 18,
                length: Length::Full(((0xC5 - 192) << 8) + 1 + 192)
            }))
        );
        assert_eq!(
            h(&[0xD2, 0xFF, 0, 1, 0, 0]),
            Some(Ok(Header {
                tag: 18,
                length: Length::Full(65536)
            }))
        );
        assert_eq!(
            h(&[0xD2, 0xE9]),
            Some(Ok(Header {
                tag: 18,
                length: Length::Partial(512)
            }))
        );
        // Old format: tag 1, two-octet length; tag 9, indeterminate.
        assert_eq!(
            h(&[0x85, 0x01, 0x0C]),
            Some(Ok(Header {
                tag: 1,
                length: Length::Full(268)
            }))
        );
        assert_eq!(
            h(&[0xA7]),
            Some(Ok(Header {
                tag: 9,
                length: Length::Indeterminate
            }))
        );
        assert_eq!(h(&[]), None);
        assert_eq!(h(b"h"), Some(Err(HeaderError::NotAPacket)));
        assert_eq!(h(&[0xD2, 0xFF, 0]), Some(Err(HeaderError::Truncated)));
    }

    #[test]
    fn partial_bodies_are_joined_and_a_short_one_is_an_error() {
        let mut packet = vec![0xD2, 0xE9];
        packet.extend(std::iter::repeat_n(1u8, 512));
        packet.push(0xE1);
        packet.extend([2u8, 2]);
        packet.push(3);
        packet.extend([3u8, 3, 3]);
        let mut want = vec![1u8; 512];
        want.extend([2, 2, 3, 3, 3]);
        assert_eq!(body_of(&packet).expect("body"), want);
        let cut = &packet[..packet.len() - 1];
        assert_eq!(
            body_of(cut).expect_err("short").kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            body_of(&[0xD2, 0x05, 1, 2]).expect_err("short").kind(),
            io::ErrorKind::UnexpectedEof
        );
        // Indeterminate: to the end.
        assert_eq!(body_of(&[0xA7, 9, 8, 7]).expect("body"), [9, 8, 7]);
    }
}

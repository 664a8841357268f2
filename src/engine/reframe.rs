//! Inside the encryption, partial body lengths made valid before sequoia parses the packets:
//! what old go crypto (early Proton Mail) wrote is read where OpenPGP.js reads it. Headers
//! and chunk lengths are read by [`framing`], the one packet-length parser.

use std::io::{self, Read};

use super::framing::{self, Header, Length};

/// A partial body's next chunk: its length and whether it is the last; `None` when the
/// input ends or breaks inside the length.
type NextChunk = Option<(u64, bool)>;

/// A reader that keeps what is read through it.
struct Recording<'r, R> {
    inner: &'r mut R,
    raw: Vec<u8>,
}

impl<R: Read> Read for Recording<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The packets inside an encryption container with every partial body length made valid:
/// old go crypto (early Proton Mail) wrote literal data in chunks of 2, 4, 32... bytes,
/// where OpenPGP wants the first partial chunk to be at least 512 bytes; sequoia refuses such
/// a packet, OpenPGP.js reads it. A top-level packet whose first chunk is smaller is framed
/// again (same tag, same body bytes) in chunks of 512 bytes to 64 KiB; everything else,
/// including well-framed partial packets, passes through unchanged without a copy. Framing
/// is not covered by the MDC or any signature's hash, and the content is the same bytes.
pub struct Reframed<R> {
    inner: R,
    state: Frame,
    /// Bytes to hand out before reading on: headers, or a re-framed chunk.
    out: Vec<u8>,
    out_at: usize,
}

impl<R> Drop for Reframed<R> {
    /// A re-framed chunk is decrypted content: wiped when done.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.out);
    }
}

enum Frame {
    /// At a packet header.
    Header,
    /// Passing a definite-length body through: bytes left.
    Body(u64),
    /// Passing a well-framed partial body through: bytes left in this chunk, last chunk?
    Chunks(u64, bool),
    /// Re-framing a packet whose first chunk was too small.
    Reframe {
        ctb: u8,
        started: bool,
        pending: Vec<u8>,
        left: u64,
        last: bool,
    },
    /// Not a packet header, or an old-format packet of indeterminate length: the rest of
    /// the stream as it is (the parser says what it thinks of it).
    Rest,
}

/// The largest chunk written when re-framing.
const REFRAME_CHUNK: usize = 1 << 16;

impl<R: Read> Reframed<R> {
    pub fn new(inner: R) -> Self {
        Reframed {
            inner,
            state: Frame::Header,
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// Reads through `framing`'s parser while keeping the bytes it read, to pass them on.
    fn recorded<T>(
        &mut self,
        parse: impl FnOnce(&mut dyn Read) -> io::Result<T>,
    ) -> io::Result<(T, Vec<u8>)> {
        let mut recording = Recording {
            inner: &mut self.inner,
            raw: Vec::new(),
        };
        let parsed = parse(&mut recording)?;
        Ok((parsed, recording.raw))
    }

    /// Reads the next packet header and decides how its body passes.
    fn header(&mut self) -> io::Result<()> {
        let (header, raw) = self.recorded(|r| framing::read_header(r))?;
        self.state = match header {
            Some(Ok(Header {
                length: Length::Full(len),
                ..
            })) => Frame::Body(len),
            Some(Ok(Header {
                length: Length::Partial(len),
                ..
            })) if len >= 512 => Frame::Chunks(len, false),
            Some(Ok(Header {
                length: Length::Partial(len),
                ..
            })) => {
                // The header is written anew once the chunks are known.
                self.state = Frame::Reframe {
                    ctb: raw[0],
                    started: false,
                    pending: Vec::new(),
                    left: len,
                    last: false,
                };
                return Ok(());
            }
            // Not a packet, truncated, or to the end of the input: the rest as it is.
            _ => Frame::Rest,
        };
        self.out = raw;
        self.out_at = 0;
        Ok(())
    }

    /// The next chunk's length of a partial body: (length, last?), and the bytes read.
    fn chunk_length(&mut self) -> io::Result<(NextChunk, Vec<u8>)> {
        let (length, raw) = self.recorded(|r| framing::read_chunk_length(r))?;
        Ok((
            match length {
                Ok(Length::Full(len)) => Some((len, true)),
                Ok(Length::Partial(len)) => Some((len, false)),
                Ok(Length::Indeterminate) | Err(_) => None,
            },
            raw,
        ))
    }

    /// Reads on in a re-framed packet until a chunk can be written or the packet ends.
    fn reframe(&mut self) -> io::Result<()> {
        loop {
            let Frame::Reframe {
                left,
                last,
                pending,
                ..
            } = &mut self.state
            else {
                return Ok(());
            };
            if *left > 0 && pending.len() < REFRAME_CHUNK {
                let want = (*left).min((REFRAME_CHUNK - pending.len()) as u64);
                let before = pending.len();
                (&mut self.inner).take(want).read_to_end(pending)?;
                let got = (pending.len() - before) as u64;
                if got == 0 {
                    self.truncated();
                    return Ok(());
                }
                *left -= got;
                continue;
            }
            let (left, last) = (*left, *last);
            if pending.len() >= REFRAME_CHUNK || (left == 0 && last && pending.len() >= 512) {
                self.write_chunk();
                return Ok(());
            }
            if left == 0 && last {
                self.finish();
                return Ok(());
            }
            let (next, _) = self.chunk_length()?;
            let Frame::Reframe { left, last, .. } = &mut self.state else {
                return Ok(());
            };
            match next {
                Some((len, is_last)) => {
                    *left = len;
                    *last = is_last;
                }
                None => {
                    self.truncated();
                    return Ok(());
                }
            }
        }
    }

    /// The stream ended inside a re-framed packet: what there is goes out under a chunk
    /// header announcing more, so the parser reports a truncated packet.
    fn truncated(&mut self) {
        let Some(pending) = next_piece(&mut self.state, &mut self.out) else {
            return;
        };
        let announced = (pending.len() + 1).next_power_of_two().max(512);
        self.out.push(0xE0 | announced.trailing_zeros() as u8);
        self.out.append(pending);
        self.out_at = 0;
        self.state = Frame::Rest;
    }

    /// Writes the largest power-of-two chunk (at least 512 bytes) of what is pending.
    fn write_chunk(&mut self) {
        let Some(pending) = next_piece(&mut self.state, &mut self.out) else {
            return;
        };
        let size = 1usize << (usize::BITS - 1 - pending.len().min(REFRAME_CHUNK).leading_zeros());
        self.out.push(0xE0 | size.trailing_zeros() as u8);
        self.out.extend(pending.drain(..size));
        self.out_at = 0;
    }

    /// Writes the packet's last chunk (or, if nothing was written, the whole packet) with a
    /// definite length.
    fn finish(&mut self) {
        let Some(pending) = next_piece(&mut self.state, &mut self.out) else {
            return;
        };
        let len = pending.len();
        match len {
            0..=191 => self.out.push(len as u8),
            192..=8383 => {
                let l = len - 192;
                self.out.push((l >> 8) as u8 + 192);
                self.out.push(l as u8);
            }
            _ => {
                self.out.push(255);
                self.out.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
        self.out.append(pending);
        self.out_at = 0;
        self.state = Frame::Header;
    }
}

/// Starts the next piece of a re-framed packet in `out` (with the packet's tag byte first
/// when nothing of it was written yet) and hands back the bytes pending.
fn next_piece<'s>(state: &'s mut Frame, out: &mut Vec<u8>) -> Option<&'s mut Vec<u8>> {
    let Frame::Reframe {
        ctb,
        started,
        pending,
        ..
    } = state
    else {
        return None;
    };
    out.clear();
    if !*started {
        out.push(*ctb);
        *started = true;
    }
    Some(pending)
}

impl<R: Read> Read for Reframed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_at < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_at);
                buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
                self.out_at += n;
                return Ok(n);
            }
            match self.state {
                Frame::Rest => return self.inner.read(buf),
                Frame::Header => self.header()?,
                Frame::Body(0) | Frame::Chunks(0, true) => self.state = Frame::Header,
                Frame::Chunks(0, false) => {
                    let (next, raw) = self.chunk_length()?;
                    self.state = match next {
                        Some((len, last)) => Frame::Chunks(len, last),
                        None => Frame::Rest,
                    };
                    self.out = raw;
                    self.out_at = 0;
                }
                Frame::Body(left) | Frame::Chunks(left, _) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let got = self.inner.read(&mut buf[..want])?;
                    if got == 0 {
                        self.state = Frame::Rest;
                        return Ok(0);
                    }
                    match &mut self.state {
                        Frame::Body(l) | Frame::Chunks(l, _) => *l -= got as u64,
                        _ => {}
                    }
                    return Ok(got);
                }
                Frame::Reframe { .. } => self.reframe()?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lenient::packet;

    /// A new-format packet of `tag` with `body` cut into chunks of the given powers of two
    /// (then the rest as the last chunk).
    fn chunked(tag: u8, body: &[u8], chunks: &[u32]) -> Vec<u8> {
        let mut out = vec![0xC0 | tag];
        let mut at = 0;
        for &c in chunks {
            out.push(0xE0 | c as u8);
            out.extend_from_slice(&body[at..at + (1 << c)]);
            at += 1 << c;
        }
        let rest = &body[at..];
        let mut framed = packet(tag, rest);
        out.extend_from_slice(&framed.split_off(1));
        out
    }

    fn reframed(input: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        // Small reads, to cross every state boundary.
        let mut r = Reframed::new(input);
        let mut buf = [0u8; 7];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn literal_body(content: &[u8]) -> Vec<u8> {
        let mut body = vec![b'b', 0, 0, 0, 0, 0];
        body.extend_from_slice(content);
        body
    }

    fn parsed_literal(bytes: &[u8]) -> Vec<u8> {
        use sequoia_openpgp::{parse::Parse, Packet, PacketPile};
        let pile = PacketPile::from_bytes(bytes).expect("sequoia reads it");
        match pile.path_ref(&[0]).expect("first packet") {
            Packet::Literal(l) => l.body().to_vec(),
            p => panic!("not literal data: {p:?}"),
        }
    }

    #[test]
    fn small_first_chunks_are_framed_again_with_the_same_body() {
        // Old go crypto: chunks of 2, 4 and 32 bytes, then the rest.
        let content = b"Tesssst<br><br>Sent from a phone".repeat(3);
        let body = literal_body(&content);
        let input = chunked(11, &body, &[1, 2, 5]);
        {
            use sequoia_openpgp::parse::Parse;
            assert!(sequoia_openpgp::PacketPile::from_bytes(&input[..]).is_err());
        }
        let out = reframed(&input);
        assert_eq!(parsed_literal(&out), content);
        // Short enough for one definite-length packet.
        assert_eq!(out, packet(11, &body));

        // Large: small chunks, then many, then a last chunk; and a packet after it.
        let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let body = literal_body(&content);
        let mut chunks = vec![1, 3];
        chunks.extend(std::iter::repeat_n(10, 190));
        let mut input = chunked(11, &body, &chunks);
        let trailer = packet(2, b"not really a signature");
        input.extend_from_slice(&trailer);
        let out = reframed(&input);
        assert!(out.ends_with(&trailer));
        assert_eq!(parsed_literal(&out[..out.len() - trailer.len()]), content);
    }

    #[test]
    fn well_framed_packets_and_truncated_ones_pass_unchanged() {
        let content = vec![0x5A; 5000];
        let body = literal_body(&content);
        let mut input = chunked(11, &body, &[9, 10, 11]);
        input.extend_from_slice(&packet(2, b"after"));
        input.extend_from_slice(&[0x8C, 3, 1, 2, 3]); // old format, one-octet length
        assert_eq!(reframed(&input), input);
        let truncated = &input[..700];
        assert_eq!(reframed(truncated), truncated);
        // Cut inside a re-framed packet: still a truncated packet to the parser.
        let small = chunked(11, &body, &[1, 2]);
        let out = reframed(&small[..40]);
        {
            use sequoia_openpgp::parse::Parse;
            assert!(sequoia_openpgp::PacketPile::from_bytes(&out[..]).is_err());
        }
        assert!(out.len() < 40, "no bytes made up");
    }
}

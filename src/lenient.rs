//! Reading what other implementations wrote slightly wrong, without trusting it more.
//!
//! Some encoders (old go crypto, gopenpgp issue 11, early GnuPG 2.1) wrote MPIs whose bit
//! count is not minimal: a 264-bit count for a value whose top byte is 0x40, or leading zero
//! bytes. gpg reads them; sequoia refuses the whole packet. The value is the same either way,
//! so encrypted session keys and signatures are rewritten with minimal MPIs before sequoia
//! parses them. MPIs of signatures are not covered by the signed hash, so nothing that is
//! checked changes.

/// Rewrites one MPI at the start of `input` minimally into `out`; returns the bytes read.
fn mpi(input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let bits = usize::from(u16::from_be_bytes([*input.first()?, *input.get(1)?]));
    let len = bits.div_ceil(8);
    let value = input.get(2..2 + len)?;
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let value = &value[start..];
    let real_bits = match value.first() {
        None => 0,
        Some(&top) => (value.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    };
    out.extend_from_slice(&(real_bits as u16).to_be_bytes());
    out.extend_from_slice(value);
    Some(2 + len)
}

/// `count` MPIs from `input`, then the rest verbatim.
fn mpis_then_rest(input: &[u8], count: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut at = 0;
    for _ in 0..count {
        at += mpi(&input[at..], out)?;
    }
    out.extend_from_slice(input.get(at..)?);
    Some(())
}

/// `count` MPIs from the start of `input`, minimal, into `out`, with nothing after them
/// (a decrypted secret key's material once its checksum is off).
pub fn secret_mpis(input: &[u8], count: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut at = 0;
    for _ in 0..count {
        at += mpi(input.get(at..)?, out)?;
    }
    (at == input.len()).then_some(())
}

/// The body of a version 3 PKESK with minimal MPIs, if it is one cardecrypt can mend.
pub fn pkesk_body(body: &[u8]) -> Option<Vec<u8>> {
    let (head, rest) = (body.get(..10)?, body.get(10..)?);
    if head[0] != 3 {
        return None;
    }
    let count = match head[9] {
        1 | 2 => 1,   // RSA: m^e mod n
        16 | 20 => 2, // ElGamal
        18 => 1,      // ECDH: the ephemeral point, then the wrapped key
        _ => return None,
    };
    let mut out = head.to_vec();
    mpis_then_rest(rest, count, &mut out)?;
    (out != body).then_some(out)
}

/// The body of a version 4 signature with minimal MPIs, if it is one cardecrypt can mend.
pub fn signature_body(body: &[u8]) -> Option<Vec<u8>> {
    if *body.first()? != 4 {
        return None;
    }
    let algo = *body.get(2)?;
    let hashed = usize::from(u16::from_be_bytes([*body.get(4)?, *body.get(5)?]));
    let unhashed_at = 6 + hashed;
    let unhashed = usize::from(u16::from_be_bytes([
        *body.get(unhashed_at)?,
        *body.get(unhashed_at + 1)?,
    ]));
    let mpis_at = unhashed_at + 2 + unhashed + 2;
    let count = match algo {
        1 | 3 => 1,
        17 | 19 | 22 => 2,
        _ => return None,
    };
    let mut out = body.get(..mpis_at)?.to_vec();
    mpis_then_rest(&body[mpis_at..], count, &mut out)?;
    (out != body).then_some(out)
}

/// A packet with a new-format header.
pub fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0 | tag];
    let len = body.len();
    if len < 192 {
        out.push(len as u8);
    } else if len < 8384 {
        let l = len - 192;
        out.push((l >> 8) as u8 + 192);
        out.push(l as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Tag, header length and body length of the packet at the start of `bytes`; `None` if the
/// header is incomplete or uses partial body lengths.
fn header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let ctb = *bytes.first()?;
    if ctb & 0x80 == 0 {
        return None;
    }
    if ctb & 0x40 != 0 {
        let first = usize::from(*bytes.get(1)?);
        match first {
            0..=191 => Some((ctb & 0x3F, 2, first)),
            192..=223 => Some((
                ctb & 0x3F,
                3,
                ((first - 192) << 8) + usize::from(*bytes.get(2)?) + 192,
            )),
            255 => {
                let l = bytes.get(2..6)?;
                Some((
                    ctb & 0x3F,
                    6,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                ))
            }
            _ => None,
        }
    } else {
        let tag = (ctb >> 2) & 0x0F;
        match ctb & 3 {
            0 => Some((tag, 2, usize::from(*bytes.get(1)?))),
            1 => Some((
                tag,
                3,
                usize::from(u16::from_be_bytes([*bytes.get(1)?, *bytes.get(2)?])),
            )),
            2 => {
                let l = bytes.get(1..5)?;
                Some((
                    tag,
                    5,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                ))
            }
            _ => None,
        }
    }
}

/// A binary keyring with every signature's MPIs made minimal; `None` if nothing changed or
/// the framing is not plain (partial lengths do not occur in keys).
pub fn keyring(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    let mut changed = false;
    while at < bytes.len() {
        let (tag, head, len) = header(&bytes[at..])?;
        let body = bytes.get(at + head..at + head + len)?;
        match (tag == 2).then(|| signature_body(body)).flatten() {
            Some(mended) => {
                out.extend_from_slice(&packet(tag, &mended));
                changed = true;
            }
            None => out.extend_from_slice(&bytes[at..at + head + len]),
        }
        at += head + len;
    }
    changed.then_some(out)
}

/// The start of a binary message with its PKESKs' MPIs made minimal: the leading session
/// key packets are read (they are small), mended where needed, and handed on; everything
/// from the first other packet on passes through untouched.
pub struct MendedPkesks<R> {
    inner: R,
    prefix: Vec<u8>,
    at: usize,
}

/// Session key packets larger than this are not read ahead (an RSA-16384 PKESK is 2 KiB).
const MAX_PKESK: usize = 1 << 16;

impl<R: std::io::Read> MendedPkesks<R> {
    pub fn new(mut inner: R) -> std::io::Result<Self> {
        use std::io::Read;
        let mut prefix = Vec::new();
        let mut pending = Vec::new();
        loop {
            // Read a header's worth (at most 6 bytes), one byte at a time.
            while header(&pending).is_none() && pending.len() < 6 {
                let mut b = [0u8; 1];
                if inner.read(&mut b)? == 0 {
                    break;
                }
                pending.push(b[0]);
            }
            let Some((tag, head, len)) = header(&pending) else {
                break;
            };
            if !matches!(tag, 1 | 3 | 10) || len > MAX_PKESK {
                break;
            }
            let mut packet_bytes = pending[..head].to_vec();
            let mut body = pending[head..].to_vec();
            if body.len() > len {
                break;
            }
            let already = body.len();
            (&mut inner)
                .take((len - already) as u64)
                .read_to_end(&mut body)?;
            if body.len() < len {
                // Truncated: hand on what there is and let the parser say so.
                prefix.extend_from_slice(&pending[..head]);
                prefix.extend_from_slice(&body);
                pending.clear();
                break;
            }
            match (tag == 1).then(|| pkesk_body(&body)).flatten() {
                Some(mended) => prefix.extend_from_slice(&packet(1, &mended)),
                None => {
                    packet_bytes.extend_from_slice(&body);
                    prefix.extend_from_slice(&packet_bytes);
                }
            }
            pending.clear();
        }
        prefix.extend_from_slice(&pending);
        Ok(MendedPkesks {
            inner,
            prefix,
            at: 0,
        })
    }
}

impl<R: std::io::Read> std::io::Read for MendedPkesks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.at);
            buf[..n].copy_from_slice(&self.prefix[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.inner.read(buf)
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

impl<R: std::io::Read> Reframed<R> {
    pub fn new(inner: R) -> Self {
        Reframed {
            inner,
            state: Frame::Header,
            out: Vec::new(),
            out_at: 0,
        }
    }

    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A new-format body length whose first octet is `first`: (length, partial?), with the
    /// octets read recorded in `raw`. `None` at a truncated length.
    fn new_length(&mut self, first: u8, raw: &mut Vec<u8>) -> std::io::Result<Option<(u64, bool)>> {
        raw.push(first);
        Ok(Some(match first {
            0..=191 => (u64::from(first), false),
            192..=223 => {
                let Some(second) = self.byte()? else {
                    return Ok(None);
                };
                raw.push(second);
                (
                    (u64::from(first - 192) << 8) + u64::from(second) + 192,
                    false,
                )
            }
            224..=254 => (1u64 << (first & 0x1F), true),
            255 => {
                let mut len = 0u64;
                for _ in 0..4 {
                    let Some(b) = self.byte()? else {
                        return Ok(None);
                    };
                    raw.push(b);
                    len = (len << 8) | u64::from(b);
                }
                (len, false)
            }
        }))
    }

    /// Reads the next packet header and decides how its body passes.
    fn header(&mut self) -> std::io::Result<()> {
        let Some(ctb) = self.byte()? else {
            self.state = Frame::Rest;
            return Ok(());
        };
        let mut raw = vec![ctb];
        if ctb & 0x80 == 0 {
            self.state = Frame::Rest;
        } else if ctb & 0x40 == 0 {
            let octets = match ctb & 3 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => 0,
            };
            let mut len = 0u64;
            for _ in 0..octets {
                let Some(b) = self.byte()? else {
                    self.state = Frame::Rest;
                    break;
                };
                raw.push(b);
                len = (len << 8) | u64::from(b);
            }
            if !matches!(self.state, Frame::Rest) {
                self.state = if octets == 0 {
                    Frame::Rest
                } else {
                    Frame::Body(len)
                };
            }
        } else {
            let mut length = Vec::new();
            let first = self.byte()?;
            match match first {
                Some(first) => self.new_length(first, &mut length)?,
                None => None,
            } {
                None => self.state = Frame::Rest,
                Some((len, false)) => self.state = Frame::Body(len),
                Some((len, true)) if len >= 512 => self.state = Frame::Chunks(len, false),
                Some((len, true)) => {
                    self.state = Frame::Reframe {
                        ctb,
                        started: false,
                        pending: Vec::new(),
                        left: len,
                        last: false,
                    };
                    // The header is written anew once the chunks are known.
                    return Ok(());
                }
            }
            raw.extend_from_slice(&length);
        }
        self.out = raw;
        self.out_at = 0;
        Ok(())
    }

    /// Reads on in a re-framed packet until a chunk can be written or the packet ends.
    fn reframe(&mut self) -> std::io::Result<()> {
        use std::io::Read;
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
            // The next chunk's length.
            let mut raw = Vec::new();
            let next = match self.byte()? {
                Some(first) => self.new_length(first, &mut raw)?,
                None => None,
            };
            let Frame::Reframe { left, last, .. } = &mut self.state else {
                return Ok(());
            };
            match next {
                Some((len, partial)) => {
                    *left = len;
                    *last = !partial;
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

impl<R: std::io::Read> std::io::Read for Reframed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
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
                    let mut raw = Vec::new();
                    let next = match self.byte()? {
                        Some(first) => self.new_length(first, &mut raw)?,
                        None => None,
                    };
                    self.state = match next {
                        Some((len, partial)) => Frame::Chunks(len, !partial),
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

    #[test]
    fn a_padded_mpi_is_made_minimal_and_a_minimal_one_is_kept() {
        let mut out = Vec::new();
        // 264 bits declared, top byte 0x40: 263 bits.
        let mut input = vec![0x01, 0x08, 0x40];
        input.extend_from_slice(&[7; 32]);
        assert_eq!(mpi(&input, &mut out), Some(35));
        assert_eq!(&out[..3], &[0x01, 0x07, 0x40]);
        out.clear();
        // A leading zero byte.
        assert_eq!(mpi(&[0x00, 0x10, 0x00, 0x05], &mut out), Some(4));
        assert_eq!(out, [0x00, 0x03, 0x05]);
        out.clear();
        assert_eq!(mpi(&[0x00, 0x03, 0x05], &mut out), Some(3));
        assert_eq!(out, [0x00, 0x03, 0x05]);
        assert_eq!(mpi(&[0x00, 0x10, 0x05], &mut out), None);
    }

    #[test]
    fn padded_secret_mpis_are_made_minimal_and_trailing_bytes_refused() {
        // 264 bits announced, top byte zero: 0x40.. is 263 bits in one fewer byte.
        let padded = [0x01, 0x08, 0x00, 0x40, 0x01];
        let mut out = Vec::new();
        assert_eq!(secret_mpis(&padded, 1, &mut out), None, "length mismatch");
        let padded = [0x00, 0x18, 0x00, 0x40, 0x01];
        let mut out = Vec::new();
        assert_eq!(secret_mpis(&padded, 1, &mut out), Some(()));
        assert_eq!(out, [0x00, 0x0F, 0x40, 0x01]);
        let mut out = Vec::new();
        assert_eq!(secret_mpis(&[0x00, 0x08, 0x01, 0xFF], 1, &mut out), None);
    }

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

    #[test]
    fn a_minimal_pkesk_is_left_alone() {
        let mut body = vec![3, 1, 2, 3, 4, 5, 6, 7, 8, 1];
        body.extend_from_slice(&[0x00, 0x03, 0x05]);
        assert_eq!(pkesk_body(&body), None);
        body[10..].copy_from_slice(&[0x00, 0x08, 0x05]);
        assert_eq!(pkesk_body(&body).expect("mended")[10..], [0x00, 0x03, 0x05]);
    }
}

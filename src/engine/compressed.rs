//! A compressed data packet around one literal data packet, the way gpg writes a message by
//! default: for ZIP and ZLIB it is inflated here, in large steps straight into the copy's
//! buffer, and the literal data read by [`super::literal`]. Sequoia's packet parser puts a
//! buffered reader on every layer (each one more copy of the whole plaintext) and feeds the
//! inflater 8 KiB at a time. Anything else (BZip2, signatures inside) goes to sequoia as
//! before: what was read to decide is replayed in front of the rest.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};
use zeroize::Zeroizing;

use super::{
    framing::{self, Body, Header},
    literal,
};

const COMPRESSED: u8 = 8;
/// RFC 9580's compression algorithm ids this reader inflates.
const ZIP: u8 = 1;
const ZLIB: u8 = 2;
/// The most read to find the first inflated byte; a stream that gives none by then (a long
/// run of empty blocks) is left to sequoia.
const PEEK_LIMIT: usize = 1 << 16;
/// Compressed input read at once.
const INPUT_BUFFER: usize = 1 << 17;

/// Whether the decrypted stream that starts with `first` starts with a compressed data
/// packet (new or old format header).
pub(super) fn starts_compressed(first: u8) -> bool {
    first == 0xC0 | COMPRESSED || first & 0xFC == 0x80 | COMPRESSED << 2
}

/// What the start of a compressed data packet showed.
pub(super) struct Peeked {
    /// The bytes read from the decrypted stream, to be read again in front of the rest.
    pub(super) replay: Zeroizing<Vec<u8>>,
    /// The algorithm id, when the header could be read.
    pub(super) algorithm: Option<u8>,
    /// ZIP or ZLIB, and the first inflated byte starts a literal data packet.
    pub(super) literal_inside: bool,
}

/// Reads the compressed data packet's header, its algorithm and (for ZIP and ZLIB) the first
/// inflated byte, keeping every byte read so the stream can be replayed. Errors are left to
/// whoever reads the replay: this only decides who reads.
pub(super) fn peek(decrypted: &mut dyn Read) -> Peeked {
    let mut recorder = Recorder {
        inner: decrypted,
        seen: Zeroizing::new(Vec::new()),
    };
    let (algorithm, literal_inside) = match framing::read_header(&mut recorder) {
        Ok(Some(Ok(header))) if header.tag == COMPRESSED => {
            let mut body = Body::new(&mut recorder, header.length);
            let mut algo = [0u8; 1];
            match body.read_exact(&mut algo) {
                Ok(()) if matches!(algo[0], ZIP | ZLIB) => {
                    let mut first = [0u8; 1];
                    let mut inflate = Inflate::new(body, algo[0] == ZLIB);
                    let literal = matches!(inflate.read(&mut first), Ok(1))
                        && literal::starts_literal(first[0]);
                    (Some(algo[0]), literal)
                }
                Ok(()) => (Some(algo[0]), false),
                Err(_) => (None, false),
            }
        }
        _ => (None, false),
    };
    Peeked {
        replay: recorder.seen,
        algorithm,
        literal_inside,
    }
}

/// Keeps what it reads, up to [`PEEK_LIMIT`]; after that it reads as if the input ended.
struct Recorder<'r> {
    inner: &'r mut dyn Read,
    seen: Zeroizing<Vec<u8>>,
}

impl Read for Recorder<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let room = PEEK_LIMIT - self.seen.len();
        let want = out.len().min(room);
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut out[..want])?;
        self.seen.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

/// Reads the compressed data packet that starts `decrypted` (ZIP or ZLIB, as [`peek`]
/// found) and hands its inflated content to `inside`, which reads it to its end (as
/// [`literal::literal_message`] does: only padding may follow the literal data), so the
/// deflate stream's own end is checked; then checks that nothing but padding follows the
/// packet.
pub(super) fn read_packet<T>(
    decrypted: &mut dyn Read,
    inside: impl FnOnce(&mut dyn Read) -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    let header = match framing::read_header(decrypted).map_err(|e| damaged(&e))? {
        Some(Ok(
            h @ Header {
                tag: COMPRESSED, ..
            },
        )) => h,
        _ => {
            return Err(malformed(
                "the compressed data packet's header cannot be read",
            ))
        }
    };
    let mut body = Body::new(&mut *decrypted, header.length);
    let mut algo = [0u8; 1];
    body.read_exact(&mut algo).map_err(|e| damaged(&e))?;
    let mut inflate = Inflate::new(body, algo[0] == ZLIB);
    let found = inside(&mut inflate)?;
    // Bytes after the end of the deflate stream, inside the packet, are skipped (as gpg and
    // sequoia do).
    io::copy(&mut inflate.input, &mut io::sink()).map_err(|e| damaged(&e))?;
    literal::only_padding(decrypted)?;
    Ok(found)
}

/// Inflates a raw deflate (ZIP) or zlib (ZLIB) stream; the stream must end as deflate
/// says, not merely where the input does.
struct Inflate<R> {
    input: R,
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
    input_ended: bool,
    state: Decompress,
    done: bool,
}

impl<R: Read> Inflate<R> {
    fn new(input: R, zlib: bool) -> Inflate<R> {
        Inflate {
            input,
            buf: Zeroizing::new(vec![0u8; INPUT_BUFFER]),
            start: 0,
            end: 0,
            input_ended: false,
            state: Decompress::new(zlib),
            done: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.start = 0;
        self.end = loop {
            match self.input.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.input_ended = self.end == 0;
        Ok(())
    }
}

impl<R: Read> Read for Inflate<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while !self.done && !out.is_empty() {
            if self.start == self.end && !self.input_ended {
                self.refill()?;
            }
            // Called also with no input left: output that did not fit last time comes now.
            let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
            let status = self
                .state
                .decompress(&self.buf[self.start..self.end], out, FlushDecompress::None)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the compressed data is corrupt: {e}"),
                    )
                })?;
            let consumed = (self.state.total_in() - before_in) as usize;
            let produced = (self.state.total_out() - before_out) as usize;
            self.start += consumed;
            self.done = status == Status::StreamEnd;
            if produced > 0 {
                return Ok(produced);
            }
            if !self.done && consumed == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the compressed data ends before its end",
                ));
            }
        }
        Ok(0)
    }
}

fn damaged(e: &io::Error) -> crate::error::Error {
    crate::error::Error::BadMessage(format!("the compressed data cannot be read: {e}"))
}

fn malformed(why: &str) -> crate::error::Error {
    crate::error::Error::Malformed(format!("Malformed message: {why}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{write::ZlibEncoder, Compression};

    use super::*;

    fn compressed(inside: &[u8], algo: u8) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(inside).expect("compress");
        let mut data = z.finish().expect("compress");
        if algo == ZIP {
            data = data[2..data.len() - 4].to_vec();
        }
        let mut p = vec![0xC8, 0xFF];
        p.extend(((data.len() + 1) as u32).to_be_bytes());
        p.push(algo);
        p.extend(data);
        p
    }

    fn literal(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0xCB, 0xFF];
        p.extend(((6 + body.len()) as u32).to_be_bytes());
        p.extend([b'b', 0, 0, 0, 0, 0]);
        p.extend(body);
        p
    }

    fn read_all(stream: &[u8]) -> crate::error::Result<Vec<u8>> {
        read_packet(&mut &stream[..], |inside| {
            let mut v = Vec::new();
            inside.read_to_end(&mut v).map_err(|e| damaged(&e))?;
            Ok(v)
        })
    }

    #[test]
    fn zip_and_zlib_with_a_literal_inside_are_found_and_read() {
        // Little of it compresses: more than the peek reads.
        let mut x = 1u32;
        let body: Vec<u8> = (0..300_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 24) as u8
            })
            .collect();
        for algo in [ZIP, ZLIB] {
            let packet = compressed(&literal(&body), algo);
            let peeked = peek(&mut &packet[..]);
            assert_eq!(peeked.algorithm, Some(algo));
            assert!(peeked.literal_inside);
            assert!(peeked.replay.len() <= PEEK_LIMIT && peeked.replay.len() < packet.len());
            assert_eq!(read_all(&packet).expect("inflate"), literal(&body));
        }
    }

    #[test]
    fn output_still_held_when_the_input_ends_comes_out() {
        // Highly compressed, read in small pieces: the input runs out long before the output.
        let body: Vec<u8> = (0..1 << 20)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
            .collect();
        for (algo, size) in [
            (ZIP, 1),
            (ZIP, 1000),
            (ZIP, 1 << 18),
            (ZLIB, 1),
            (ZLIB, 1000),
        ] {
            let packet = compressed(&literal(&body), algo);
            let mut inflate = Inflate::new(&packet[7..], algo == ZLIB);
            let mut out = Vec::new();
            let mut piece = vec![0u8; size];
            loop {
                let n = inflate.read(&mut piece).expect("inflate");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&piece[..n]);
            }
            assert!(out == literal(&body));
        }
    }

    #[test]
    fn a_signature_inside_or_bzip2_is_left_to_sequoia() {
        let one_pass = [0xC4, 13, 3, 0, 8, 22, 1, 2, 3, 4, 5, 6, 7, 8, 1];
        let peeked = peek(&mut &compressed(&one_pass, ZLIB)[..]);
        assert!(!peeked.literal_inside);
        let peeked = peek(&mut &[0xC8, 3, 3, b'B', b'Z'][..]);
        assert_eq!(peeked.algorithm, Some(3));
        assert!(!peeked.literal_inside);
        assert_eq!(&peeked.replay[..], &[0xC8, 3, 3]);
    }

    #[test]
    fn a_cut_or_corrupt_stream_is_an_error() {
        let packet = compressed(&literal(&[1u8; 5000]), ZLIB);
        let mut cut = packet[..packet.len() - 6].to_vec();
        let len = (cut.len() - 6) as u32;
        cut[2..6].copy_from_slice(&len.to_be_bytes());
        assert!(read_all(&cut).is_err());
        let mut bad = packet.clone();
        let at = bad.len() - 2;
        bad[at] ^= 0x55;
        assert!(read_all(&bad).is_err());
    }

    #[test]
    fn only_padding_may_follow_the_literal_inside() {
        let read = |inside: &[u8]| {
            let packet = compressed(inside, ZLIB);
            let mut facts = super::super::Facts::default();
            read_packet(&mut &packet[..], |inflated| {
                literal::literal_message(inflated, &mut facts, &mut io::sink(), |from, to| {
                    io::copy(from, to).map_err(|e| damaged(&e))
                })
            })
        };
        let mut padded = literal(b"x");
        padded.extend([0xD5, 2, 0, 0]);
        assert!(read(&padded).is_ok());
        let mut two = literal(b"x");
        two.extend(literal(b"y"));
        assert!(matches!(read(&two), Err(crate::error::Error::Malformed(_))));
    }

    #[test]
    fn only_padding_may_follow_the_packet() {
        let mut m = compressed(&literal(b"x"), ZIP);
        m.extend([0xD5, 2, 0, 0]);
        assert!(read_all(&m).is_ok());
        m.extend([0xCB, 1, 0]);
        assert!(read_all(&m).is_err());
    }
}

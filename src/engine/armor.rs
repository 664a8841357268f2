//! ASCII armor (RFC 9580 section 6) removed on the fly: lines are found with memchr and the
//! base64 decoded in large runs with SIMD, instead of sequoia's byte-by-byte filter. The CRC24
//! line is skipped (RFC 9580: a bad or missing checksum must not reject a message); the data
//! is authenticated by the encryption layer anyway.

use std::io::{self, Read};

use crate::error::Error;

const READ: usize = 1 << 18;

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    /// Looking for the BEGIN line.
    Start,
    /// Armor headers until a blank line.
    Headers,
    Body,
    Done,
}

/// Armor headers (`Version:`, `Comment:` ...) are kept for `inspect` and diagnostics.
pub type Headers = Vec<(String, String)>;

pub struct Dearmor<R> {
    inner: R,
    state: State,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    /// Base64 characters not decoded yet (fewer than 4 left over between runs, or a line).
    pending: Vec<u8>,
    out: Vec<u8>,
    out_at: usize,
    pub headers: Headers,
    /// The text after "-----BEGIN PGP ", e.g. "MESSAGE-----".
    pub kind: String,
}

fn invalid(text: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text.to_string())
}

impl<R: Read> Dearmor<R> {
    pub fn new(inner: R) -> Self {
        Dearmor {
            inner,
            state: State::Start,
            input: vec![0; READ],
            in_start: 0,
            in_end: 0,
            eof: false,
            pending: Vec::with_capacity(READ),
            out: Vec::with_capacity(READ),
            out_at: 0,
            headers: Vec::new(),
            kind: String::new(),
        }
    }

    /// Reads until the first body byte, so headers are known. Not an armored OpenPGP
    /// message: `NotOpenPgp`.
    pub fn read_headers(&mut self) -> Result<(), Error> {
        while matches!(self.state, State::Start | State::Headers) {
            if !self
                .step()
                .map_err(|e| Error::io("cannot read the message", e))?
            {
                break;
            }
        }
        match self.state {
            State::Start => Err(Error::NotOpenPgp("no OpenPGP data found".into())),
            _ => Ok(()),
        }
    }

    /// Refills the input buffer; `false` at the end of input with nothing left.
    fn fill(&mut self) -> io::Result<bool> {
        if self.in_start > 0 {
            self.input.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        if self.eof {
            return Ok(self.in_end > 0);
        }
        if self.in_end == self.input.len() {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.input[self.in_end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(self.in_end > 0);
                }
                Ok(n) => {
                    self.in_end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles the complete lines in the input buffer; `false` when nothing more can come.
    fn step(&mut self) -> io::Result<bool> {
        if !self.fill()? {
            if self.state == State::Body {
                // No END line: decode what came (a truncated armor is caught by the
                // encryption layer's authentication).
                self.decode(true)?;
                self.state = State::Done;
            }
            return Ok(false);
        }
        let mut at = self.in_start;
        let end = self.in_end;
        while at < end && self.state != State::Done {
            let line_end = match memchr::memchr(b'\n', &self.input[at..end]) {
                Some(i) => at + i,
                None if self.eof => end,
                // Wait for the rest of the line.
                None if end < self.input.len() || at > self.in_start => break,
                None => {
                    // A line longer than the buffer: only base64 (or text before the
                    // armor) can be that long.
                    if self.state == State::Headers {
                        return Err(invalid("an armor header line is too long"));
                    }
                    end
                }
            };
            let line = &self.input[at..line_end];
            let next = (line_end + 1).min(end);
            let trimmed = trim(line);
            match self.state {
                State::Start => {
                    if let Some(rest) = trimmed.strip_prefix(b"-----BEGIN PGP ") {
                        self.kind = String::from_utf8_lossy(rest).into_owned();
                        self.state = State::Headers;
                    }
                }
                State::Headers => {
                    if trimmed.is_empty() {
                        self.state = State::Body;
                    } else if let Some(colon) = find_header_colon(trimmed) {
                        let key = String::from_utf8_lossy(&trimmed[..colon]).into_owned();
                        let value =
                            String::from_utf8_lossy(trim(&trimmed[colon + 1..])).into_owned();
                        self.headers.push((key, value));
                    } else {
                        // No blank line after the headers (seen in the wild): body starts.
                        self.state = State::Body;
                        body_line(&mut self.pending, trimmed);
                    }
                }
                State::Body => {
                    if trimmed.starts_with(b"-----") {
                        self.decode(true)?;
                        self.state = State::Done;
                    } else if trimmed.first() == Some(&b'=') && trimmed.len() == 5 {
                        // The CRC24 line; the END line follows.
                    } else {
                        body_line(&mut self.pending, trimmed);
                    }
                }
                State::Done => {}
            }
            at = next;
            if self.state == State::Body && self.pending.len() >= READ {
                break;
            }
        }
        self.in_start = at;
        if self.state == State::Body {
            self.decode(false)?;
        }
        Ok(true)
    }

    /// Decodes the pending base64: whole quadruples, or everything at the end.
    fn decode(&mut self, last: bool) -> io::Result<()> {
        let usable = if last {
            self.pending.len()
        } else {
            self.pending.len() / 4 * 4
        };
        if usable == 0 {
            return Ok(());
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        let src = &self.pending[..usable];
        let decoded = if last {
            base64_simd::STANDARD
                .decode_to_vec(src)
                .or_else(|_| base64_simd::STANDARD_NO_PAD.decode_to_vec(src))
        } else {
            base64_simd::STANDARD.decode_to_vec(src)
        };
        let decoded =
            decoded.map_err(|_| invalid("the armor holds characters that are not base64"))?;
        self.out.extend_from_slice(&decoded);
        self.pending.drain(..usable);
        Ok(())
    }
}

fn body_line(pending: &mut Vec<u8>, line: &[u8]) {
    if line.iter().any(|b| b.is_ascii_whitespace()) {
        pending.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
    } else {
        pending.extend_from_slice(line);
    }
}

/// "Key: value" header lines: a colon followed by a space, key without spaces.
fn find_header_colon(line: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', line)?;
    let key_ok = colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic());
    let space = line.get(colon + 1).is_none_or(|b| *b == b' ');
    (key_ok && space).then_some(colon)
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}

impl<R: Read> Read for Dearmor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_at == self.out.len() {
            if self.state == State::Done || !self.step()? {
                if self.state == State::Start {
                    return Err(invalid("no OpenPGP armor found"));
                }
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_at);
        buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dearmor(text: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Dearmor::new(text).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_like_sequoia() {
        use sequoia_openpgp::armor::{Kind, Writer};
        use std::io::Write;
        for len in [1usize, 2, 3, 47, 48, 49, 1000, 3 * READ + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut w = Writer::with_headers(Vec::new(), Kind::Message, [("Comment", "x: y")])
                .expect("writer");
            w.write_all(&data).expect("write");
            let armored = w.finalize().expect("finalize");
            let mut reader = Dearmor::new(&armored[..]);
            reader.read_headers().expect("headers");
            assert_eq!(reader.headers, vec![("Comment".into(), "x: y".into())]);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert_eq!(out, data, "len {len}");
            // CRLF line ends, leading text, no CRC.
            let crlf: Vec<u8> = String::from_utf8(armored)
                .expect("utf8")
                .lines()
                .filter(|l| !(l.starts_with('=') && l.len() == 5))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
                .into_bytes();
            let mut text = b"Some mail text first.\r\n".to_vec();
            text.extend_from_slice(&crlf);
            assert_eq!(dearmor(&text).expect("crlf"), data, "len {len}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            dearmor(b"-----BEGIN PGP MESSAGE-----\n\n%%%%\n-----END PGP MESSAGE-----\n").is_err()
        );
        assert!(dearmor(b"hello").is_err());
    }
}

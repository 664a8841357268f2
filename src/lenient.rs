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

    #[test]
    fn a_minimal_pkesk_is_left_alone() {
        let mut body = vec![3, 1, 2, 3, 4, 5, 6, 7, 8, 1];
        body.extend_from_slice(&[0x00, 0x03, 0x05]);
        assert_eq!(pkesk_body(&body), None);
        body[10..].copy_from_slice(&[0x00, 0x08, 0x05]);
        assert_eq!(pkesk_body(&body).expect("mended")[10..], [0x00, 0x03, 0x05]);
    }
}

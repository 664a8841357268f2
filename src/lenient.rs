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

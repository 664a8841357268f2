//! OCB (RFC 7253) with 128-bit tags over any 128-bit block cipher, in batches so that
//! AES-NI decrypts many blocks per call. OpenPGP uses it for SEIPD v2 and for GnuPG's OCB
//! Encrypted Data packet; the `ocb3` crate does two blocks per step, which made it the
//! slowest part of bulk decryption. Encryption is only for the sealed spool.

use super::symmetric::BlockCipher;

const BATCH: usize = 64;

pub struct Ocb {
    cipher: BlockCipher,
    l_star: u128,
    l_dollar: u128,
    /// L_i for i = 0.. (enough for 2^48 blocks per message chunk).
    l: [u128; 48],
    /// The same in the byte order of memory, for [`hash`](Self::hash).
    l_native: [u128; 48],
    /// Prefix XORs of the offset steps inside a batch: `steps[k]` is L_ntz(1) ^ .. ^
    /// L_ntz(k+1), in memory order. Within a batch of 64 blocks that starts at a multiple of
    /// 64, block k's offset is the batch's first offset XOR `steps[k]` (the last excepted).
    steps: [u128; BATCH],
}

impl Drop for Ocb {
    /// The L table and L_*, L_$ are the key's encryptions: wiped with it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.l);
        zeroize::Zeroize::zeroize(&mut self.l_native);
        zeroize::Zeroize::zeroize(&mut self.steps);
        zeroize::Zeroize::zeroize(&mut self.l_star);
        zeroize::Zeroize::zeroize(&mut self.l_dollar);
    }
}

/// Doubling in GF(2^128), in constant time: the reduction is masked in, not branched on (the
/// L values derive from the key).
fn double(x: u128) -> u128 {
    let carry = (x >> 127).wrapping_neg();
    (x << 1) ^ (carry & 0x87)
}

/// What [`Pmac::update`] takes at a time (64 blocks).
pub const PMAC_STEP: usize = 16 * BATCH;

/// [`Ocb::hash`] (a PMAC) under way, over data that comes in pieces, each a multiple of
/// [`PMAC_STEP`] bytes but the last: the input re-read check hashes gigabytes twice. XOR
/// does not care for byte order, so blocks are taken as they lie in memory and the offsets
/// were turned to that order once; within a batch of 64 blocks every offset but the last is
/// the batch's first one XOR a step fixed by the key. No byte swaps, one XOR per block, then
/// AES (VAES where there is one).
#[derive(Default)]
pub struct Pmac {
    /// Sum and offset in memory order.
    sum: u128,
    offset: u128,
    /// Blocks so far.
    i: u64,
}

impl Pmac {
    /// Adds `data`, a multiple of [`PMAC_STEP`] bytes (any rest is left out).
    pub fn update(&mut self, ocb: &Ocb, data: &[u8]) {
        let mut buf = [0u8; PMAC_STEP];
        let mut masks = [0u128; BATCH];
        for batch in data.chunks_exact(PMAC_STEP) {
            for (mask, step) in masks.iter_mut().zip(&ocb.steps[..BATCH - 1]) {
                *mask = self.offset ^ step;
            }
            self.i += BATCH as u64;
            self.offset ^= ocb.steps[BATCH - 2] ^ ocb.l_native[self.i.trailing_zeros() as usize];
            masks[BATCH - 1] = self.offset;
            for ((out, c), mask) in buf
                .chunks_exact_mut(16)
                .zip(batch.chunks_exact(16))
                .zip(&masks)
            {
                out.copy_from_slice(&(native(c) ^ mask).to_ne_bytes());
            }
            ocb.cipher.encrypt_in_place(&mut buf);
            self.sum ^= xor_all(&buf);
        }
    }

    /// Adds the last piece (any length) and gives the hash.
    pub fn finish(mut self, ocb: &Ocb, last: &[u8]) -> u128 {
        let whole = last.len() / PMAC_STEP * PMAC_STEP;
        self.update(ocb, &last[..whole]);
        let tail = &last[whole..];
        let blocks = tail.len() / 16 * 16;
        let mut buf = [0u8; PMAC_STEP];
        for (c, out) in tail[..blocks]
            .chunks_exact(16)
            .zip(buf.chunks_exact_mut(16))
        {
            self.i += 1;
            self.offset ^= ocb.l_native[self.i.trailing_zeros() as usize];
            out.copy_from_slice(&(native(c) ^ self.offset).to_ne_bytes());
        }
        ocb.cipher.encrypt_in_place(&mut buf[..blocks]);
        let mut sum = u128::from_be(self.sum ^ xor_all(&buf[..blocks]));
        let rest = &tail[blocks..];
        if !rest.is_empty() {
            let offset = u128::from_be(self.offset) ^ ocb.l_star;
            let mut padded = [0u8; 16];
            padded[..rest.len()].copy_from_slice(rest);
            padded[rest.len()] = 0x80;
            sum ^= ocb.encipher(u128::from_be_bytes(padded) ^ offset);
        }
        sum
    }
}

/// The XOR of the 16-byte blocks of `buf`, as they lie in memory.
fn xor_all(buf: &[u8]) -> u128 {
    buf.chunks_exact(16).fold(0u128, |acc, b| acc ^ native(b))
}

/// 16 bytes as they lie in memory.
fn native(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    u128::from_ne_bytes(b)
}

fn block(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    u128::from_be_bytes(b)
}

impl Ocb {
    /// `None` if the cipher does not have 128-bit blocks.
    pub fn new(cipher: BlockCipher) -> Option<Self> {
        if cipher.block_size() != 16 {
            return None;
        }
        let mut zero = [0u8; 16];
        cipher.encrypt_in_place(&mut zero);
        let l_star = u128::from_be_bytes(zero);
        let l_dollar = double(l_star);
        let mut l = [0u128; 48];
        l[0] = double(l_dollar);
        for i in 1..l.len() {
            l[i] = double(l[i - 1]);
        }
        let l_native = l.map(u128::to_be);
        let mut steps = [0u128; BATCH];
        let mut acc = 0u128;
        for (k, step) in steps.iter_mut().enumerate() {
            acc ^= l_native[(k + 1).trailing_zeros() as usize];
            *step = acc;
        }
        Some(Ocb {
            cipher,
            l_star,
            l_dollar,
            l,
            l_native,
            steps,
        })
    }

    fn encipher(&self, x: u128) -> u128 {
        let mut b = x.to_be_bytes();
        self.cipher.encrypt_in_place(&mut b);
        u128::from_be_bytes(b)
    }

    /// Offset_0 for `nonce` (at most 15 bytes).
    fn initial_offset(&self, nonce: &[u8]) -> u128 {
        let mut n = 1u128;
        for &b in nonce {
            n = (n << 8) | u128::from(b);
        }
        let bottom = (n & 63) as u32;
        let ktop = self.encipher(n & !63);
        let ktop_bytes = ktop.to_be_bytes();
        let mut lo = [0u8; 8];
        for (i, b) in lo.iter_mut().enumerate() {
            *b = ktop_bytes[i] ^ ktop_bytes[i + 1];
        }
        let lo = u64::from_be_bytes(lo);
        if bottom == 0 {
            ktop
        } else {
            (ktop << bottom) | (u128::from(lo) >> (64 - bottom))
        }
    }

    /// HASH(K, A) of RFC 7253: a PMAC, also used as the keyed check of re-read input.
    pub fn hash(&self, ad: &[u8]) -> u128 {
        Pmac::default().finish(self, ad)
    }

    /// Decrypts `buf` in place and checks `tag`. On a bad tag the buffer is wiped and
    /// `false` returned.
    pub fn decrypt(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let expected = self.crypt(nonce, ad, buf, false);
        let ok = tag.len() == 16 && constant_time_eq(&expected.to_be_bytes(), tag);
        if !ok {
            buf.iter_mut().for_each(|b| *b = 0);
        }
        ok
    }

    /// Encrypts `buf` in place and returns the tag: the sealed plaintext between the two
    /// passes of a compressed message ([`super::sealed`]).
    pub fn encrypt(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.crypt(nonce, ad, buf, true).to_be_bytes()
    }

    /// OCB over `buf` in place, either way, returning the tag. The checksum is the XOR of
    /// the plaintext blocks: taken before the cipher when encrypting, after it when
    /// decrypting. Inlined into both callers, so `encrypt` is a constant in each.
    #[inline(always)]
    fn crypt(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], encrypt: bool) -> u128 {
        let mut offset = self.initial_offset(nonce);
        let mut checksum = 0u128;
        let full = buf.len() / 16 * 16;
        let mut offsets = [0u128; BATCH];
        let mut i = 0u64;
        for batch in buf[..full].chunks_mut(16 * BATCH) {
            let n = batch.len() / 16;
            for (k, b) in batch.chunks_exact_mut(16).enumerate() {
                i += 1;
                offset ^= self.l[i.trailing_zeros() as usize];
                offsets[k] = offset;
                let x = block(b);
                if encrypt {
                    checksum ^= x;
                }
                b.copy_from_slice(&(x ^ offset).to_be_bytes());
            }
            if encrypt {
                self.cipher.encrypt_in_place(batch);
            } else {
                self.cipher.decrypt_in_place(batch);
            }
            for (b, off) in batch.chunks_exact_mut(16).zip(&offsets[..n]) {
                let y = block(b) ^ off;
                if !encrypt {
                    checksum ^= y;
                }
                b.copy_from_slice(&y.to_be_bytes());
            }
        }
        let rest = &mut buf[full..];
        if !rest.is_empty() {
            offset ^= self.l_star;
            let pad = self.encipher(offset).to_be_bytes();
            let mut padded = [0u8; 16];
            if encrypt {
                padded[..rest.len()].copy_from_slice(rest);
            }
            for (k, c) in rest.iter_mut().enumerate() {
                *c ^= pad[k];
            }
            if !encrypt {
                padded[..rest.len()].copy_from_slice(rest);
            }
            padded[rest.len()] = 0x80;
            checksum ^= u128::from_be_bytes(padded);
            zeroize::Zeroize::zeroize(&mut padded);
        }
        let tag = self.encipher(checksum ^ offset ^ self.l_dollar) ^ self.hash(ad);
        zeroize::Zeroize::zeroize(&mut checksum);
        zeroize::Zeroize::zeroize(&mut offsets);
        tag
    }
}

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn ocb() -> Ocb {
        Ocb::new(BlockCipher::new(7, &hex("000102030405060708090A0B0C0D0E0F")).expect("aes"))
            .expect("ocb")
    }

    /// RFC 7253, Appendix A: the first three sample results (AES-128, 96-bit nonces).
    #[test]
    fn rfc7253_samples() {
        let cases = [
            (
                "BBAA99887766554433221100",
                "",
                "",
                "785407BFFFC8AD9EDCC5520AC9111EE6",
            ),
            (
                "BBAA99887766554433221101",
                "0001020304050607",
                "0001020304050607",
                "6820B3657B6F615A5725BDA0D3B4EB3A257C9AF1F8F03009",
            ),
            (
                "BBAA99887766554433221102",
                "0001020304050607",
                "",
                "81017F8203F081277152FADE694A0A00",
            ),
        ];
        for (nonce, ad, plain, sealed) in cases {
            let sealed = hex(sealed);
            let (ct, tag) = sealed.split_at(sealed.len() - 16);
            let mut buf = ct.to_vec();
            assert!(
                ocb().decrypt(&hex(nonce), &hex(ad), &mut buf, tag),
                "{nonce}"
            );
            assert_eq!(buf, hex(plain), "{nonce}");
        }
    }

    /// Against the `ocb3` crate with OpenPGP's 15-byte nonces, every length around the batch
    /// and block boundaries, and a flipped bit in every place.
    #[test]
    fn matches_ocb3_crate_and_rejects_changes() {
        use aead::{AeadInPlace, KeyInit};
        let key = hex("000102030405060708090A0B0C0D0E0F");
        let reference =
            ocb3::Ocb3::<aes::Aes128, cipher::consts::U15>::new_from_slice(&key).expect("key");
        let nonce = [7u8; 15];
        for len in [0usize, 1, 15, 16, 17, 255, 1024, 1025, 16 * BATCH + 3, 5000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut sealed = plain.clone();
            let tag = reference
                .encrypt_in_place_detached(&nonce.into(), b"header", &mut sealed)
                .expect("seal");
            let mut buf = sealed.clone();
            assert!(
                ocb().decrypt(&nonce, b"header", &mut buf, &tag),
                "len {len}"
            );
            assert_eq!(buf, plain, "len {len}");
            let mut bad = sealed.clone();
            if len > 0 {
                bad[len / 2] ^= 1;
                assert!(!ocb().decrypt(&nonce, b"header", &mut bad, &tag));
            }
            let mut buf = sealed.clone();
            assert!(!ocb().decrypt(&nonce, b"headex", &mut buf, &tag));
            let mut ours = plain.clone();
            assert_eq!(ocb().encrypt(&nonce, b"header", &mut ours), tag[..]);
            assert_eq!(ours, sealed, "len {len}");
        }
    }

    /// HASH over associated data of every length around the block and batch boundaries, as
    /// the `ocb3` crate computes it (the empty message's tag is HASH(A) under the offsets).
    #[test]
    fn long_associated_data_matches_ocb3_crate() {
        use aead::{AeadInPlace, KeyInit};
        let key = hex("000102030405060708090A0B0C0D0E0F");
        let reference =
            ocb3::Ocb3::<aes::Aes128, cipher::consts::U15>::new_from_slice(&key).expect("key");
        let nonce = [9u8; 15];
        for len in [
            16usize,
            31,
            16 * BATCH - 1,
            16 * BATCH,
            16 * BATCH + 17,
            40_000,
        ] {
            let ad: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut empty = Vec::new();
            let tag = reference
                .encrypt_in_place_detached(&nonce.into(), &ad, &mut empty)
                .expect("seal");
            assert!(ocb().decrypt(&nonce, &ad, &mut empty, &tag), "ad {len}");
            let mut changed = ad.clone();
            changed[len - 1] ^= 0x80;
            assert!(
                !ocb().decrypt(&nonce, &changed, &mut Vec::new(), &tag),
                "ad {len}"
            );
        }
    }

    /// The same hash whole or in pieces of any multiple of the step.
    #[test]
    fn pieces_hash_as_the_whole() {
        let data: Vec<u8> = (0..5 * PMAC_STEP + 77)
            .map(|i| (i * 31 + 5) as u8)
            .collect();
        let ocb = ocb();
        let mut pmac = Pmac::default();
        pmac.update(&ocb, &data[..PMAC_STEP]);
        pmac.update(&ocb, &data[PMAC_STEP..3 * PMAC_STEP]);
        assert_eq!(pmac.finish(&ocb, &data[3 * PMAC_STEP..]), ocb.hash(&data));
    }
}

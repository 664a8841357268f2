//! Block ciphers by OpenPGP algorithm id, and CFB decryption that runs many blocks at once.
//!
//! OpenPGP's SEIPD v1 is plain CFB with a zero IV. CFB *decryption* is parallel: every
//! keystream block is the encryption of a ciphertext block the reader already has, so a
//! buffer of ciphertext turns into plaintext with one batched cipher call (AES-NI runs eight
//! blocks at a time) instead of one call per block.

use cipher::{inout::InOutBuf, BlockDecrypt, BlockEncrypt, KeyInit};

/// A block cipher OpenPGP names by number, keyed.
pub enum BlockCipher {
    /// AES from the `aes` 0.9 crate, which uses VAES (two or four blocks per instruction)
    /// where the processor has it, AES-NI else: CFB decryption and the PMAC of the re-read
    /// check took 1.7 times as long with 0.8's AES-NI alone (docs/benchmarks.md).
    Aes(Box<Aes>),
    Other(Box<Other>),
}

/// AES by key size.
pub enum Aes {
    A128(aes09::Aes128),
    A192(aes09::Aes192),
    A256(aes09::Aes256),
}

/// The other ciphers, from their RustCrypto crates (behind one box: Blowfish's tables are 4 KiB).
#[allow(clippy::large_enum_variant)]
pub enum Other {
    Idea(idea::Idea),
    TripleDes(des::TdesEde3),
    Cast5(cast5::Cast5),
    Blowfish(blowfish::Blowfish),
    Twofish(twofish::Twofish),
    Camellia128(camellia::Camellia128),
    Camellia192(camellia::Camellia192),
    Camellia256(camellia::Camellia256),
}

/// What the user should hear about a cipher that still decrypts but is past its time.
pub fn weakness(algo: u8) -> Option<&'static str> {
    match algo {
        1 => Some("IDEA, a 64-bit block cipher from 1991"),
        2 => Some("3DES, a 64-bit block cipher from the 1990s"),
        3 => Some("CAST5, a 64-bit block cipher from before 2010"),
        4 => Some("Blowfish, a 64-bit block cipher from 1993"),
        _ => None,
    }
}

/// The name OpenPGP gives symmetric algorithm `algo`.
pub fn name(algo: u8) -> String {
    match algo {
        0 => "no encryption".into(),
        1 => "IDEA".into(),
        2 => "3DES".into(),
        3 => "CAST5".into(),
        4 => "Blowfish".into(),
        7 => "AES-128".into(),
        8 => "AES-192".into(),
        9 => "AES-256".into(),
        10 => "Twofish".into(),
        11 => "Camellia-128".into(),
        12 => "Camellia-192".into(),
        13 => "Camellia-256".into(),
        n => format!("unknown cipher {n}"),
    }
}

/// Key length in bytes of symmetric algorithm `algo`, if cardecrypt knows it.
pub fn key_size(algo: u8) -> Option<usize> {
    Some(match algo {
        1 | 3 | 4 | 7 | 11 => 16,
        2 | 8 | 12 => 24,
        9 | 10 | 13 => 32,
        _ => return None,
    })
}

macro_rules! each {
    ($other:expr, $c:ident => $body:expr) => {
        match $other {
            Other::Idea($c) => $body,
            Other::TripleDes($c) => $body,
            Other::Cast5($c) => $body,
            Other::Blowfish($c) => $body,
            Other::Twofish($c) => $body,
            Other::Camellia128($c) => $body,
            Other::Camellia192($c) => $body,
            Other::Camellia256($c) => $body,
        }
    };
}

macro_rules! each_aes {
    ($aes:expr, $c:ident => $body:expr) => {
        match $aes {
            Aes::A128($c) => $body,
            Aes::A192($c) => $body,
            Aes::A256($c) => $body,
        }
    };
}

impl BlockCipher {
    /// The cipher `algo` keyed with `key`; `None` for an unknown algorithm or a key of the
    /// wrong length.
    pub fn new(algo: u8, key: &[u8]) -> Option<Self> {
        if key_size(algo) != Some(key.len()) {
            return None;
        }
        fn keyed<C: KeyInit>(key: &[u8]) -> Option<C> {
            C::new_from_slice(key).ok()
        }
        fn aes<C: aes09::cipher::KeyInit>(key: &[u8]) -> Option<C> {
            C::new_from_slice(key).ok()
        }
        Some(match algo {
            7 => BlockCipher::Aes(Box::new(Aes::A128(aes(key)?))),
            8 => BlockCipher::Aes(Box::new(Aes::A192(aes(key)?))),
            9 => BlockCipher::Aes(Box::new(Aes::A256(aes(key)?))),
            other => BlockCipher::Other(Box::new(match other {
                1 => Other::Idea(keyed(key)?),
                2 => Other::TripleDes(keyed(key)?),
                3 => Other::Cast5(keyed(key)?),
                4 => Other::Blowfish(keyed(key)?),
                10 => Other::Twofish(keyed(key)?),
                11 => Other::Camellia128(keyed(key)?),
                12 => Other::Camellia192(keyed(key)?),
                13 => Other::Camellia256(keyed(key)?),
                _ => return None,
            })),
        })
    }

    pub fn block_size(&self) -> usize {
        match self {
            BlockCipher::Other(o) => match **o {
                Other::Idea(_) | Other::TripleDes(_) | Other::Cast5(_) | Other::Blowfish(_) => 8,
                _ => 16,
            },
            BlockCipher::Aes(_) => 16,
        }
    }

    /// Encrypts whole blocks of `input` into `output` (equal lengths, a multiple of the block
    /// size).
    pub fn encrypt(&self, input: &[u8], output: &mut [u8]) {
        match self {
            BlockCipher::Aes(a) => each_aes!(&**a, c => aes_encrypt(c, input, output)),
            BlockCipher::Other(o) => each!(&**o, c => encrypt_with(c, input, output)),
        }
    }

    /// Encrypts whole blocks in place.
    pub fn encrypt_in_place(&self, buf: &mut [u8]) {
        match self {
            BlockCipher::Aes(a) => each_aes!(&**a, c => aes_encrypt_in_place(c, buf)),
            BlockCipher::Other(o) => each!(&**o, c => encrypt_in_place_with(c, buf)),
        }
    }

    /// Decrypts whole blocks in place (for OCB).
    pub fn decrypt_in_place(&self, buf: &mut [u8]) {
        match self {
            BlockCipher::Aes(a) => each_aes!(&**a, c => aes_decrypt_in_place(c, buf)),
            BlockCipher::Other(o) => each!(&**o, c => decrypt_in_place_with(c, buf)),
        }
    }
}

fn aes_encrypt<C: aes09::cipher::BlockCipherEncrypt<BlockSize = aes09::cipher::consts::U16>>(
    c: &C,
    input: &[u8],
    output: &mut [u8],
) {
    let Ok(buf) = aes09::cipher::inout::InOutBuf::new(input, output) else {
        debug_assert!(false, "encrypt: unequal buffers");
        return;
    };
    let (blocks, _) = buf.into_chunks::<aes09::cipher::consts::U16>();
    c.encrypt_blocks_inout(blocks);
}

fn aes_encrypt_in_place<
    C: aes09::cipher::BlockCipherEncrypt<BlockSize = aes09::cipher::consts::U16>,
>(
    c: &C,
    buf: &mut [u8],
) {
    let (blocks, _) =
        aes09::cipher::inout::InOutBuf::from(buf).into_chunks::<aes09::cipher::consts::U16>();
    c.encrypt_blocks_inout(blocks);
}

fn aes_decrypt_in_place<
    C: aes09::cipher::BlockCipherDecrypt<BlockSize = aes09::cipher::consts::U16>,
>(
    c: &C,
    buf: &mut [u8],
) {
    let (blocks, _) =
        aes09::cipher::inout::InOutBuf::from(buf).into_chunks::<aes09::cipher::consts::U16>();
    c.decrypt_blocks_inout(blocks);
}

fn encrypt_with<C: BlockEncrypt>(c: &C, input: &[u8], output: &mut [u8]) {
    let Ok(buf) = InOutBuf::new(input, output) else {
        debug_assert!(false, "encrypt: unequal buffers");
        return;
    };
    dispatch_encrypt(c, buf);
}

fn encrypt_in_place_with<C: BlockEncrypt>(c: &C, buf: &mut [u8]) {
    dispatch_encrypt(c, InOutBuf::from(buf));
}

fn decrypt_in_place_with<C: BlockDecrypt>(c: &C, buf: &mut [u8]) {
    let (blocks, _) = InOutBuf::from(buf).into_chunks::<C::BlockSize>();
    c.decrypt_blocks_inout(blocks);
}

fn dispatch_encrypt<C: BlockEncrypt>(c: &C, buf: InOutBuf<'_, '_, u8>) {
    let (blocks, _) = buf.into_chunks::<C::BlockSize>();
    c.encrypt_blocks_inout(blocks);
}

/// CFB decryption (no OpenPGP resynchronisation: SEIPD uses plain CFB) that keeps its state
/// across calls. Every call but the last must pass whole blocks.
pub struct CfbDecryptor {
    cipher: BlockCipher,
    /// The previous ciphertext block (the IV at first).
    previous: [u8; 16],
    keystream: Vec<u8>,
}

impl CfbDecryptor {
    pub fn new(cipher: BlockCipher) -> Self {
        CfbDecryptor {
            cipher,
            previous: [0; 16],
            keystream: Vec::new(),
        }
    }

    pub fn block_size(&self) -> usize {
        self.cipher.block_size()
    }

    /// Decrypts `buf` in place. If its length is not a multiple of the block size, this is
    /// the last call.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        let bs = self.cipher.block_size();
        if buf.is_empty() {
            return;
        }
        if self.keystream.len() < KEYSTREAM {
            // Made once, then overwritten in place: no zeroing per call.
            self.keystream.resize(KEYSTREAM, 0);
        }
        let chunk = KEYSTREAM / bs * bs;
        for piece in buf.chunks_mut(chunk) {
            self.decrypt_piece(piece, bs);
        }
    }

    /// One piece of at most [`KEYSTREAM`] bytes: its keystream stays in the processor's
    /// nearest cache while it is XORed in.
    fn decrypt_piece(&mut self, piece: &mut [u8], bs: usize) {
        let blocks = piece.len().div_ceil(bs);
        let full = blocks * bs;
        let keystream = &mut self.keystream[..full];
        // Keystream block i is E(C[i-1]); C[-1] is the previous piece's last block. The
        // ciphertext is encrypted straight into place (no copy of it first).
        keystream[..bs].copy_from_slice(&self.previous[..bs]);
        self.cipher.encrypt_in_place(&mut keystream[..bs]);
        let carried = (blocks - 1) * bs;
        self.cipher
            .encrypt(&piece[..carried], &mut keystream[bs..bs + carried]);
        if piece.len() == full {
            self.previous[..bs].copy_from_slice(&piece[full - bs..]);
        }
        for (b, k) in piece.iter_mut().zip(keystream.iter()) {
            *b ^= k;
        }
    }
}

/// The keystream made at a time: small enough to stay in the nearest cache, large enough
/// for the batched AES to run at full speed.
const KEYSTREAM: usize = 8 << 10;

impl Drop for CfbDecryptor {
    /// The keystream XORed with the ciphertext is plaintext: wiped, as the last block is.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.keystream);
        zeroize::Zeroize::zeroize(&mut self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our batched CFB against the cfb-mode crate, every cipher, ragged call sizes.
    #[test]
    fn cfb_matches_reference_for_every_cipher() {
        use cipher::{AsyncStreamCipher, KeyIvInit};
        for algo in [1u8, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13] {
            let size = key_size(algo).expect("size");
            let key: Vec<u8> = (0..size as u8).collect();
            let plain: Vec<u8> = (0..60_003u32).map(|i| (i * 7 + 3) as u8).collect();
            let mut expected = plain.clone();
            macro_rules! reference {
                ($c:ty, $bs:expr) => {{
                    let iv = [0u8; $bs];
                    cfb_mode::Encryptor::<$c>::new_from_slices(&key, &iv)
                        .expect("key")
                        .encrypt(&mut expected);
                }};
            }
            match algo {
                1 => reference!(idea::Idea, 8),
                2 => reference!(des::TdesEde3, 8),
                3 => reference!(cast5::Cast5, 8),
                4 => reference!(blowfish::Blowfish, 8),
                7 => reference!(aes::Aes128, 16),
                8 => reference!(aes::Aes192, 16),
                9 => reference!(aes::Aes256, 16),
                10 => reference!(twofish::Twofish, 16),
                11 => reference!(camellia::Camellia128, 16),
                12 => reference!(camellia::Camellia192, 16),
                _ => reference!(camellia::Camellia256, 16),
            }
            let mut cfb = CfbDecryptor::new(BlockCipher::new(algo, &key).expect("cipher"));
            let bs = cfb.block_size();
            let mut got = expected.clone();
            let mut at = 0;
            // The last steps and the rest cross the keystream's pieces.
            for step in [bs, 3 * bs, 17 * bs, 64 * bs, 1100 * bs] {
                cfb.decrypt(&mut got[at..at + step]);
                at += step;
            }
            cfb.decrypt(&mut got[at..]);
            assert_eq!(got, plain, "algo {algo}");
        }
    }
}

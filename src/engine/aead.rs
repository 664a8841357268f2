//! Chunked AEAD containers: RFC 9580's SEIPD v2 and GnuPG's OCB Encrypted Data packet
//! (tag 20, LibrePGP; rfc4880bis "AEAD Encrypted Data"). Each chunk is authenticated before
//! its plaintext is returned, and the last chunk only after the final tag (which covers the
//! total length, so truncation at a chunk boundary is caught).

use std::io::{self, Read};

use aead::{generic_array::GenericArray, AeadInPlace, KeyInit};
use zeroize::Zeroizing;

use super::{ocb::Ocb, symmetric, symmetric::BlockCipher, Failure};
use crate::error::Error;

/// Which container, with its per-message value.
pub enum Container {
    /// SEIPD v2: the 32-byte salt the message key and IV are derived from.
    SeipdV2 { salt: [u8; 32] },
    /// Tag 20, version 1: the starting nonce.
    Librepgp { iv: Vec<u8> },
}

/// The container's parameters as its header gives them.
pub struct Params {
    pub sym: u8,
    pub aead: u8,
    pub chunk_octet: u8,
    pub container: Container,
}

/// Largest chunk size octet accepted: 2^(18+6) = 16 MiB chunks keep memory bounded
/// (RFC 9580 allows at most 16; GnuPG writes 16 or less).
pub const MAX_CHUNK_OCTET: u8 = 18;

pub fn aead_name(aead: u8) -> String {
    match aead {
        1 => "EAX".into(),
        2 => "OCB".into(),
        3 => "GCM".into(),
        n => format!("unknown AEAD mode {n}"),
    }
}

/// Nonce length of AEAD mode `aead`.
pub fn nonce_len(aead: u8) -> Option<usize> {
    Some(match aead {
        1 => 16,
        2 => 15,
        3 => 12,
        _ => return None,
    })
}

enum Mode {
    Ocb(Box<Ocb>),
    Eax128(Box<eax::Eax<aes::Aes128>>),
    Eax192(Box<eax::Eax<aes::Aes192>>),
    Eax256(Box<eax::Eax<aes::Aes256>>),
    Gcm128(Box<aes_gcm::Aes128Gcm>),
    Gcm192(Box<aes_gcm::AesGcm<aes::Aes192, aead::consts::U12>>),
    Gcm256(Box<aes_gcm::Aes256Gcm>),
}

impl Mode {
    fn new(sym: u8, aead: u8, key: &[u8]) -> Option<Mode> {
        fn keyed<C: KeyInit>(key: &[u8]) -> Option<Box<C>> {
            C::new_from_slice(key).ok().map(Box::new)
        }
        if symmetric::key_size(sym) != Some(key.len()) {
            return None;
        }
        Some(match (aead, sym) {
            (2, _) => Mode::Ocb(Box::new(Ocb::new(BlockCipher::new(sym, key)?)?)),
            (1, 7) => Mode::Eax128(keyed(key)?),
            (1, 8) => Mode::Eax192(keyed(key)?),
            (1, 9) => Mode::Eax256(keyed(key)?),
            (3, 7) => Mode::Gcm128(keyed(key)?),
            (3, 8) => Mode::Gcm192(keyed(key)?),
            (3, 9) => Mode::Gcm256(keyed(key)?),
            _ => return None,
        })
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `nonce` and `ad`.
    fn open(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        fn with<A: AeadInPlace>(
            a: &A,
            nonce: &[u8],
            ad: &[u8],
            buf: &mut [u8],
            tag: &[u8],
        ) -> bool {
            if nonce.len() != A::NonceSize::USIZE || tag.len() != A::TagSize::USIZE {
                return false;
            }
            a.decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                ad,
                buf,
                GenericArray::from_slice(tag),
            )
            .is_ok()
        }
        use aead::generic_array::typenum::Unsigned;
        match self {
            Mode::Ocb(o) => o.decrypt(nonce, ad, buf, tag),
            Mode::Eax128(a) => with(&**a, nonce, ad, buf, tag),
            Mode::Eax192(a) => with(&**a, nonce, ad, buf, tag),
            Mode::Eax256(a) => with(&**a, nonce, ad, buf, tag),
            Mode::Gcm128(a) => with(&**a, nonce, ad, buf, tag),
            Mode::Gcm192(a) => with(&**a, nonce, ad, buf, tag),
            Mode::Gcm256(a) => with(&**a, nonce, ad, buf, tag),
        }
    }
}

const TAG: usize = 16;

/// Plaintext of a chunked AEAD container, read from its ciphertext (the packet body after
/// the header fields).
pub struct AeadReader<R> {
    inner: R,
    mode: Mode,
    /// SEIPD v2: the derived IV (nonce minus the 8-byte index); tag 20: the whole nonce.
    iv: Zeroizing<Vec<u8>>,
    header: [u8; 5],
    v2: bool,
    chunk_size: usize,
    ahead: Vec<u8>,
    filled: usize,
    plain: Zeroizing<Vec<u8>>,
    at: usize,
    index: u64,
    total: u64,
    done: bool,
    /// An error was returned: every later read fails too.
    poisoned: bool,
    failure: Failure,
}

impl<R: Read> AeadReader<R> {
    /// The reader, or `None` if this cipher/mode pair or key is not supported.
    pub fn new(
        inner: R,
        params: &Params,
        session_key: &[u8],
        failure: Failure,
    ) -> Result<Self, Error> {
        let unsupported = || {
            Error::Unsupported(format!(
                "{} with {} in a chunked AEAD container",
                symmetric::name(params.sym),
                aead_name(params.aead)
            ))
        };
        let nonce_len = nonce_len(params.aead).ok_or_else(unsupported)?;
        if params.chunk_octet > MAX_CHUNK_OCTET {
            return Err(Error::Unsupported(format!(
                "AEAD chunks of 2^{} bytes (at most 2^{} are read, to keep memory bounded)",
                u32::from(params.chunk_octet) + 6,
                u32::from(MAX_CHUNK_OCTET) + 6
            )));
        }
        let (v2, tag_byte, version) = match params.container {
            Container::SeipdV2 { .. } => (true, 0xD2, 2),
            Container::Librepgp { .. } => (false, 0xD4, 1),
        };
        let header = [
            tag_byte,
            version,
            params.sym,
            params.aead,
            params.chunk_octet,
        ];
        let (key, iv) = match &params.container {
            Container::SeipdV2 { salt } => {
                let key_len = symmetric::key_size(params.sym).ok_or_else(unsupported)?;
                let mut okm = Zeroizing::new(vec![0u8; key_len + nonce_len - 8]);
                hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), session_key)
                    .expand(&header, &mut okm)
                    .map_err(|_| unsupported())?;
                let iv = Zeroizing::new(okm[key_len..].to_vec());
                okm.truncate(key_len);
                (okm, iv)
            }
            Container::Librepgp { iv } => {
                if iv.len() != nonce_len {
                    return Err(Error::BadMessage(
                        "the AEAD nonce has the wrong length".into(),
                    ));
                }
                (
                    Zeroizing::new(session_key.to_vec()),
                    Zeroizing::new(iv.clone()),
                )
            }
        };
        let mode = Mode::new(params.sym, params.aead, &key).ok_or_else(unsupported)?;
        let chunk_size = 1usize << (params.chunk_octet + 6);
        Ok(AeadReader {
            inner,
            mode,
            iv,
            header,
            v2,
            chunk_size,
            ahead: vec![0; chunk_size + 2 * TAG + 1],
            filled: 0,
            plain: Zeroizing::new(Vec::with_capacity(chunk_size)),
            at: 0,
            index: 0,
            total: 0,
            done: false,
            poisoned: false,
            failure,
        })
    }

    fn nonce(&self, index: u64) -> Vec<u8> {
        let mut nonce = self.iv.to_vec();
        if self.v2 {
            nonce.extend_from_slice(&index.to_be_bytes());
        } else {
            let n = nonce.len();
            for (b, i) in nonce[n - 8..].iter_mut().zip(index.to_be_bytes()) {
                *b ^= i;
            }
        }
        nonce
    }

    fn ad(&self, index: u64, total: Option<u64>) -> Vec<u8> {
        let mut ad = self.header.to_vec();
        if !self.v2 {
            ad.extend_from_slice(&index.to_be_bytes());
        }
        if let Some(total) = total {
            ad.extend_from_slice(&total.to_be_bytes());
        }
        ad
    }

    fn fail(&self, why: String) -> io::Error {
        self.failure.set(Error::BadMessage(why))
    }

    /// Decrypts the next chunk into `plain`; at the end also checks the final tag.
    fn next_chunk(&mut self) -> io::Result<()> {
        while self.filled < self.ahead.len() {
            match self.inner.read(&mut self.ahead[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let last = self.filled < self.ahead.len();
        let chunk_len = if last {
            match self.filled {
                n if n == TAG => None,
                n if n >= 2 * TAG => Some(n - 2 * TAG),
                _ => return Err(self.fail("the message is truncated (AEAD tag missing)".into())),
            }
        } else {
            Some(self.chunk_size)
        };
        self.plain.clear();
        self.at = 0;
        let mut used = 0;
        if let Some(len) = chunk_len {
            self.plain.extend_from_slice(&self.ahead[..len]);
            let nonce = self.nonce(self.index);
            let ad = self.ad(self.index, None);
            if !self
                .mode
                .open(&nonce, &ad, &mut self.plain, &self.ahead[len..len + TAG])
            {
                self.plain.clear();
                return Err(self.fail(format!(
                    "chunk {} does not authenticate: the message was damaged or altered",
                    self.index
                )));
            }
            self.index += 1;
            self.total += len as u64;
            used = len + TAG;
        }
        if last {
            let nonce = self.nonce(self.index);
            let ad = self.ad(self.index, Some(self.total));
            let tag = &self.ahead[used..used + TAG];
            if !self.mode.open(&nonce, &ad, &mut [], tag) {
                self.plain.clear();
                return Err(self.fail(
                    "the final AEAD tag does not authenticate: the message was truncated, \
                     damaged or altered"
                        .into(),
                ));
            }
            self.done = true;
        } else {
            self.ahead.copy_within(used..self.filled, 0);
            self.filled -= used;
        }
        Ok(())
    }
}

impl<R: Read> Read for AeadReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(super::poisoned());
        }
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                // Sticky, as in SEIPD v1: no read after an error succeeds.
                self.poisoned = true;
                return Err(e);
            }
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

//! The card as sequoia's `crypto::Decryptor`: PSO:DECIPHER for RSA, ECDH and X25519, the
//! host's share of each (padding, KDF, key unwrap), and which card answers mean "this PKESK
//! cannot be unwrapped" rather than "stop".

use openpgp_card::{
    ocard::{algorithm::AlgorithmAttributes, crypto::Cryptogram},
    state::Transaction,
    Card,
};
use sequoia_openpgp::{
    self as openpgp,
    crypto::{self, mem::Protected, mpi, SessionKey},
    types::{Curve, SymmetricAlgorithm},
};
use zeroize::Zeroizing;

use crate::{card::pubkey::PublicKey, error::Error};

/// Sequoia's view of the card's decryption key: PSO:DECIPHER behind `crypto::Decryptor`.
pub(super) struct CardDecryptor<'t, 'a> {
    tx: &'t mut Card<Transaction<'a>>,
    public: PublicKey,
    /// RSA ciphertexts are left-padded to the modulus length.
    modulus_bytes: usize,
    /// Card errors, kept here: sequoia's `PKESK::decrypt` returns an `Option` and drops
    /// the error it got from us, so it cannot travel inside sequoia's error as the
    /// signer's does.
    pub(super) failure: Option<Error>,
}

impl<'t, 'a> CardDecryptor<'t, 'a> {
    pub(super) fn new(
        tx: &'t mut Card<Transaction<'a>>,
        public: PublicKey,
        algorithm: &AlgorithmAttributes,
    ) -> Self {
        let modulus_bytes = match algorithm {
            AlgorithmAttributes::Rsa(rsa) => usize::from(rsa.len_n()).div_ceil(8),
            _ => 0,
        };
        CardDecryptor {
            tx,
            public,
            modulus_bytes,
            failure: None,
        }
    }

    /// The card's answer for one cryptogram. The card refusing the data itself (bad RSA
    /// padding, a point not on the curve) fails this PKESK like any other unwrap failure,
    /// with the same error: the next PKESK is tried, and nothing tells a sender probing with
    /// crafted PKESKs which check failed. PIN, touch and transport errors stop the message.
    fn decipher(&mut self, cryptogram: Cryptogram<'_>) -> openpgp::Result<Zeroizing<Vec<u8>>> {
        match self.tx.card().decipher(cryptogram) {
            Ok(v) => Ok(Zeroizing::new(v)),
            Err(e) if card_refused_the_data(&e) => Err(anyhow::anyhow!("unwrap failed")),
            Err(e) => {
                let e = Error::from(e);
                let text = e.to_string();
                self.failure = Some(e);
                Err(anyhow::anyhow!(text))
            }
        }
    }
}

impl crypto::Decryptor for CardDecryptor<'_, '_> {
    fn public(&self) -> &PublicKey {
        &self.public
    }

    fn decrypt(
        &mut self,
        ciphertext: &mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        match ciphertext {
            mpi::Ciphertext::RSA { c } => {
                let c = c.value();
                if c.len() > self.modulus_bytes {
                    return Err(anyhow::anyhow!("RSA ciphertext longer than the modulus"));
                }
                let mut padded = vec![0; self.modulus_bytes - c.len()];
                padded.extend_from_slice(c);
                let block = self.decipher(Cryptogram::RSA(&padded))?;
                Ok(SessionKey::from(&block[..]))
            }
            mpi::Ciphertext::ECDH { e, .. } => {
                let curve = match self.public.mpis() {
                    mpi::PublicKey::ECDH { curve, .. } => curve.clone(),
                    _ => return Err(anyhow::anyhow!("ECDH ciphertext for a non-ECDH key")),
                };
                let point = e.value();
                let point = match curve {
                    // The card wants the native X25519 point, without OpenPGP's 0x40 prefix.
                    Curve::Cv25519 => point.strip_prefix(&[0x40]).unwrap_or(point),
                    _ => point,
                };
                let shared = self.decipher(Cryptogram::ECDH(point))?;
                let shared = x_coordinate(&curve, &shared);
                let standard: Protected = shared.to_vec().into();
                let result = crypto::ecdh::decrypt_unwrap(
                    &self.public,
                    &standard,
                    ciphertext,
                    plaintext_len,
                );
                if result.is_ok() {
                    return result;
                }
                // Two encoders in real mailboxes fed the KDF a shared secret with its zero
                // bytes stripped: old go crypto the leading ones, old OpenPGP.js (early
                // Proton Mail) the trailing ones of X25519's little-endian secret. OpenPGP.js
                // still reads both. The AES key wrap's integrity check and then the MDC or
                // AEAD tags still have to pass, so this weakens nothing.
                for quirk in [strip_leading_zeros(shared), strip_trailing_zeros(shared)] {
                    if quirk.len() == shared.len() {
                        continue;
                    }
                    let quirk: Protected = quirk.to_vec().into();
                    if let Ok(key) = crypto::ecdh::decrypt_unwrap(
                        &self.public,
                        &quirk,
                        ciphertext,
                        plaintext_len,
                    ) {
                        return Ok(key);
                    }
                }
                result
            }
            mpi::Ciphertext::X25519 { e, key } => {
                let mpi::PublicKey::X25519 { u } = self.public.mpis() else {
                    return Err(anyhow::anyhow!("X25519 ciphertext for a non-X25519 key"));
                };
                let u = *u;
                // The card does the X25519 operation (its Curve25519 ECDH key); RFC 9580's
                // key derivation and AES key wrap are the host's.
                let shared = self.decipher(Cryptogram::ECDH(&e[..]))?;
                x25519_unwrap(&e[..], &u, &shared, key)
            }
            _ => Err(anyhow::anyhow!(
                "this kind of encrypted session key cannot be decrypted by a card"
            )),
        }
    }
}

/// Status words with which a card refuses a cryptogram's content (wrong length or data,
/// padding that does not check, "no precise diagnosis"), as opposed to the PIN, a touch or
/// the transport.
fn card_refused_the_data(e: &openpgp_card::Error) -> bool {
    use openpgp_card::ocard::StatusBytes as S;
    matches!(
        e,
        openpgp_card::Error::CardStatus(
            S::IncorrectParametersCommandDataField
                | S::WrongLength
                | S::WrongParametersP1P2
                | S::ReferencedDataNotFound
                | S::NoPreciseDiagnosis
                | S::ExecutionErrorNonVolatileMemoryUnchanged
                | S::UnknownStatus(0x6A, _)
        )
    )
}

/// RFC 9580 section 5.1.6: the key encryption key is HKDF-SHA256 over the ephemeral key,
/// the recipient's key and the shared secret, with info "OpenPGP X25519"; it unwraps the
/// session key with AES-128 key wrap.
fn x25519_unwrap(
    ephemeral: &[u8],
    recipient: &[u8; 32],
    shared: &[u8],
    wrapped: &[u8],
) -> openpgp::Result<SessionKey> {
    if shared.len() != 32 {
        return Err(anyhow::anyhow!(
            "the card's X25519 answer has {} bytes, not 32",
            shared.len()
        ));
    }
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(ephemeral);
    ikm.extend_from_slice(recipient);
    ikm.extend_from_slice(shared);
    let mut kek = Zeroizing::new([0u8; 16]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, &ikm)
        .expand(b"OpenPGP X25519", &mut kek[..])
        .map_err(|_| anyhow::anyhow!("HKDF output length"))?;
    let kek: Protected = kek.to_vec().into();
    let key = crypto::ecdh::aes_key_unwrap(SymmetricAlgorithm::AES128, &kek, wrapped)?;
    Ok(key.into())
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn strip_trailing_zeros(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    &b[..end]
}

/// Some cards answer ECDH with the whole point `04 || X || Y`; the secret is X.
fn x_coordinate<'s>(curve: &Curve, shared: &'s [u8]) -> &'s [u8] {
    let field = curve.field_size().unwrap_or(0);
    if field > 0 && shared.len() == 1 + 2 * field && shared[0] == 0x04 {
        &shared[1..1 + field]
    } else {
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_point_is_reduced_to_x() {
        let mut point = vec![0x04];
        point.extend_from_slice(&[1; 32]);
        point.extend_from_slice(&[2; 32]);
        assert_eq!(x_coordinate(&Curve::NistP256, &point), &[1; 32]);
        assert_eq!(x_coordinate(&Curve::NistP256, &[3; 32]), &[3; 32]);
    }
}

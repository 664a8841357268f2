//! Sequoia's view of the card's signature key: PSO:COMPUTE DIGITAL SIGNATURE behind
//! `crypto::Signer`. Used to make the self-signatures of certificates for card keys.

use openpgp_card::{
    ocard::crypto::{HashAlgo, SigningAlgo},
    state::Transaction,
    Card,
};
use secrecy::SecretString;
use sequoia_openpgp::{
    self as openpgp,
    crypto::{self, mpi},
    types::{HashAlgorithm, PublicKeyAlgorithm},
};

use super::pubkey::PublicKey;
use crate::error::Error;

pub struct CardSigner<'t, 'a> {
    tx: &'t mut Card<Transaction<'a>>,
    public: PublicKey,
    /// The user PIN: cards with "signature PIN forced" want a VERIFY (mode 81) before every
    /// signature. It is the PIN already checked for this operation, not a retry.
    pin: SecretString,
    /// Hashes the card can sign: ECDSA cards want the digest size to match the curve.
    hashes: Vec<HashAlgorithm>,
}

impl<'t, 'a> CardSigner<'t, 'a> {
    pub fn new(tx: &'t mut Card<Transaction<'a>>, public: PublicKey, pin: SecretString) -> Self {
        let hashes = match public.mpis() {
            mpi::PublicKey::ECDSA { curve, .. } => match curve.bits().unwrap_or(256) {
                0..=256 => vec![HashAlgorithm::SHA256],
                257..=384 => vec![HashAlgorithm::SHA384],
                _ => vec![HashAlgorithm::SHA512],
            },
            _ => vec![
                HashAlgorithm::SHA512,
                HashAlgorithm::SHA384,
                HashAlgorithm::SHA256,
            ],
        };
        CardSigner {
            tx,
            public,
            pin,
            hashes,
        }
    }

    /// The hash to sign with: signature builders must be told (they default to SHA-512).
    pub fn hash(&self) -> HashAlgorithm {
        self.hashes[0]
    }

    /// The card's error, typed, inside sequoia's error: the caller gets it back with
    /// `downcast` (the exact error decides the exit code and hint).
    fn fail(&mut self, e: openpgp_card::Error) -> anyhow::Error {
        anyhow::Error::from(Error::from(e))
    }
}

impl crypto::Signer for CardSigner<'_, '_> {
    fn public(&self) -> &PublicKey {
        &self.public
    }

    fn acceptable_hashes(&self) -> &[HashAlgorithm] {
        &self.hashes
    }

    fn sign(&mut self, hash_algo: HashAlgorithm, digest: &[u8]) -> openpgp::Result<mpi::Signature> {
        let algo = match self.public.pk_algo() {
            #[allow(deprecated)]
            PublicKeyAlgorithm::RSAEncryptSign | PublicKeyAlgorithm::RSASign => {
                SigningAlgo::RSA(match hash_algo {
                    HashAlgorithm::SHA256 => HashAlgo::SHA256,
                    HashAlgorithm::SHA384 => HashAlgo::SHA384,
                    HashAlgorithm::SHA512 => HashAlgo::SHA512,
                    other => return Err(anyhow::anyhow!("hash {other} not supported by cards")),
                })
            }
            _ => SigningAlgo::ECC,
        };
        // A signing PIN another program verified (a card set to take it for several
        // signatures) is used as it is: sent again, it would be ours to forget, behind
        // that program's back.
        if self.tx.card().check_pw1_sign().is_err() {
            if let Err(e) = self.tx.verify_user_signing_pin(self.pin.clone()) {
                return Err(self.fail(e));
            }
        }
        let sig = match self.tx.card().signature_for_hash(algo, digest) {
            Ok(sig) => sig,
            Err(e) => return Err(self.fail(e)),
        };
        Ok(match self.public.pk_algo() {
            PublicKeyAlgorithm::EdDSA | PublicKeyAlgorithm::ECDSA => {
                let (r, s) = sig.split_at(sig.len() / 2);
                let (r, s) = (mpi::MPI::new(r), mpi::MPI::new(s));
                if self.public.pk_algo() == PublicKeyAlgorithm::EdDSA {
                    mpi::Signature::EdDSA { r, s }
                } else {
                    mpi::Signature::ECDSA { r, s }
                }
            }
            PublicKeyAlgorithm::Ed25519 => mpi::Signature::Ed25519 {
                s: Box::new(<[u8; 64]>::try_from(&sig[..]).map_err(|_| {
                    anyhow::anyhow!("the card's Ed25519 signature is not 64 bytes")
                })?),
            },
            _ => mpi::Signature::RSA {
                s: mpi::MPI::new(&sig),
            },
        })
    }
}

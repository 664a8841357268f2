//! Key upload: a secret key file's keys, checked and converted for the card.
//!
//! The glue between Sequoia's secret key material and openpgp-card's upload format lives
//! here: openpgp-card-sequoia used to provide it, but it is deprecated and tied to Sequoia 1.

use num_bigint_dig::BigUint;
use openpgp_card::ocard::{
    crypto::{CardUploadableKey, EccKey, EccType, PrivateKeyMaterial, RSAKey},
    data::{Fingerprint, KeyGenerationTime},
};
use sequoia_openpgp::{
    crypto::mpi,
    packet::{
        key::{SecretParts, UnspecifiedRole},
        Key,
    },
    types::Curve,
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A secret (sub)key with unencrypted secret material, ready for upload.
pub struct Uploadable {
    fingerprint: Fingerprint,
    created: KeyGenerationTime,
    material: Material,
}

enum Material {
    Rsa(RsaParts),
    Ecc(EccParts),
}

struct RsaParts {
    e: Vec<u8>,
    n: Vec<u8>,
    p: Zeroizing<Vec<u8>>,
    q: Zeroizing<Vec<u8>>,
    pq: Zeroizing<Vec<u8>>,
    dp1: Zeroizing<Vec<u8>>,
    dq1: Zeroizing<Vec<u8>>,
}

#[derive(Clone)]
struct EccParts {
    oid: Vec<u8>,
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
    kind: EccType,
}

impl Uploadable {
    pub fn new(key: &Key<SecretParts, UnspecifiedRole>) -> Result<Self> {
        let fp = key.fingerprint();
        // The card's fingerprint slot has 20 bytes: a v4 fingerprint, or the first 20 bytes
        // of a v6 one (what GnuPG stores for its v5 keys). Decryption rebuilds the v6 key
        // from the card and checks it against those bytes (`card::pubkey`).
        let on_card = fp.as_bytes().get(..20).unwrap_or_default();
        let fingerprint = Fingerprint::try_from(on_card)
            .map_err(|_| Error::Usage(format!("key {fp} has no fingerprint a card can hold")))?;
        if key.version() == 6 && crate::card::pubkey::is_legacy_25519(key.mpis()) {
            return Err(Error::Usage(format!(
                "key {fp} is a v6 key with the legacy Curve25519 encoding (ECDH or EdDSA on \
                 Curve25519), which RFC 9580 forbids for v6 keys: the key is malformed; \
                 make a new one"
            )));
        }
        let created = crate::time::to_secs(key.creation_time()) as u32;
        let secret = match key.optional_secret() {
            Some(sequoia_openpgp::packet::key::SecretKeyMaterial::Unencrypted(u)) => u,
            _ => {
                return Err(Error::Usage(format!(
                    "the secret of key {fp} is still encrypted"
                )))
            }
        };
        let material = secret.map(|s| material(key.mpis(), s))?;
        Ok(Uploadable {
            fingerprint,
            created: created.into(),
            material,
        })
    }
}

fn material(public: &mpi::PublicKey, secret: &mpi::SecretKeyMaterial) -> Result<Material> {
    match (public, secret) {
        (mpi::PublicKey::RSA { e, n }, mpi::SecretKeyMaterial::RSA { d, p, q, u }) => {
            // OpenPGP keeps p < q and u = p^-1 mod q. The card wants PQ = q'^-1 mod p', so
            // hand it the primes swapped: p' = q, q' = p, and PQ is OpenPGP's u.
            let (card_p, card_q) = (q.value(), p.value());
            let d = BigUint::from_bytes_be(d.value());
            let one = BigUint::from(1u8);
            let dp1 = &d % (BigUint::from_bytes_be(card_p) - &one);
            let dq1 = &d % (BigUint::from_bytes_be(card_q) - &one);
            Ok(Material::Rsa(RsaParts {
                e: e.value().to_vec(),
                n: n.value().to_vec(),
                p: Zeroizing::new(card_p.to_vec()),
                q: Zeroizing::new(card_q.to_vec()),
                pq: Zeroizing::new(u.value().to_vec()),
                dp1: Zeroizing::new(dp1.to_bytes_be()),
                dq1: Zeroizing::new(dq1.to_bytes_be()),
            }))
        }
        (mpi::PublicKey::ECDH { curve, q, .. }, mpi::SecretKeyMaterial::ECDH { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::ECDH)
        }
        (mpi::PublicKey::ECDSA { curve, q }, mpi::SecretKeyMaterial::ECDSA { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::ECDSA)
        }
        (mpi::PublicKey::EdDSA { curve, q }, mpi::SecretKeyMaterial::EdDSA { scalar }) => {
            ecc(curve, q.value(), scalar.value(), EccType::EdDSA)
        }
        // RFC 9580's native Curve25519 keys (algorithms 25 and 27) are the card's
        // Curve25519 keys with another encoding: the public key gets OpenPGP's 0x40 prefix;
        // an X25519 secret is little-endian (RFC 7748) where legacy ECDH's is big-endian,
        // while Ed25519's seed is the same string in both.
        (mpi::PublicKey::X25519 { u }, mpi::SecretKeyMaterial::X25519 { x }) => {
            let mut big_endian = Zeroizing::new(x.to_vec());
            big_endian.reverse();
            ecc(&Curve::Cv25519, &prefixed(u), &big_endian, EccType::ECDH)
        }
        (mpi::PublicKey::Ed25519 { a }, mpi::SecretKeyMaterial::Ed25519 { x }) => {
            ecc(&Curve::Ed25519, &prefixed(a), x, EccType::EdDSA)
        }
        _ => Err(Error::Usage(
            "this key algorithm cannot be put on an OpenPGP card".into(),
        )),
    }
}

fn prefixed(native: &[u8]) -> Vec<u8> {
    let mut point = vec![0x40];
    point.extend_from_slice(native);
    point
}

fn ecc(curve: &Curve, q: &[u8], scalar: &[u8], kind: EccType) -> Result<Material> {
    let field = curve
        .field_size()
        .map_err(|_| Error::Usage(format!("curve {curve} is not supported")))?;
    // MPIs drop leading zeros; the card wants the scalar at full length.
    let mut private = Zeroizing::new(vec![0u8; field.saturating_sub(scalar.len())]);
    private.extend_from_slice(scalar);
    // Cards take the scalar as OpenPGP stores it (for X25519 big-endian, unlike RFC 7748: the
    // card reverses it itself) and the public point with OpenPGP's 0x40 prefix, as gpg sends.
    let public = q.to_vec();
    Ok(Material::Ecc(EccParts {
        oid: curve.oid().to_vec(),
        private,
        public,
        kind,
    }))
}

impl CardUploadableKey for Uploadable {
    fn private_key(&self) -> Result<PrivateKeyMaterial, openpgp_card::Error> {
        Ok(match &self.material {
            Material::Rsa(r) => PrivateKeyMaterial::R(Box::new(RsaParts {
                e: r.e.clone(),
                n: r.n.clone(),
                p: r.p.clone(),
                q: r.q.clone(),
                pq: r.pq.clone(),
                dp1: r.dp1.clone(),
                dq1: r.dq1.clone(),
            })),
            Material::Ecc(e) => PrivateKeyMaterial::E(Box::new(e.clone())),
        })
    }

    fn timestamp(&self) -> KeyGenerationTime {
        self.created.get().into()
    }

    fn fingerprint(&self) -> Result<Fingerprint, openpgp_card::Error> {
        Ok(self.fingerprint.clone())
    }
}

impl RSAKey for RsaParts {
    fn e(&self) -> &[u8] {
        &self.e
    }
    fn p(&self) -> &[u8] {
        &self.p
    }
    fn q(&self) -> &[u8] {
        &self.q
    }
    fn pq(&self) -> &[u8] {
        &self.pq
    }
    fn dp1(&self) -> &[u8] {
        &self.dp1
    }
    fn dq1(&self) -> &[u8] {
        &self.dq1
    }
    fn n(&self) -> &[u8] {
        &self.n
    }
}

impl EccKey for EccParts {
    fn oid(&self) -> &[u8] {
        &self.oid
    }
    fn private(&self) -> &[u8] {
        &self.private
    }
    fn public(&self) -> &[u8] {
        &self.public
    }
    fn ecc_type(&self) -> EccType {
        self.kind
    }
}

/// Reads a secret key file (armored or binary). Signatures with non-minimal MPIs, which
/// sequoia refuses and gpg reads, are mended first ([`crate::lenient`]).
pub fn read_key(path: &std::path::Path) -> Result<sequoia_openpgp::Cert> {
    use sequoia_openpgp::parse::Parse;
    use std::io::Read;
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut binary = Vec::new();
    let dearmored = sequoia_openpgp::armor::Reader::from_bytes(
        &bytes,
        sequoia_openpgp::armor::ReaderMode::Tolerant(None),
    )
    .read_to_end(&mut binary);
    let binary = if dearmored.is_ok() && !binary.is_empty() {
        binary
    } else {
        bytes
    };
    let mended = mended_keyring(&binary);
    sequoia_openpgp::Cert::from_bytes(mended.as_deref().unwrap_or(&binary)).map_err(|e| {
        Error::Usage(format!(
            "cannot read a secret key from {}: {e}",
            path.display()
        ))
    })
}

/// A binary keyring with every signature's MPIs made minimal (old go crypto and gopenpgp
/// wrote them padded, which sequoia refuses); `None` if nothing changed or the framing is
/// not plain (partial lengths do not occur in keys).
fn mended_keyring(bytes: &[u8]) -> Option<Vec<u8>> {
    use crate::engine::framing::{read_header, Length};
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut changed = false;
    while !rest.is_empty() {
        let before = rest;
        let header = read_header(&mut rest).ok()??.ok()?;
        let Length::Full(len) = header.length else {
            return None;
        };
        let body = rest.get(..usize::try_from(len).ok()?)?;
        let whole = &before[..before.len() - rest.len() + body.len()];
        rest = &rest[body.len()..];
        match (header.tag == 2)
            .then(|| crate::lenient::signature_body(body))
            .flatten()
        {
            Some(mended) => {
                out.extend_from_slice(&crate::lenient::packet(header.tag, &mended));
                changed = true;
            }
            None => out.extend_from_slice(whole),
        }
    }
    changed.then_some(out)
}

/// Which key goes to which slot.
pub struct Planned {
    pub slot: openpgp_card::ocard::KeyType,
    pub fingerprint: String,
    pub key: Uploadable,
    /// Its public part, for the public key cache.
    pub public: crate::card::pubkey::PublicKey,
    /// Said once when the key goes on the card: its binding is weak (SHA-1) or it expired.
    pub warning: Option<String>,
}

/// Picks the keys of `cert` for the card's slots: the newest valid key for each of
/// decryption, signing and authentication, or only the keys named in `only`.
pub fn plan(
    cert: &sequoia_openpgp::Cert,
    only: &[String],
    password: Option<&sequoia_openpgp::crypto::Password>,
) -> Result<Vec<Planned>> {
    let chosen = super::choose::keys(cert, only)?;
    chosen
        .into_iter()
        .map(|(slot, key, warning)| {
            let fingerprint = key.fingerprint().to_hex();
            let key = if key.has_unencrypted_secret() {
                key
            } else {
                let password = password.ok_or_else(|| {
                    Error::PinUnavailable(
                        "the key is protected by a passphrase; give it with --passphrase-file"
                            .into(),
                    )
                })?;
                match unlock(cert, &key, password) {
                    Ok(key) => key,
                    Err(e) => match decrypt_padded_secret(&key, password) {
                        Some(key) => key,
                        None => return Err(secret_key_error(&e, &fingerprint)),
                    },
                }
            };
            Ok(Planned {
                slot,
                fingerprint,
                key: Uploadable::new(&key)?,
                public: key.parts_as_public().clone(),
                warning,
            })
        })
        .collect()
}

/// Unlocks `key` with `password`. The key takes its role in `cert` first: RFC 9580's
/// AEAD-protected secret keys (v6 keys, as sequoia and OpenPGP.js 6 lock them) bind the
/// packet type, primary key or subkey, into the authentication.
fn unlock(
    cert: &sequoia_openpgp::Cert,
    key: &Key<SecretParts, UnspecifiedRole>,
    password: &sequoia_openpgp::crypto::Password,
) -> sequoia_openpgp::Result<Key<SecretParts, UnspecifiedRole>> {
    if key.fingerprint() == cert.fingerprint() {
        let key = key.clone().role_into_primary().decrypt_secret(password)?;
        Ok(key.role_into_unspecified())
    } else {
        let key = key
            .clone()
            .role_into_subordinate()
            .decrypt_secret(password)?;
        Ok(key.role_into_unspecified())
    }
}

/// Unlocks a secret key whose decrypted material has non-minimal MPIs (GnuPG 2.1.5 wrote
/// ECC scalars with a leading zero byte), which sequoia refuses: the same CFB decryption and
/// checksum as sequoia's, then the MPIs made minimal before sequoia parses them. `None`
/// when the passphrase is wrong (the checksum decides) or the key is not of that kind.
fn decrypt_padded_secret(
    key: &Key<SecretParts, UnspecifiedRole>,
    password: &sequoia_openpgp::crypto::Password,
) -> Option<Key<SecretParts, UnspecifiedRole>> {
    use crate::engine::symmetric::{BlockCipher, CfbDecryptor};
    use sequoia_openpgp::{
        crypto::mpi::SecretKeyChecksum, packet::key::SecretKeyMaterial, types::PublicKeyAlgorithm,
    };
    use sha1::{Digest, Sha1};

    let SecretKeyMaterial::Encrypted(locked) = key.optional_secret()? else {
        return None;
    };
    if locked.aead_algo().is_some() {
        return None;
    }
    let algo = locked.algo();
    let derived = locked
        .s2k()
        .derive_key(password, algo.key_size().ok()?)
        .ok()?;
    let cipher = BlockCipher::new(u8::from(algo), &derived)?;
    // Sequoia keeps the IV in front of the ciphertext: decrypting both from a zero IV turns
    // the IV into one block to throw away, and the rest into the secret.
    let mut plain = Zeroizing::new(locked.ciphertext().ok()?.to_vec());
    CfbDecryptor::new(cipher).decrypt(&mut plain);
    let secret = plain.get(algo.block_size().ok()?..)?;
    let material = match locked.checksum()? {
        SecretKeyChecksum::SHA1 => {
            let (material, sum) = secret.split_at(secret.len().checked_sub(20)?);
            (Sha1::digest(material)[..] == *sum).then_some(material)?
        }
        SecretKeyChecksum::Sum16 => {
            let (material, sum) = secret.split_at(secret.len().checked_sub(2)?);
            let total = material
                .iter()
                .fold(0u16, |a, &b| a.wrapping_add(u16::from(b)));
            (total.to_be_bytes()[..] == *sum).then_some(material)?
        }
    };
    #[allow(deprecated)]
    let count = match key.pk_algo() {
        PublicKeyAlgorithm::RSAEncryptSign
        | PublicKeyAlgorithm::RSAEncrypt
        | PublicKeyAlgorithm::RSASign => 4,
        PublicKeyAlgorithm::ECDH | PublicKeyAlgorithm::ECDSA | PublicKeyAlgorithm::EdDSA => 1,
        _ => return None,
    };
    let mut minimal = Zeroizing::new(Vec::with_capacity(material.len()));
    crate::lenient::secret_mpis(material, count, &mut minimal)?;
    let parsed = mpi::SecretKeyMaterial::from_bytes(key.pk_algo(), &minimal).ok()?;
    Some(key.clone().add_secret(parsed.into()).0)
}

/// A passphrase that does not unlock the key, or secret key material that cannot be read
/// once unlocked (non-canonical MPIs, as GnuPG 2.1.5 wrote): two different things to say.
fn secret_key_error(e: &anyhow::Error, fingerprint: &str) -> Error {
    let text = e.to_string();
    if text.contains("MPI") || text.contains("Malformed") {
        Error::Usage(format!(
            "the passphrase is right, but the secret key material of {fingerprint} is \
             malformed ({text}); export the key again with a current gpg \
             (gpg --export-secret-keys) and import that"
        ))
    } else {
        Error::Usage(format!("wrong passphrase for key {fingerprint}"))
    }
}

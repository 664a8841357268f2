//! Rebuilds the OpenPGP public key of the card's decryption slot.
//!
//! Sequoia's session key handling wants the recipient's public key: its fingerprint feeds the
//! ECDH key derivation, and its algorithm picks the session key format. A card stores the
//! public point (or modulus), the creation time and the fingerprint, but not the ECDH KDF
//! parameters; the parameters are found by rebuilding the key with each standard choice until
//! its fingerprint is the one the card holds. The result is public data, cached on the host
//! by fingerprint, so later runs need no extra APDU.
//!
//! A card's fingerprint slot has 20 bytes: a v4 key's whole fingerprint, or the first 20 of
//! a v6 key's 32 (as GnuPG stores v5 keys). The private operation does not care about the key
//! version, so a v6 key is rebuilt the same way, as a v6 packet whose fingerprint begins with
//! the card's 20 bytes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, UNIX_EPOCH},
};

use openpgp_card::{
    ocard::{
        algorithm::AlgorithmAttributes,
        crypto::{EccType, PublicKeyMaterial},
        KeyType,
    },
    state::Transaction,
    Card,
};
use sequoia_openpgp::{
    crypto::mpi,
    packet::{
        key::{Key4, Key6, PublicParts, UnspecifiedRole},
        Key, Packet,
    },
    parse::Parse,
    serialize::MarshalInto,
    types::{Curve, HashAlgorithm, PublicKeyAlgorithm, SymmetricAlgorithm},
    KeyHandle, KeyID,
};

use super::SlotInfo;
use crate::error::{Error, Result};

pub type PublicKey = Key<PublicParts, UnspecifiedRole>;

/// Where rebuilt public keys are kept: `$XDG_CACHE_HOME/cardecrypt/keys`.
pub fn default_cache_dir() -> Option<PathBuf> {
    Some(crate::paths::cache_dir()?.join("keys"))
}

/// The public key of the decryption slot, from the cache or rebuilt from the card.
pub fn decryption_key(
    tx: &mut Card<Transaction<'_>>,
    slot: &SlotInfo,
    cache_dir: Option<&Path>,
) -> Result<PublicKey> {
    slot_key(tx, KeyType::Decryption, slot, cache_dir)
}

/// The public key in `key_type`'s slot, from the cache or rebuilt from the card.
pub fn slot_key(
    tx: &mut Card<Transaction<'_>>,
    key_type: KeyType,
    slot: &SlotInfo,
    cache_dir: Option<&Path>,
) -> Result<PublicKey> {
    let wanted = slot.fingerprint.as_bytes();
    if wanted.len() != 20 {
        return Err(Error::KeyMismatch(format!(
            "the card's fingerprint has {} bytes, not 20",
            wanted.len()
        )));
    }
    if let Some(key) = cached(wanted, cache_dir) {
        return Ok(key);
    }
    let cache_file = cache_dir.map(|d| d.join(format!("{}.pgp", hex(wanted))));
    let material = tx.public_key_material(key_type).map_err(Error::from)?;
    // Time 0 (1970) is a valid creation time, and cards report it as "no time": the
    // fingerprint check in `rebuild` tells whether it is right.
    let created = slot.created.as_ref().map_or(0, |t| t.get());
    let key = rebuild(&material, &slot.algorithm, created, wanted)?;
    if let Some(file) = cache_file {
        write_cached(&file, &key);
    }
    Ok(key)
}

/// Whether `key` is the key a card slot with fingerprint `on_card` holds.
pub fn is_on_card(key: &PublicKey, on_card: &[u8]) -> bool {
    match key.version() {
        6 => key.fingerprint().as_bytes().get(..20) == Some(on_card),
        _ => key.fingerprint().as_bytes() == on_card,
    }
}

/// Whether a recipient named by `handle` may be the key with card fingerprint `on_card`,
/// before the key is rebuilt: a v4 key's id is the last 8 bytes of its fingerprint, a v6
/// key's the first 8, and a v6 fingerprint begins with the card's 20 bytes.
pub fn may_be_on_card(handle: &KeyHandle, on_card: &[u8]) -> bool {
    match handle {
        KeyHandle::KeyID(KeyID::Long(id)) => {
            on_card.len() >= 8 && (on_card.ends_with(id) || on_card.starts_with(id))
        }
        KeyHandle::KeyID(_) => false,
        KeyHandle::Fingerprint(fp) => {
            let fp = fp.as_bytes();
            !on_card.is_empty() && (fp == on_card || (fp.len() == 32 && fp.starts_with(on_card)))
        }
    }
}

/// Legacy ECDH or EdDSA on Curve25519, which RFC 9580 (section 9.2) forbids in v6 keys.
pub fn is_legacy_25519(mpis: &mpi::PublicKey) -> bool {
    matches!(
        mpis,
        mpi::PublicKey::ECDH {
            curve: Curve::Cv25519,
            ..
        } | mpi::PublicKey::EdDSA {
            curve: Curve::Ed25519,
            ..
        }
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The 20 bytes a card keeps for `key`: its fingerprint, or a v6 key's first 20 bytes.
pub fn on_card_fingerprint(key: &PublicKey) -> Vec<u8> {
    let fp = key.fingerprint();
    let bytes = fp.as_bytes();
    bytes[..bytes.len().min(20)].to_vec()
}

/// Keeps `key` in the cache under the fingerprint a card holds for it (`card import` does,
/// so neither `card status` nor the first decrypt has to read it back from the card).
pub fn remember(key: &PublicKey, cache_dir: Option<&Path>) {
    if let Some(dir) = cache_dir {
        let file = dir.join(format!("{}.pgp", hex(&on_card_fingerprint(key))));
        write_cached(&file, key);
    }
}

/// The cached key for a card slot with fingerprint `on_card`, without asking the card.
pub fn cached(on_card: &[u8], cache_dir: Option<&Path>) -> Option<PublicKey> {
    let file = cache_dir?.join(format!("{}.pgp", hex(on_card)));
    read_cached(&file, on_card)
}

fn read_cached(file: &Path, wanted: &[u8]) -> Option<PublicKey> {
    let bytes = std::fs::read(file).ok()?;
    let key: PublicKey = match Packet::from_bytes(&bytes).ok()? {
        Packet::PublicSubkey(k) => k.role_into_unspecified(),
        Packet::PublicKey(k) => k.role_into_unspecified(),
        _ => return None,
    };
    is_on_card(&key, wanted).then_some(key)
}

fn write_cached(file: &Path, key: &PublicKey) {
    // A cache that cannot be written only costs one APDU next time.
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let packet = Packet::PublicSubkey(key.clone().role_into_subordinate());
    if let Ok(bytes) = packet.to_vec() {
        let tmp = file.with_extension("tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, file);
        }
    }
}

/// Tries each plausible encoding of the card's key, as a v4 and then as a v6 key, until
/// one has the card's fingerprint.
pub fn rebuild(
    material: &PublicKeyMaterial,
    algorithm: &AlgorithmAttributes,
    created: u32,
    wanted: &[u8],
) -> Result<PublicKey> {
    let time = UNIX_EPOCH + Duration::from_secs(created.into());
    let encodings = candidates(material, algorithm)?;
    let v4 = encodings.iter().filter_map(|(pk_algo, mpis)| {
        Key4::<PublicParts, UnspecifiedRole>::new(time, *pk_algo, mpis.clone())
            .ok()
            .map(PublicKey::from)
    });
    let v6 = encodings
        .iter()
        .filter(|(_, mpis)| !is_legacy_25519(mpis))
        .filter_map(|(pk_algo, mpis)| {
            Key6::<PublicParts, UnspecifiedRole>::new(time, *pk_algo, mpis.clone())
                .ok()
                .map(PublicKey::from)
        });
    v4.chain(v6)
        .find(|key| is_on_card(key, wanted))
        .ok_or_else(|| {
            Error::KeyMismatch(format!(
                "the card's key does not match its fingerprint {}",
                hex(wanted)
            ))
        })
}

/// The OpenPGP encodings a card key may have, the usual one first: what gpg and Sequoia
/// produce by default (for ECDH, the RFC 6637 KDF parameters matching the curve size).
pub fn candidates(
    material: &PublicKeyMaterial,
    algorithm: &AlgorithmAttributes,
) -> Result<Vec<(PublicKeyAlgorithm, mpi::PublicKey)>> {
    match material {
        PublicKeyMaterial::R(rsa) => {
            let mpis = mpi::PublicKey::RSA {
                e: mpi::MPI::new(rsa.v()),
                n: mpi::MPI::new(rsa.n()),
            };
            Ok(vec![
                (PublicKeyAlgorithm::RSAEncryptSign, mpis.clone()),
                #[allow(deprecated)]
                (PublicKeyAlgorithm::RSAEncrypt, mpis.clone()),
                #[allow(deprecated)]
                (PublicKeyAlgorithm::RSASign, mpis),
            ])
        }
        PublicKeyMaterial::E(ecc) => {
            let AlgorithmAttributes::Ecc(attrs) = algorithm else {
                return Err(Error::KeyMismatch(
                    "the card reports an EC key in a non-EC slot".into(),
                ));
            };
            let curve = Curve::from_oid(attrs.oid());
            let point = match curve {
                // OpenPGP marks a native-encoded point with a 0x40 prefix.
                Curve::Cv25519 | Curve::Ed25519 => {
                    let mut p = vec![0x40];
                    p.extend_from_slice(ecc.data());
                    p
                }
                _ => ecc.data().to_vec(),
            };
            let q = mpi::MPI::new(&point);
            Ok(match attrs.ecc_type() {
                EccType::EdDSA => {
                    // RFC 9580's Ed25519 (algorithm 27): the same card key, encoded natively.
                    let native = <[u8; 32]>::try_from(ecc.data())
                        .ok()
                        .map(|a| (PublicKeyAlgorithm::Ed25519, mpi::PublicKey::Ed25519 { a }));
                    std::iter::once((
                        PublicKeyAlgorithm::EdDSA,
                        mpi::PublicKey::EdDSA { curve, q },
                    ))
                    .chain(native)
                    .collect()
                }
                EccType::ECDSA => vec![(
                    PublicKeyAlgorithm::ECDSA,
                    mpi::PublicKey::ECDSA { curve, q },
                )],
                EccType::ECDH => {
                    // RFC 9580's X25519 (algorithm 25) is the same card key as legacy
                    // ECDH on Curve25519; only its OpenPGP encoding differs.
                    let native = match (&curve, <[u8; 32]>::try_from(ecc.data())) {
                        (Curve::Cv25519, Ok(u)) => {
                            Some((PublicKeyAlgorithm::X25519, mpi::PublicKey::X25519 { u }))
                        }
                        _ => None,
                    };
                    let usual = default_kdf(&curve);
                    let mut params = vec![usual];
                    for hash in [
                        HashAlgorithm::SHA256,
                        HashAlgorithm::SHA384,
                        HashAlgorithm::SHA512,
                    ] {
                        for sym in [
                            SymmetricAlgorithm::AES128,
                            SymmetricAlgorithm::AES192,
                            SymmetricAlgorithm::AES256,
                        ] {
                            if (hash, sym) != usual {
                                params.push((hash, sym));
                            }
                        }
                    }
                    params
                        .into_iter()
                        .map(|(hash, sym)| {
                            let mpis = mpi::PublicKey::ECDH {
                                curve: curve.clone(),
                                q: q.clone(),
                                hash,
                                sym,
                            };
                            (PublicKeyAlgorithm::ECDH, mpis)
                        })
                        .chain(native)
                        .collect()
                }
            })
        }
    }
}

/// RFC 6637's KDF parameters for a curve, as gpg and Sequoia choose them.
fn default_kdf(curve: &Curve) -> (HashAlgorithm, SymmetricAlgorithm) {
    match curve.bits().unwrap_or(256) {
        0..=256 => (HashAlgorithm::SHA256, SymmetricAlgorithm::AES128),
        257..=384 => (HashAlgorithm::SHA384, SymmetricAlgorithm::AES192),
        _ => (HashAlgorithm::SHA512, SymmetricAlgorithm::AES256),
    }
}

/// The key a freshly generated card key becomes: the usual encoding.
pub fn new_key(
    material: &PublicKeyMaterial,
    algorithm: &AlgorithmAttributes,
    created: u32,
) -> Result<PublicKey> {
    let (pk_algo, mpis) = candidates(material, algorithm)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::KeyMismatch("no encoding for the card's key".into()))?;
    let time = UNIX_EPOCH + Duration::from_secs(created.into());
    let key = Key4::<PublicParts, UnspecifiedRole>::new(time, pk_algo, mpis)
        .map_err(|e| Error::KeyMismatch(e.to_string()))?;
    Ok(key.into())
}

/// For openpgp-card's key generation: the fingerprint the card stores for a new key.
pub fn fingerprint_of_new_key(
    material: &PublicKeyMaterial,
    created: openpgp_card::ocard::data::KeyGenerationTime,
    _slot: KeyType,
) -> std::result::Result<openpgp_card::ocard::data::Fingerprint, openpgp_card::Error> {
    let algorithm = match material {
        PublicKeyMaterial::E(ecc) => ecc.algo().clone(),
        PublicKeyMaterial::R(_) => AlgorithmAttributes::Unknown(Vec::new()),
    };
    let key = new_key(material, &algorithm, created.get())
        .map_err(|e| openpgp_card::Error::InternalError(e.to_string()))?;
    openpgp_card::ocard::data::Fingerprint::try_from(key.fingerprint().as_bytes())
}

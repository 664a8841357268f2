//! Certificates for keys that live on a card, self-signed by the card itself (PSO:CDS).
//!
//! `card generate` makes one for fresh keys, `card export` rebuilds one for keys already on a
//! card. The card's signature key becomes the primary key; the decryption and authentication
//! keys become subkeys.

use std::time::SystemTime;

use openpgp_card::{ocard::KeyType, state::Transaction, Card};
use secrecy::SecretString;
use sequoia_openpgp::{
    packet::{signature::SignatureBuilder, Packet, UserID},
    types::{Features, HashAlgorithm, KeyFlags, SignatureType, SymmetricAlgorithm},
    Cert,
};

use crate::{
    card::{pubkey::PublicKey, signer::CardSigner},
    error::{Error, Result},
};

/// The public keys of a card's slots.
pub struct SlotKeys {
    pub signing: PublicKey,
    pub decryption: Option<PublicKey>,
    pub authentication: Option<PublicKey>,
}

fn other(e: anyhow::Error) -> Error {
    Error::Other(e.to_string())
}

/// Builds and self-signs (on the card, with the user PIN) a certificate for `keys`.
pub fn certify(
    tx: &mut Card<Transaction<'_>>,
    keys: &SlotKeys,
    userid: &str,
    pin: SecretString,
) -> Result<Cert> {
    let primary = keys.signing.clone().role_into_primary();
    // Signatures must not predate the keys they bind.
    let newest = [
        Some(&keys.signing),
        keys.decryption.as_ref(),
        keys.authentication.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|k| k.creation_time())
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    let now = SystemTime::now().max(newest);
    let uid = UserID::from(userid);
    let mut signer = CardSigner::new(tx, keys.signing.clone(), pin);
    let fail = |_: &mut CardSigner, e: anyhow::Error| e.downcast::<Error>().unwrap_or_else(other);

    let hash = signer.hash();
    let uid_sig = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_hash_algo(hash)
        .set_signature_creation_time(now)
        .and_then(|b| b.set_key_flags(KeyFlags::empty().set_certification().set_signing()))
        .and_then(|b| b.set_features(Features::sequoia()))
        .and_then(|b| {
            b.set_preferred_symmetric_algorithms(vec![
                SymmetricAlgorithm::AES256,
                SymmetricAlgorithm::AES128,
            ])
        })
        .and_then(|b| {
            b.set_preferred_hash_algorithms(vec![HashAlgorithm::SHA512, HashAlgorithm::SHA256])
        })
        .and_then(|b| b.set_primary_userid(true))
        .map_err(other)?;
    let uid_sig = uid_sig
        .sign_userid_binding(&mut signer, &primary, &uid)
        .map_err(|e| fail(&mut signer, e))?;

    let mut packets: Vec<Packet> = vec![
        Packet::PublicKey(primary.clone()),
        uid.into(),
        uid_sig.into(),
    ];
    let subkeys = [
        (
            keys.decryption.as_ref(),
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
        ),
        (
            keys.authentication.as_ref(),
            KeyFlags::empty().set_authentication(),
        ),
    ];
    for (key, flags) in subkeys {
        let Some(key) = key else { continue };
        let subkey = key.clone().role_into_subordinate();
        let sig = SignatureBuilder::new(SignatureType::SubkeyBinding)
            .set_hash_algo(hash)
            .set_signature_creation_time(now)
            .and_then(|b| b.set_key_flags(flags))
            .map_err(other)?
            .sign_subkey_binding(&mut signer, &primary, &subkey)
            .map_err(|e| fail(&mut signer, e))?;
        packets.push(Packet::PublicSubkey(subkey));
        packets.push(sig.into());
    }
    Cert::from_packets(packets.into_iter()).map_err(other)
}

/// The slot each kind of key lives in, in the order certificates list them.
pub const SLOTS: [KeyType; 3] = [
    KeyType::Signing,
    KeyType::Decryption,
    KeyType::Authentication,
];

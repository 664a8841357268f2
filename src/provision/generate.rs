//! Keys made on the card itself, and what the card holds and supports.

use openpgp_card::{
    ocard::{algorithm::AlgoSimple, KeyType},
    state::Transaction,
    Card,
};
use secrecy::SecretString;

use crate::{
    card::pubkey,
    certify::{SlotKeys, SLOTS},
    error::{Error, Result},
};

use super::admin::{admin, card_err};

/// Key algorithms `card generate` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgo {
    Cv25519,
    Nistp256,
    Nistp384,
    Nistp521,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgo {
    fn simple(self) -> AlgoSimple {
        match self {
            KeyAlgo::Cv25519 => AlgoSimple::Curve25519,
            KeyAlgo::Nistp256 => AlgoSimple::NIST256,
            KeyAlgo::Nistp384 => AlgoSimple::NIST384,
            KeyAlgo::Nistp521 => AlgoSimple::NIST521,
            KeyAlgo::Rsa2048 => AlgoSimple::RSA2k,
            KeyAlgo::Rsa3072 => AlgoSimple::RSA3k,
            KeyAlgo::Rsa4096 => AlgoSimple::RSA4k,
        }
    }
}

/// Generates keys in all three slots on the card; returns their public keys.
pub fn generate(
    tx: &mut Card<Transaction<'_>>,
    admin_pin: SecretString,
    allow_last_try: bool,
    algo: KeyAlgo,
) -> Result<SlotKeys> {
    let mut admin = admin(tx, admin_pin, allow_last_try)?;
    let mut keys = Vec::new();
    for slot in SLOTS {
        if let Err(e) = admin.set_algorithm(slot, algo.simple()) {
            let supported = supported_algorithms(admin.as_transaction(), slot);
            return Err(Error::Card(format!(
                "the card cannot hold {algo:?} keys in its {slot:?} slot ({e}); it supports: \
                 {supported}"
            )));
        }
        let (material, created) = admin
            .generate_key(pubkey::fingerprint_of_new_key, slot)
            .map_err(card_err)?;
        let attrs = match &material {
            openpgp_card::ocard::crypto::PublicKeyMaterial::E(ecc) => ecc.algo().clone(),
            _ => openpgp_card::ocard::algorithm::AlgorithmAttributes::Unknown(Vec::new()),
        };
        let key = pubkey::new_key(&material, &attrs, created.get())?;
        pubkey::remember(&key, pubkey::default_cache_dir().as_deref());
        keys.push(key);
    }
    let mut keys = keys.into_iter();
    Ok(SlotKeys {
        signing: keys
            .next()
            .ok_or_else(|| Error::Other("no signing key".into()))?,
        decryption: keys.next(),
        authentication: keys.next(),
    })
}

/// What the card says it supports in `slot` (its algorithm information), for error messages.
pub fn supported_algorithms(tx: &mut Card<Transaction<'_>>, slot: KeyType) -> String {
    match tx.algorithm_information() {
        Ok(Some(info)) => {
            let list: Vec<String> = info
                .for_keytype(slot)
                .iter()
                .map(|a| a.to_string())
                .collect();
            list.join(", ")
        }
        _ => "unknown (the card does not list its algorithms)".into(),
    }
}

/// The public keys of the keys already on the card (a signature key is required).
pub fn slot_keys(tx: &mut Card<Transaction<'_>>) -> Result<SlotKeys> {
    let mut found = Vec::new();
    for slot in SLOTS {
        found.push(match crate::card::slot_info(tx, slot)? {
            Some(info) => Some(pubkey::slot_key(tx, slot, &info, None)?),
            None => None,
        });
    }
    let mut found = found.into_iter();
    Ok(SlotKeys {
        signing: found.next().flatten().ok_or_else(|| {
            Error::Usage("the card has no signature key to certify its keys with".into())
        })?,
        decryption: found.next().flatten(),
        authentication: found.next().flatten(),
    })
}

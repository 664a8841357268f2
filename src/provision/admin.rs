//! The card's admin operations: PINs, cardholder data, touch policies, KDF, factory reset.

use openpgp_card::{
    ocard::{
        data::{Lang, TouchPolicy},
        KeyType,
    },
    state::Transaction,
    Card,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    card::pin::{check_tries, pin_failure},
    error::{Error, Result},
};

pub(super) fn card_err(e: openpgp_card::Error) -> Error {
    Error::from(e)
}

/// Verifies the admin PIN after checking its retry counter.
pub(super) fn admin<'b, 'a>(
    tx: &'b mut Card<Transaction<'a>>,
    admin_pin: SecretString,
    allow_last_try: bool,
) -> Result<Card<openpgp_card::state::Admin<'a, 'b>>> {
    let tries = tx.pw_status_bytes().map_err(card_err)?.err_count_pw3();
    check_tries(tries, allow_last_try)?;
    tx.as_admin_card(admin_pin)
        .map_err(|e| pin_failure(e, tries))
}

/// Which PIN operation, and with which secrets.
pub enum PinChange {
    User {
        current: SecretString,
        new: SecretString,
    },
    Admin {
        current: SecretString,
        new: SecretString,
    },
    ResetCode {
        admin: SecretString,
        new: SecretString,
    },
    UnblockWithResetCode {
        reset_code: SecretString,
        new: SecretString,
    },
    UnblockWithAdmin {
        admin: SecretString,
        new: SecretString,
    },
}

pub fn change_pin(
    tx: &mut Card<Transaction<'_>>,
    change: PinChange,
    allow_last_try: bool,
) -> Result<()> {
    let status = tx.pw_status_bytes().map_err(card_err)?;
    match change {
        PinChange::User { current, new } => {
            check_tries(status.err_count_pw1(), allow_last_try)?;
            min_len(&new, 6, "user PIN")?;
            tx.change_user_pin(current, new)
                .map_err(|e| pin_failure(e, status.err_count_pw1()))
        }
        PinChange::Admin { current, new } => {
            check_tries(status.err_count_pw3(), allow_last_try)?;
            min_len(&new, 8, "admin PIN")?;
            tx.change_admin_pin(current, new)
                .map_err(|e| pin_failure(e, status.err_count_pw3()))
        }
        PinChange::ResetCode { admin: a, new } => {
            min_len(&new, 8, "resetting code")?;
            admin(tx, a, allow_last_try)?
                .set_resetting_code(new)
                .map_err(card_err)
        }
        PinChange::UnblockWithResetCode { reset_code, new } => {
            check_tries(status.err_count_rc(), allow_last_try)?;
            min_len(&new, 6, "user PIN")?;
            tx.reset_user_pin(reset_code, new)
                .map_err(|e| pin_failure(e, status.err_count_rc()))
        }
        PinChange::UnblockWithAdmin { admin: a, new } => {
            min_len(&new, 6, "user PIN")?;
            admin(tx, a, allow_last_try)?
                .reset_user_pin(new)
                .map_err(card_err)
        }
    }
}

fn min_len(pin: &SecretString, min: usize, what: &str) -> Result<()> {
    if pin.expose_secret().chars().count() < min {
        return Err(Error::Usage(format!(
            "the new {what} must have at least {min} characters"
        )));
    }
    Ok(())
}

/// Card data an admin may set.
pub enum Setting {
    Name(String),
    Url(String),
    Lang(String),
    Touch(KeyType, TouchPolicy),
}

pub fn set(
    tx: &mut Card<Transaction<'_>>,
    admin_pin: SecretString,
    allow_last_try: bool,
    setting: Setting,
) -> Result<()> {
    let mut admin = admin(tx, admin_pin, allow_last_try)?;
    match setting {
        Setting::Name(name) => {
            // The spec's format: surname<<given names, with '<' for spaces.
            let formatted = match name.rsplit_once(' ') {
                Some((given, surname)) => format!("{surname}<<{}", given.replace(' ', "<")),
                None => name,
            };
            admin.set_cardholder_name(&formatted).map_err(card_err)
        }
        Setting::Url(url) => admin.set_url(&url).map_err(card_err),
        Setting::Lang(lang) => {
            let langs: Vec<Lang> = lang
                .split(',')
                .map(|l| {
                    let b = l.trim().as_bytes();
                    if b.len() == 2 && b.iter().all(u8::is_ascii_lowercase) {
                        Ok(Lang::from(&[b[0], b[1]]))
                    } else {
                        Err(Error::Usage(format!(
                            "{l:?} is not a two-letter language code (ISO 639-1, e.g. en)"
                        )))
                    }
                })
                .collect::<Result<_>>()?;
            admin.set_lang(&langs).map_err(card_err)
        }
        Setting::Touch(slot, policy) => admin
            .set_touch_policy(slot, policy)
            .map_err(|e| Error::Card(format!("the card does not take this touch policy: {e}"))),
    }
}

/// Switches PIN handling to the KDF-DO (iterated and salted SHA-256): from then on the card
/// stores and compares only hashes of the PINs. The current PINs are re-set as their hashes.
pub fn enable_kdf(
    tx: &mut Card<Transaction<'_>>,
    user_pin: SecretString,
    admin_pin: SecretString,
    allow_last_try: bool,
) -> Result<()> {
    use openpgp_card::ocard::data::KdfDo;
    use secrecy::SecretBox;
    use sequoia_openpgp::crypto::{Password, S2K};

    if !tx.extended_capabilities().map_err(card_err)?.kdf_do() {
        return Err(Error::Card("this card does not support the KDF-DO".into()));
    }
    if tx.kdf_do().is_ok_and(|k| k.kdf_algo() != 0) {
        return Err(Error::Usage("KDF is already enabled on this card".into()));
    }
    let status = tx.pw_status_bytes().map_err(card_err)?;
    check_tries(status.err_count_pw1(), allow_last_try)?;
    check_tries(status.err_count_pw3(), allow_last_try)?;
    let raw = |p: &SecretString| SecretBox::<[u8]>::from(p.expose_secret().as_bytes().to_vec());
    // Check both PINs before changing anything, so a typo cannot leave the card half-switched.
    tx.card()
        .verify_pw1_user(raw(&user_pin))
        .map_err(card_err)?;
    tx.card().verify_pw3(raw(&admin_pin)).map_err(card_err)?;

    let mut salts = [[0u8; 8]; 3];
    for salt in &mut salts {
        sequoia_openpgp::crypto::random(salt).map_err(|e| Error::Other(e.to_string()))?;
    }
    let kdf = KdfDo::iter_salted(
        0x08,
        salts[0].to_vec(),
        salts[1].to_vec(),
        salts[2].to_vec(),
    )
    .map_err(card_err)?;
    let hash = |pin: &SecretString, salt: [u8; 8]| -> Result<SecretBox<[u8]>> {
        let s2k = S2K::Iterated {
            hash: sequoia_openpgp::types::HashAlgorithm::SHA256,
            salt,
            hash_bytes: kdf.iter_count().unwrap_or(0x0300_0000),
        };
        let key = s2k
            .derive_key(&Password::from(pin.expose_secret()), 32)
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok(SecretBox::from(key.to_vec()))
    };
    let user_hash = hash(&user_pin, salts[0])?;
    let admin_hash = hash(&admin_pin, salts[2])?;
    tx.card().set_kdf_do(&kdf).map_err(card_err)?;
    tx.card()
        .change_pw1(raw(&user_pin), user_hash)
        .map_err(card_err)?;
    tx.card()
        .change_pw3(raw(&admin_pin), admin_hash)
        .map_err(card_err)?;
    tx.invalidate_cache().map_err(card_err)?;
    Ok(())
}

/// Wipes the card: keys, PINs (back to defaults), card data.
pub fn factory_reset(tx: &mut Card<Transaction<'_>>) -> Result<()> {
    tx.factory_reset().map_err(card_err)
}

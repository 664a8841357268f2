//! Everything `card status` shows, read from the card in one transaction.
//!
//! The JSON form is for scripts: its `schema` number changes only when a field changes
//! meaning or disappears; new fields may be added.

use openpgp_card::{
    ocard::{
        data::{KeyStatus, TouchPolicy},
        KeyType,
    },
    state::Transaction,
    Card,
};
use serde::Serialize;

use super::slot_info;
use crate::error::{Error, Result};

pub const SCHEMA: u32 = 1;

#[derive(Serialize, Debug)]
pub struct Status {
    pub schema: u32,
    pub ident: String,
    pub reader: String,
    pub manufacturer: String,
    pub serial: String,
    pub spec_version: String,
    pub cardholder: Option<String>,
    pub url: Option<String>,
    pub lang: Vec<String>,
    pub slots: Vec<Slot>,
    pub pin: PinStatus,
    pub kdf: bool,
    pub signature_count: u32,
    /// Seconds the card is still kept unlocked by `--keep-unlocked`, if it is.
    pub kept_unlocked_seconds: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct Slot {
    pub slot: &'static str,
    pub algorithm: String,
    /// 4 or 6, when the public key cache knows the key.
    pub key_version: Option<u8>,
    pub fingerprint: Option<String>,
    /// Seconds since the epoch.
    pub created: Option<u32>,
    pub origin: Option<&'static str>,
    pub touch: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct PinStatus {
    pub user_tries: u8,
    pub reset_code_tries: u8,
    pub admin_tries: u8,
    pub user_pin_valid_for_one_signature: bool,
}

fn touch_name(p: TouchPolicy) -> String {
    match p {
        TouchPolicy::Off => "off".into(),
        TouchPolicy::On => "on".into(),
        TouchPolicy::Fixed => "fixed".into(),
        TouchPolicy::Cached => "cached".into(),
        TouchPolicy::CachedFixed => "cached-fixed".into(),
        TouchPolicy::Unknown(n) => format!("unknown ({n})"),
    }
}

pub fn slot_name(slot: KeyType) -> &'static str {
    match slot {
        KeyType::Signing => "signature",
        KeyType::Decryption => "decryption",
        KeyType::Authentication => "authentication",
        KeyType::Attestation => "attestation",
    }
}

fn origin(status: KeyStatus) -> Option<&'static str> {
    match status {
        KeyStatus::NotPresent => None,
        KeyStatus::Generated => Some("generated"),
        KeyStatus::Imported => Some("imported"),
        KeyStatus::Unknown(_) => Some("unknown"),
    }
}

/// Cardholder names are stored as `Surname<<Given<Names`.
fn display_name(raw: &[u8]) -> Option<String> {
    let raw = String::from_utf8_lossy(raw).trim().to_string();
    if raw.is_empty() {
        return None;
    }
    Some(match raw.split_once("<<") {
        Some((surname, given)) => {
            format!("{} {}", given.replace('<', " "), surname.replace('<', " "))
                .trim()
                .to_string()
        }
        None => raw.replace('<', " "),
    })
}

pub fn read(tx: &mut Card<Transaction<'_>>, reader: &str) -> Result<Status> {
    let e = Error::from;
    let aid = tx.application_identifier().map_err(e)?;
    let holder = tx.cardholder_related_data().map_err(e)?;
    let url = tx.url().ok().filter(|u| !u.is_empty());
    let pw = tx.pw_status_bytes().map_err(e)?;
    let key_info = tx.key_information().ok().flatten();
    let kdf = tx.kdf_do().is_ok_and(|k| k.kdf_algo() != 0);
    let signature_count = tx.digital_signature_count().unwrap_or(0);
    let mut slots = Vec::new();
    for slot in [
        KeyType::Signing,
        KeyType::Decryption,
        KeyType::Authentication,
    ] {
        let algorithm = tx.algorithm_attributes(slot).map_err(e)?.to_string();
        let info = slot_info(tx, slot)?;
        let status = key_info.as_ref().map(|k| match slot {
            KeyType::Signing => k.sig_status(),
            KeyType::Decryption => k.dec_status(),
            _ => k.aut_status(),
        });
        // The key itself where the public key cache has it (filled by `card import` and by
        // decrypting; no APDU): a v6 key's whole fingerprint, where the card keeps only its
        // first 20 bytes.
        let cache = super::pubkey::default_cache_dir();
        let key = info
            .as_ref()
            .and_then(|i| super::pubkey::cached(i.fingerprint.as_bytes(), cache.as_deref()));
        let fingerprint = match (&info, &key) {
            (Some(_), Some(k)) if k.version() == 6 => Some(k.fingerprint().to_hex()),
            (Some(i), _) => Some(format!("{:X}", i.fingerprint)),
            (None, _) => None,
        };
        slots.push(Slot {
            slot: slot_name(slot),
            algorithm,
            key_version: key.as_ref().map(|k| k.version()),
            fingerprint,
            created: info
                .as_ref()
                .and_then(|i| i.created.as_ref().map(|t| t.get())),
            origin: status.and_then(origin),
            touch: tx
                .user_interaction_flag(slot)
                .ok()
                .flatten()
                .map(|u| touch_name(u.touch_policy())),
        });
    }
    let version = aid.version();
    Ok(Status {
        schema: SCHEMA,
        ident: aid.ident(),
        reader: reader.to_string(),
        manufacturer: aid.manufacturer_name().to_string(),
        serial: format!("{:08X}", aid.serial()),
        spec_version: format!("{}.{}", version >> 8, version & 0xff),
        cardholder: holder.name().and_then(display_name),
        url,
        lang: holder
            .lang()
            .unwrap_or_default()
            .iter()
            .map(|l| l.to_string())
            .collect(),
        slots,
        pin: PinStatus {
            user_tries: pw.err_count_pw1(),
            reset_code_tries: pw.err_count_rc(),
            admin_tries: pw.err_count_pw3(),
            user_pin_valid_for_one_signature: pw.pw1_cds_valid_once(),
        },
        kdf,
        signature_count,
        kept_unlocked_seconds: super::holder::current(&aid.ident())
            .map(|h| h.until.saturating_sub(crate::time::now())),
    })
}

impl Status {
    /// The text form, for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Card {} ({}, OpenPGP card {}, serial {})\nReader: {}\n",
            self.ident, self.manufacturer, self.spec_version, self.serial, self.reader
        );
        out.push_str(&format!(
            "Cardholder: {}\nURL: {}\nLanguage: {}\n",
            self.cardholder.as_deref().unwrap_or("-"),
            self.url.as_deref().unwrap_or("-"),
            if self.lang.is_empty() {
                "-".into()
            } else {
                self.lang.join(", ")
            }
        ));
        for s in &self.slots {
            out.push_str(&format!(
                "{:<15} {}\n",
                format!("{} key:", capitalize(s.slot)),
                match &s.fingerprint {
                    None => "[none]".to_string(),
                    Some(fp) => format!(
                        "{fp}\n                {}{}{}{}",
                        if s.key_version == Some(6) { "v6, " } else { "" },
                        s.algorithm,
                        s.created
                            .map(|t| format!(", created {}", crate::time::utc_date(t.into())))
                            .unwrap_or_default(),
                        s.origin.map(|o| format!(", {o}")).unwrap_or_default()
                    ),
                }
            ));
            if let Some(t) = &s.touch {
                out.push_str(&format!("                touch: {t}\n"));
            }
        }
        out.push_str(&format!(
            "PIN tries left: user {}, resetting code {}, admin {}\n\
             Signature PIN: {}\nKDF: {}\nSignatures made: {}\n",
            self.pin.user_tries,
            self.pin.reset_code_tries,
            self.pin.admin_tries,
            if self.pin.user_pin_valid_for_one_signature {
                "needed for every signature"
            } else {
                "valid for several signatures"
            },
            if self.kdf { "on" } else { "off" },
            self.signature_count
        ));
        if let Some(secs) = self.kept_unlocked_seconds {
            out.push_str(&format!(
                "Kept unlocked: {secs} s more (`cardecrypt lock` ends it)\n"
            ));
        }
        out
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names_read_as_people_write_them() {
        assert_eq!(crate::time::utc_date(0), "1970-01-01");
        assert_eq!(crate::time::utc_date(1_735_689_600), "2025-01-01");
        assert_eq!(
            display_name(b"Liddell<<Alice<Pleasance").as_deref(),
            Some("Alice Pleasance Liddell")
        );
        assert_eq!(display_name(b""), None);
    }
}

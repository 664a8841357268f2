//! Everything that talks to a card: finding cards, reading what a decrypt needs, PINs.
//!
//! The transport is a `card_backend::CardBackend`: PC/SC for real cards, the virtual card in
//! tests. Nothing above this module knows which.

pub mod forget;
pub mod holder;
pub mod link;
pub mod pcsc_backend;
pub mod pin;
pub mod pubkey;
pub mod report;
pub mod scdaemon;
pub mod signer;

use card_backend::CardBackend;
use openpgp_card::{
    ocard::{
        algorithm::AlgorithmAttributes,
        data::{Fingerprint, KeyGenerationTime},
        KeyType,
    },
    state::{Open, Transaction},
    Card,
};

use crate::error::{Error, Result};
use link::{ApduCounter, CardLink};

pub type Backend = Box<dyn CardBackend + Send + Sync>;

/// Where cards come from.
pub trait CardSource {
    /// Every card present, each with the name of its reader.
    fn backends(&mut self) -> Result<Vec<(String, Backend)>>;

    /// Readers whose card another program holds exclusively: when the card asked for is
    /// not among [`backends`](Self::backends), it may be that one.
    fn busy_readers(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The error for a `--card` that is not among the cards present: "in use" when a reader is
/// held exclusively (the card may be in it), else "not found".
pub fn not_found(source: &mut dyn CardSource, wanted: &str, found: Vec<String>) -> Error {
    match source.busy_readers().into_iter().next() {
        Some(reader) => Error::CardBusy { reader },
        None => Error::CardNotFound {
            wanted: wanted.to_string(),
            found,
        },
    }
}

/// The cards pcscd sees. When it goes (or [`release`](Self::release) is called), the cards
/// forget every PIN this process verified on them.
#[derive(Default)]
pub struct PcscSource {
    verified: forget::Verified,
}

impl PcscSource {
    /// A source whose cards keep the user PIN after the transaction that verified it, when
    /// the user asked to keep the card unlocked (`keep_pw1`): a holder may take it over.
    /// Otherwise every PIN is forgotten before its transaction ends.
    pub fn keeping_pw1(keep_pw1: bool) -> Self {
        let source = PcscSource::default();
        if keep_pw1 {
            source.verified.keep_after_transactions(&[forget::PW1]);
        }
        source
    }

    /// Makes the cards forget the PINs we verified, except the user PIN when a holder keeps
    /// it for the user (`keep_pw1`). Returns a note for each card that had to be reset for it.
    pub fn release(&mut self, keep_pw1: bool) -> Vec<String> {
        let keep: &[u8] = if keep_pw1 { &[forget::PW1] } else { &[] };
        self.verified
            .take(keep)
            .into_iter()
            .filter_map(|(reader, pins)| {
                let forgot = forget::forget_in_reader(&reader, &pins)?;
                forget::note(&reader, &forgot)
            })
            .collect()
    }

    /// Whether a PIN was verified in `reader` and not yet forgotten.
    pub fn verified_in(&self, reader: &str) -> bool {
        self.verified.any_in(reader)
    }
}

impl Drop for PcscSource {
    fn drop(&mut self) {
        self.release(false);
    }
}

impl CardSource for PcscSource {
    fn backends(&mut self) -> Result<Vec<(String, Backend)>> {
        let (ctx, readers) = pcsc_backend::readers()?;
        if readers.is_empty() {
            return Err(Error::NoReader);
        }
        let mut cards: Vec<(String, Backend)> = Vec::new();
        let mut busy = None;
        for reader in &readers {
            match pcsc_backend::PcscCard::connect(&ctx, reader, &self.verified)? {
                pcsc_backend::Connect::Card(card) => {
                    cards.push((card.reader().to_string(), Box::new(card)))
                }
                pcsc_backend::Connect::Busy => busy = Some(reader.to_string_lossy().into_owned()),
                pcsc_backend::Connect::Empty => {}
            }
        }
        match (cards.is_empty(), busy) {
            (true, Some(reader)) => Err(Error::CardBusy { reader }),
            (true, None) => Err(Error::NoCard {
                readers: readers
                    .iter()
                    .map(|r| r.to_string_lossy().into_owned())
                    .collect(),
            }),
            _ => Ok(cards),
        }
    }

    fn busy_readers(&mut self) -> Vec<String> {
        let Ok((ctx, readers)) = pcsc_backend::readers() else {
            return Vec::new();
        };
        readers
            .iter()
            .filter(|r| {
                matches!(
                    pcsc_backend::PcscCard::connect(&ctx, r, &self.verified),
                    Ok(pcsc_backend::Connect::Busy)
                )
            })
            .map(|r| r.to_string_lossy().into_owned())
            .collect()
    }
}

/// A card with the OpenPGP application selected.
pub struct OpenCard {
    pub reader: String,
    pub card: Card<Open>,
}

/// Selects the OpenPGP application on every card; cards without it are skipped.
pub fn open_all(
    source: &mut dyn CardSource,
    counter: &ApduCounter,
    trace: bool,
) -> Result<Vec<OpenCard>> {
    let mut open = Vec::new();
    let mut last_err = None;
    for (reader, backend) in source.backends()? {
        let link = CardLink::new(backend, counter.clone(), trace);
        match Card::<Open>::new(Box::new(link) as Backend) {
            Ok(card) => open.push(OpenCard { reader, card }),
            Err(e) => last_err = Some(Error::from(e)),
        }
    }
    match (open.is_empty(), last_err) {
        (true, Some(Error::CardRemoved)) => Err(Error::CardRemoved),
        (true, _) => Err(Error::NoCard {
            readers: Vec::new(),
        }),
        _ => Ok(open),
    }
}

/// What a decrypt needs to know about a card, all from one GET DATA 6E.
pub struct CardInfo {
    pub ident: String,
    pub decryption: Option<SlotInfo>,
    pub pw1_tries: u8,
    pub touch_for_decrypt: bool,
    pub kdf_supported: bool,
}

pub struct SlotInfo {
    pub fingerprint: Fingerprint,
    pub algorithm: AlgorithmAttributes,
    pub created: Option<KeyGenerationTime>,
}

impl CardInfo {
    pub fn read(tx: &mut Card<Transaction<'_>>) -> Result<CardInfo> {
        let ident = tx.application_identifier().map_err(Error::from)?.ident();
        let decryption = slot_info(tx, KeyType::Decryption)?;
        let pw1_tries = tx.pw_status_bytes().map_err(Error::from)?.err_count_pw1();
        let touch_for_decrypt = tx
            .user_interaction_flag(KeyType::Decryption)
            .map_err(Error::from)?
            .is_some_and(|uif| uif.touch_policy().touch_required());
        let kdf_supported = tx.extended_capabilities().map_err(Error::from)?.kdf_do();
        Ok(CardInfo {
            ident,
            decryption,
            pw1_tries,
            touch_for_decrypt,
            kdf_supported,
        })
    }
}

/// Fingerprint, algorithm and creation time of the key in `key_type`'s slot, if any.
pub fn slot_info(tx: &mut Card<Transaction<'_>>, key_type: KeyType) -> Result<Option<SlotInfo>> {
    let Some(fingerprint) = tx.fingerprint(key_type).map_err(Error::from)? else {
        return Ok(None);
    };
    Ok(Some(SlotInfo {
        fingerprint,
        algorithm: tx.algorithm_attributes(key_type).map_err(Error::from)?,
        created: tx.key_generation_time(key_type).map_err(Error::from)?,
    }))
}

/// The card's application identifier as gpg writes it (CARDCTRL, field 15 of a card key).
pub fn aid_hex(aid: &openpgp_card::ocard::data::ApplicationIdentifier) -> String {
    format!(
        "D2760001240{:X}{:04X}{:04X}{:08X}0000",
        aid.application(),
        aid.version(),
        aid.manufacturer(),
        aid.serial()
    )
}

/// True when `wanted` names this card: its full ident (`FFFE:00000001`) or its serial alone.
pub fn ident_matches(ident: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().to_ascii_uppercase();
    ident.eq_ignore_ascii_case(&wanted)
        || ident
            .split_once(':')
            .is_some_and(|(_, serial)| serial == wanted)
}

/// An openpgp-card error in the terms of a generic card operation.
impl From<openpgp_card::Error> for Error {
    fn from(e: openpgp_card::Error) -> Self {
        use openpgp_card::ocard::StatusBytes;
        match e {
            openpgp_card::Error::CardStatus(StatusBytes::PasswordNotChecked(n)) => {
                Error::WrongPin { tries_left: n }
            }
            openpgp_card::Error::CardStatus(StatusBytes::AuthenticationMethodBlocked) => {
                Error::PinBlocked
            }
            openpgp_card::Error::Smartcard(e) => pcsc_backend::classify(&e),
            other => Error::Card(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_is_named_by_ident_or_serial() {
        assert!(ident_matches("FFFE:00000001", "fffe:00000001"));
        assert!(ident_matches("FFFE:00000001", "00000001"));
        assert!(!ident_matches("FFFE:00000001", "FFFE:00000002"));
        assert!(!ident_matches("FFFE:00000001", "0001"));
    }
}

//! Message -> PKESK -> card -> session key -> authenticated plaintext.
//!
//! The host parses the message and finds the encrypted session keys; the card that holds a
//! matching key unwraps one (PSO:DECIPHER); the host decrypts and authenticates the rest.
//! Plaintext is released only after the whole message authenticated (MDC or final AEAD tag).

mod report;
mod session_key;
mod unwrap;

pub use report::Report;
pub use session_key::{GivenKey, ShownKey};

use unwrap::CardDecryptor;

use std::{io::Read, path::PathBuf};

use sequoia_openpgp::{
    self as openpgp,
    crypto::SessionKey,
    packet::{PKESK, SKESK},
    types::SymmetricAlgorithm,
    Cert, KeyHandle, KeyID,
};
use zeroize::Zeroizing;

use crate::{
    card::{
        self,
        link::ApduCounter,
        pin::{self, PinPolicy},
        pubkey, CardInfo, CardSource,
    },
    engine,
    error::{Error, Result},
    ui::Interaction,
};

pub struct DecryptOptions {
    /// Use only this card (ident or serial).
    pub card: Option<String>,
    pub pin: PinPolicy,
    /// Print every APDU (secrets redacted) and diagnostics on stderr.
    pub trace: bool,
    /// Where rebuilt public keys are cached; `None` disables the cache.
    pub key_cache: Option<PathBuf>,
    /// Certificates to check signatures inside the message against.
    pub signer_certs: Vec<Cert>,
    /// Where a piped message is spooled (ciphertext) for two passes; `$TMPDIR` if `None`.
    pub spool_dir: Option<PathBuf>,
    /// Output the decrypted packet stream instead of the literal data (gpg's `--unwrap`).
    pub unwrap: bool,
    /// Where to report the progress of a large file (the CLI draws it on a terminal).
    pub progress: Option<std::sync::Arc<engine::ProgressFn>>,
    /// The most plaintext [`decrypt`] holds in memory, in bytes.
    pub max_plaintext: u64,
    /// Put the session key in the report ([`Report::session_key`]).
    pub show_session_key: bool,
    /// Decrypt with this session key, asking no card.
    pub session_key: Option<std::sync::Arc<GivenKey>>,
}

/// Decrypts a whole message in memory. Returns the plaintext only if it is fully
/// authenticated.
pub fn decrypt(
    input: &mut dyn Read,
    source: &mut dyn CardSource,
    ui: &mut dyn Interaction,
    options: &DecryptOptions,
) -> Result<(Zeroizing<Vec<u8>>, Report)> {
    let mut message = Zeroizing::new(Vec::new());
    input
        .read_to_end(&mut message)
        .map_err(|e| Error::io("cannot read the message", e))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    let mut report = Report::default();
    let input = engine::Input::Stream(Box::new(std::io::Cursor::new(message)));
    decrypt_to(
        input,
        engine::Dest::Memory(&mut plaintext, options.max_plaintext),
        source,
        ui,
        options,
        &mut report,
    )?;
    Ok((plaintext, report))
}

/// Decrypts `input` to `dest` in bounded memory; returns the plaintext length. `report` is
/// filled in as far as decryption got, also on failure.
pub fn decrypt_to(
    input: engine::Input,
    dest: engine::Dest<'_>,
    source: &mut dyn CardSource,
    ui: &mut dyn Interaction,
    options: &DecryptOptions,
    report: &mut Report,
) -> Result<u64> {
    let counter = ApduCounter::default();
    let mut facts = engine::Facts::default();
    let settings = engine::Settings {
        spool_dir: options.spool_dir.clone(),
        signer_certs: options.signer_certs.clone(),
        unwrap: options.unwrap,
        progress: options.progress.clone(),
        export_session_key: options.show_session_key,
    };
    let result = match &options.session_key {
        Some(given) => {
            let mut keys = session_key::Given {
                key: given,
                report: &mut *report,
            };
            engine::decrypt(input, dest, &mut keys, &settings, &mut facts)
        }
        None => {
            let mut keys = CardKeys {
                source,
                ui,
                options,
                counter: counter.clone(),
                report: &mut *report,
            };
            engine::decrypt(input, dest, &mut keys, &settings, &mut facts)
        }
    };
    report.apdus = counter.get();
    report.sym_algo = facts.sym_algo.or(report.sym_algo);
    report.aead_algo = facts.aead_algo;
    report.literal = facts.literal;
    report.signatures = facts.signatures;
    report.weak_cipher = facts.weak_cipher;
    report.librepgp = facts.librepgp;
    report.compression = facts.compression;
    report.skipped = facts.skipped;
    report.session_key = facts
        .session_key
        .as_ref()
        .map(|(algo, key)| ShownKey::new(*algo, key));
    result
}

/// The card side of decryption: finds the card whose key a PKESK names and has it unwrap
/// the session key.
struct CardKeys<'h> {
    source: &'h mut dyn CardSource,
    ui: &'h mut dyn Interaction,
    options: &'h DecryptOptions,
    counter: ApduCounter,
    report: &'h mut Report,
}

fn describe_recipient(pkesk: &PKESK) -> String {
    match pkesk.recipient() {
        Some(handle) if !is_wildcard(&handle) => handle.to_hex(),
        _ => "a hidden recipient".into(),
    }
}

fn is_wildcard(handle: &KeyHandle) -> bool {
    match handle {
        KeyHandle::KeyID(id) => id.is_wildcard(),
        KeyHandle::Fingerprint(_) => false,
    }
}

/// Whether `pkesk` may be for the key in a card slot with fingerprint `on_card` (a v4 key or
/// the start of a v6 key's); hidden recipients match any key.
fn addressed_to(pkesk: &PKESK, on_card: &[u8]) -> bool {
    match pkesk.recipient() {
        None => true,
        Some(handle) if is_wildcard(&handle) => true,
        Some(handle) => pubkey::may_be_on_card(&handle, on_card),
    }
}

/// What one card did for a message.
enum CardTry {
    /// Not the card `--card` named.
    NotSelected(String),
    /// Selected, but it holds no key for the message: how to describe it in the error.
    NoKey(String),
    Unwrapped(Option<SymmetricAlgorithm>, SessionKey),
}

impl engine::SessionKeys for CardKeys<'_> {
    fn unwrap(
        &mut self,
        pkesks: &[PKESK],
        skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> Result<(Option<SymmetricAlgorithm>, SessionKey)> {
        if pkesks.is_empty() {
            return Err(if skesks.is_empty() {
                Error::BadMessage("the message has no encrypted session key".into())
            } else {
                Error::PasswordOnly
            });
        }
        self.report.recipients = pkesks.iter().map(recipient_id).collect();
        let cards = card::open_all(self.source, &self.counter, self.options.trace)?;
        let mut seen = Vec::new();
        let mut selected = 0;
        for open in cards {
            match self.try_card(open, pkesks, sym_algo, fits)? {
                CardTry::Unwrapped(algo, key) => return Ok((algo, key)),
                CardTry::NotSelected(ident) => seen.push(ident),
                CardTry::NoKey(described) => {
                    selected += 1;
                    seen.push(described);
                }
            }
        }
        match &self.options.card {
            Some(wanted) if selected == 0 => Err(card::not_found(self.source, wanted, seen)),
            _ => Err(Error::NoMatchingKey {
                recipients: pkesks.iter().map(describe_recipient).collect(),
                cards: seen,
            }),
        }
    }
}

impl CardKeys<'_> {
    /// Asks one card for the session key, if it is selected and holds a key for the
    /// message: the PIN (at most one try, only knowingly), a touch, then PSO:DECIPHER for
    /// each PKESK addressed to its key until one fits the encrypted data.
    fn try_card(
        &mut self,
        mut open: card::OpenCard,
        pkesks: &[PKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> Result<CardTry> {
        let mut tx = open.card.transaction().map_err(Error::from)?;
        let info = CardInfo::read(&mut tx)?;
        if let Some(wanted) = &self.options.card {
            if !card::ident_matches(&info.ident, wanted) {
                return Ok(CardTry::NotSelected(info.ident));
            }
        }
        let Some(slot) = &info.decryption else {
            return Ok(CardTry::NoKey(format!(
                "{} (no decryption key)",
                info.ident
            )));
        };
        let fingerprint = openpgp::Fingerprint::from_bytes(4, slot.fingerprint.as_bytes())
            .map_err(|e| Error::Card(e.to_string()))?;
        let described = format!("{} (key {})", info.ident, fingerprint.to_hex());
        let matching: Vec<&PKESK> = pkesks
            .iter()
            .filter(|p| addressed_to(p, slot.fingerprint.as_bytes()))
            .collect();
        if matching.is_empty() {
            return Ok(CardTry::NoKey(described));
        }
        if self.options.trace {
            self.ui.note(&format!(
                "card {} in \"{}\" holds key {}",
                info.ident,
                open.reader,
                fingerprint.to_hex()
            ));
        }
        self.report.card = info.ident.clone();
        self.report.reader = open.reader.clone();
        self.report.card_aid = tx
            .application_identifier()
            .map(|aid| card::aid_hex(&aid))
            .unwrap_or_default();
        let public = pubkey::decryption_key(&mut tx, slot, self.options.key_cache.as_deref())?;
        self.report.key_fingerprint = public.fingerprint().to_hex();
        self.report.pin_sent = pin::unlock(&mut tx, &info, &self.options.pin, self.ui)?;
        if info.touch_for_decrypt {
            self.ui.touch(&info.ident);
        }
        let unwrapped = unwrap_matching(&mut tx, public, slot, &matching, sym_algo, fits);
        if info.touch_for_decrypt {
            self.ui.touch_done();
        }
        if let Some((algo, session_key)) = unwrapped? {
            if let Some(algo) = algo {
                self.report.sym_algo = Some(u8::from(algo));
            }
            return Ok(CardTry::Unwrapped(algo, session_key));
        }
        // A PKESK that names this card's key and unwraps to a key that does not fit is
        // damage, not a wrong card; a hidden recipient may just be someone else.
        if matching
            .iter()
            .any(|p| p.recipient().is_some_and(|h| !is_wildcard(&h)))
        {
            return Err(Error::BadMessage(format!(
                "card {} unwrapped no session key that fits the encrypted data: the message \
                 was damaged or altered",
                info.ident
            )));
        }
        Ok(CardTry::NoKey(described))
    }
}

/// PSO:DECIPHER for each PKESK addressed to the card's key until one unwraps to a session key
/// that fits the encrypted data.
fn unwrap_matching(
    tx: &mut openpgp_card::Card<openpgp_card::state::Transaction<'_>>,
    public: pubkey::PublicKey,
    slot: &card::SlotInfo,
    matching: &[&PKESK],
    sym_algo: Option<SymmetricAlgorithm>,
    fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
) -> Result<Option<(Option<SymmetricAlgorithm>, SessionKey)>> {
    let mut decryptor = CardDecryptor::new(tx, public, &slot.algorithm);
    for pkesk in matching {
        if let Some((algo, session_key)) = pkesk.decrypt(&mut decryptor, sym_algo) {
            if fits(algo, &session_key) {
                return Ok(Some((algo, session_key)));
            }
        }
        if let Some(e) = decryptor.failure.take() {
            return Err(e);
        }
    }
    Ok(None)
}

/// A PKESK's recipient as gpg's ENC_TO shows it: key id (zeros when hidden) and algorithm.
pub(super) fn recipient_id(p: &PKESK) -> (String, u8) {
    let id = match p.recipient() {
        Some(KeyHandle::KeyID(id)) => id.to_hex(),
        Some(KeyHandle::Fingerprint(fp)) => KeyID::from(&fp).to_hex(),
        None => KeyID::wildcard().to_hex(),
    };
    (id, u8::from(p.pk_algo()))
}

//! Message -> PKESK -> card -> session key -> authenticated plaintext.
//!
//! The host parses the message and finds the encrypted session keys; the card that holds a
//! matching key unwraps one (PSO:DECIPHER); the host decrypts and authenticates the rest.
//! Plaintext is released only after the whole message authenticated (MDC or final AEAD tag).

mod unwrap;

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
    gpg_status::Status,
    ui::Interaction,
    verify::SignatureCheck,
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
}

/// What happened, filled in as decryption proceeds (so a failure still tells how far it
/// got), for diagnostics and gpg-style status output.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Key id (16 hex digits, zeros for a hidden recipient) and public key algorithm of each
    /// encrypted session key, in message order.
    pub recipients: Vec<(String, u8)>,
    /// The card that decrypted: its ident, reader and full AID (hex).
    pub card: String,
    pub reader: String,
    pub card_aid: String,
    pub key_fingerprint: String,
    /// A PIN was sent to the card in this run.
    pub pin_sent: bool,
    pub apdus: usize,
    /// Every signature found inside the encrypted data, checked against the signer certs.
    pub signatures: Vec<SignatureCheck>,
    /// Symmetric algorithm id, and the AEAD algorithm id for SEIPD v2.
    pub sym_algo: Option<u8>,
    pub aead_algo: Option<u8>,
    /// Literal data packet: format byte, date (seconds), file name.
    pub literal: Option<(u8, u32, Vec<u8>)>,
    /// The cipher is old (CAST5, IDEA, 3DES, Blowfish): which, and why that matters.
    pub weak_cipher: Option<&'static str>,
    /// The container was GnuPG's OCB Encrypted Data packet (tag 20).
    pub librepgp: bool,
    /// Compression algorithm id inside, if the message was compressed.
    pub compression: Option<u8>,
    /// Packets passed over (a session key of an unknown version, ...), and why.
    pub skipped: Vec<String>,
}

impl Report {
    /// gpg's status lines for this decrypt, in gpg's order, once its outcome is known:
    /// clients read them after the command ends, and no line may claim success early.
    /// `plaintext_len` is what was written; `pin_announced` says NEED_PASSPHRASE_PIN was
    /// already written while asking (gpg's loopback protocol).
    pub fn status_lines(
        &self,
        plaintext_len: u64,
        outcome: Result<(), &Error>,
        pin_announced: bool,
    ) -> Vec<Status> {
        if let Err(Error::NotOpenPgp(_)) = outcome {
            return vec![Status::NoData(1)];
        }
        let mut lines: Vec<Status> = self
            .recipients
            .iter()
            .map(|(key_id, pk_algo)| Status::EncTo {
                key_id: key_id.clone(),
                pk_algo: *pk_algo,
            })
            .collect();
        if !self.card_aid.is_empty() {
            lines.push(Status::CardCtrl {
                aid: self.card_aid.clone(),
            });
        }
        if !pin_announced && (self.pin_sent || matches!(outcome, Err(Error::WrongPin { .. }))) {
            lines.push(Status::NeedPassphrasePin {
                aid: self.card_aid.clone(),
            });
        }
        if let Err(e) = outcome {
            match e {
                Error::WrongPin { .. } | Error::PinBlocked => lines.push(Status::ScOpFailure(2)),
                // NO_SECKEY only for key ids announced by ENC_TO (GPGME relies on it).
                Error::NoMatchingKey { .. } => lines.extend(
                    self.recipients
                        .iter()
                        .filter(|(id, _)| id.bytes().any(|b| b != b'0'))
                        .map(|(id, _)| Status::NoSeckey { key_id: id.clone() }),
                ),
                _ => {}
            }
            lines.extend([
                Status::BeginDecryption,
                Status::DecryptionFailed,
                Status::EndDecryption,
            ]);
            return lines;
        }
        // The primary key is not on the card: the subkey stands for both.
        lines.push(Status::DecryptionKey {
            fpr: self.key_fingerprint.clone(),
            primary_fpr: self.key_fingerprint.clone(),
        });
        lines.push(Status::BeginDecryption);
        lines.push(Status::DecryptionInfo {
            mdc_method: if self.aead_algo.is_some() { 0 } else { 2 },
            sym_algo: self.sym_algo.unwrap_or(0),
            aead_algo: self.aead_algo,
        });
        if let Some((format, date, name)) = &self.literal {
            lines.push(Status::Plaintext {
                format: *format,
                date: *date,
                name: name.clone(),
            });
        }
        lines.push(Status::PlaintextLength(plaintext_len));
        lines.extend(self.signatures.iter().flat_map(|c| c.status_lines()));
        lines.push(Status::DecryptionOkay);
        if self.aead_algo.is_none() {
            lines.push(Status::GoodMdc);
        }
        lines.push(Status::EndDecryption);
        lines
    }
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
    };
    let mut keys = CardKeys {
        source,
        ui,
        options,
        counter: counter.clone(),
        report,
    };
    let result = engine::decrypt(input, dest, &mut keys, &settings, &mut facts);
    let report = keys.report;
    report.apdus = counter.get();
    report.sym_algo = facts.sym_algo.or(report.sym_algo);
    report.aead_algo = facts.aead_algo;
    report.literal = facts.literal;
    report.signatures = facts.signatures;
    report.weak_cipher = facts.weak_cipher;
    report.librepgp = facts.librepgp;
    report.compression = facts.compression;
    report.skipped = facts.skipped;
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
            .map(|aid| {
                format!(
                    "D2760001240{:X}{:04X}{:04X}{:08X}0000",
                    aid.application(),
                    aid.version(),
                    aid.manufacturer(),
                    aid.serial()
                )
            })
            .unwrap_or_default();
        let public = pubkey::decryption_key(&mut tx, slot, self.options.key_cache.as_deref())?;
        self.report.key_fingerprint = public.fingerprint().to_hex();
        self.report.pin_sent = pin::unlock(&mut tx, &info, &self.options.pin, self.ui)?;
        if info.touch_for_decrypt {
            self.ui.touch(&info.ident);
        }
        let mut decryptor = CardDecryptor::new(&mut tx, public, &slot.algorithm);
        for pkesk in &matching {
            if let Some((algo, session_key)) = pkesk.decrypt(&mut decryptor, sym_algo) {
                if fits(algo, &session_key) {
                    if let Some(algo) = algo {
                        self.report.sym_algo = Some(u8::from(algo));
                    }
                    return Ok(CardTry::Unwrapped(algo, session_key));
                }
            }
            if let Some(e) = decryptor.failure.take() {
                return Err(e);
            }
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

/// A PKESK's recipient as gpg's ENC_TO shows it: key id (zeros when hidden) and algorithm.
fn recipient_id(p: &PKESK) -> (String, u8) {
    let id = match p.recipient() {
        Some(KeyHandle::KeyID(id)) => id.to_hex(),
        Some(KeyHandle::Fingerprint(fp)) => KeyID::from(&fp).to_hex(),
        None => KeyID::wildcard().to_hex(),
    };
    (id, u8::from(p.pk_algo()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Verdict;

    fn lines(report: &Report, outcome: Result<(), &Error>) -> Vec<String> {
        report
            .status_lines(12, outcome, false)
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    fn report() -> Report {
        Report {
            recipients: vec![
                ("7BC04DD0BECCEA44".into(), 18),
                ("0000000000000000".into(), 1),
            ],
            card_aid: "D276000124010304FFFE000000010000".into(),
            key_fingerprint: "F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44".into(),
            pin_sent: true,
            sym_algo: Some(9),
            literal: Some((b'b', 1_700_000_000, b"my file.txt".to_vec())),
            ..Report::default()
        }
    }

    #[test]
    fn success_follows_gpgs_order() {
        let l = lines(&report(), Ok(()));
        assert_eq!(l[0], "ENC_TO 7BC04DD0BECCEA44 18 0");
        assert_eq!(l[1], "ENC_TO 0000000000000000 1 0");
        let order = [
            "DECRYPTION_KEY",
            "BEGIN_DECRYPTION",
            "DECRYPTION_INFO 2 9",
            "PLAINTEXT 62 1700000000 my%20file.txt",
            "PLAINTEXT_LENGTH 12",
            "DECRYPTION_OKAY",
            "GOODMDC",
            "END_DECRYPTION",
        ];
        let mut at = 0;
        for want in order {
            let found = l[at..]
                .iter()
                .position(|x| x.starts_with(want))
                .unwrap_or_else(|| panic!("{want} missing or out of order in {l:?}"));
            at += found + 1;
        }
    }

    #[test]
    fn signatures_come_between_plaintext_and_okay() {
        let mut r = report();
        let good = SignatureCheck {
            verdict: Verdict::Good,
            key_id: "1111222233334444".into(),
            signer_fingerprint: Some("AAAA".into()),
            primary_fingerprint: Some("BBBB".into()),
            user_id: Some("Alice <a@example.org>".into()),
            created: 1_700_000_000,
            expires: 0,
            version: 4,
            pk_algo: 19,
            hash_algo: 8,
            sig_type: 0,
        };
        let missing = SignatureCheck {
            verdict: Verdict::NoCert,
            user_id: None,
            ..good.clone()
        };
        let bad = SignatureCheck {
            verdict: Verdict::Bad,
            ..good.clone()
        };
        r.signatures = vec![good, missing, bad];
        let l = lines(&r, Ok(()));
        let at = |p: &str| l.iter().position(|x| x.starts_with(p)).expect(p);
        assert!(at("PLAINTEXT_LENGTH") < at("NEWSIG"));
        assert!(l.contains(&"GOODSIG 1111222233334444 Alice <a@example.org>".to_string()));
        assert!(l.contains(&"VALIDSIG AAAA 2023-11-14 1700000000 0 4 0 19 8 00 BBBB".to_string()));
        assert!(l.contains(&"ERRSIG 1111222233334444 19 8 00 1700000000 9 AAAA".to_string()));
        assert!(l.contains(&"NO_PUBKEY 1111222233334444".to_string()));
        assert!(l.contains(&"BADSIG 1111222233334444 Alice <a@example.org>".to_string()));
        assert_eq!(l.iter().filter(|x| *x == "NEWSIG").count(), 3);
        assert!(at("BADSIG") < at("DECRYPTION_OKAY"));
    }

    #[test]
    fn failure_names_only_announced_keys_and_never_says_okay() {
        let err = Error::NoMatchingKey {
            recipients: vec![],
            cards: vec![],
        };
        let l = lines(&report(), Err(&err));
        assert!(l.contains(&"NO_SECKEY 7BC04DD0BECCEA44".to_string()));
        assert!(!l.iter().any(|x| x.starts_with("NO_SECKEY 0000")));
        assert!(l.ends_with(&[
            "BEGIN_DECRYPTION".into(),
            "DECRYPTION_FAILED".into(),
            "END_DECRYPTION".into()
        ]));
        assert!(!l.iter().any(|x| x.contains("OKAY")));
        let l = lines(&Report::default(), Err(&Error::NotOpenPgp("x".into())));
        assert_eq!(l, ["NODATA 1"]);
    }
}

//! `cardecrypt card ...`: list cards, import keys.

use std::path::Path;

use openpgp_card::{ocard::KeyType, Card};
use secrecy::SecretString;
use sequoia_openpgp::{crypto::Password, parse::Parse, Cert};

use crate::{
    card::{
        self,
        metered::ApduCounter,
        pin::{read_pin, PinSource},
        CardInfo, CardSource, PcscSource,
    },
    cli::CardCommand,
    error::{Error, Result},
    provision,
};

pub fn run(command: CardCommand, verbose: bool) -> Result<()> {
    match command {
        CardCommand::List => {
            for line in list(&mut PcscSource, verbose)? {
                println!("{line}");
            }
            Ok(())
        }
        CardCommand::Import {
            file,
            card,
            subkey,
            admin_pin_file,
            passphrase_file,
            batch,
            allow_last_pin_try,
        } => {
            let cert = Cert::from_file(&file).map_err(|e| {
                Error::Usage(format!(
                    "cannot read a secret key from {}: {e}",
                    file.display()
                ))
            })?;
            let password = match &passphrase_file {
                Some(f) => read_pin(&PinSource::File(f.clone()))?
                    .map(|p| Password::from(secrecy::ExposeSecret::expose_secret(&p))),
                None => None,
            };
            let planned = provision::plan(&cert, &subkey, password.as_ref())?;
            let admin_pin = admin_pin(admin_pin_file.as_deref(), batch)?;
            let ident = import(
                &mut PcscSource,
                card.card.as_deref(),
                &planned,
                admin_pin,
                allow_last_pin_try,
                verbose,
            )?;
            for p in &planned {
                eprintln!(
                    "cardecrypt: imported {} into the {} slot of card {ident}",
                    p.fingerprint,
                    slot_name(p.slot)
                );
            }
            Ok(())
        }
    }
}

fn slot_name(slot: KeyType) -> &'static str {
    match slot {
        KeyType::Signing => "signature",
        KeyType::Decryption => "decryption",
        KeyType::Authentication => "authentication",
        KeyType::Attestation => "attestation",
    }
}

fn admin_pin(file: Option<&Path>, batch: bool) -> Result<SecretString> {
    if let Some(f) = file {
        return read_pin(&PinSource::File(f.to_path_buf()))?
            .ok_or_else(|| Error::PinUnavailable("and the admin PIN file is empty".into()));
    }
    if batch {
        return Err(Error::PinUnavailable(
            "the admin PIN is needed and --batch forbids asking for it".into(),
        ));
    }
    rpassword::prompt_password("Admin PIN: ")
        .map(SecretString::from)
        .map_err(|e| Error::PinUnavailable(format!("no terminal to ask for the admin PIN ({e})")))
}

/// One line per card: ident, reader, decryption key fingerprint.
pub fn list(source: &mut dyn CardSource, trace: bool) -> Result<Vec<String>> {
    let counter = ApduCounter::default();
    let mut lines = Vec::new();
    for mut open in card::open_all(source, &counter, trace)? {
        let mut tx = open.card.transaction().map_err(Error::from_card)?;
        let info = CardInfo::read(&mut tx)?;
        let key = info
            .decryption
            .as_ref()
            .map(|s| format!("{:X}", s.fingerprint))
            .unwrap_or_else(|| "no decryption key".into());
        lines.push(format!("{}  {}  {}", info.ident, open.reader, key));
    }
    Ok(lines)
}

/// Imports the planned keys into the one card `wanted` names (or the only card present).
pub fn import(
    source: &mut dyn CardSource,
    wanted: Option<&str>,
    planned: &[provision::Planned],
    admin_pin: SecretString,
    allow_last_try: bool,
    trace: bool,
) -> Result<String> {
    let counter = ApduCounter::default();
    let mut cards = card::open_all(source, &counter, trace)?;
    let mut idents = Vec::new();
    for open in &mut cards {
        let tx = open.card.transaction().map_err(Error::from_card)?;
        idents.push(
            tx.application_identifier()
                .map_err(Error::from_card)?
                .ident(),
        );
    }
    let index = match wanted {
        Some(w) => idents
            .iter()
            .position(|i| card::ident_matches(i, w))
            .ok_or_else(|| Error::CardNotFound {
                wanted: w.to_string(),
                found: idents.clone(),
            })?,
        None if idents.len() == 1 => 0,
        None => {
            return Err(Error::Usage(format!(
                "several cards are present ({}); choose one with --card",
                idents.join(", ")
            )))
        }
    };
    let card: &mut Card<_> = &mut cards[index].card;
    let mut tx = card.transaction().map_err(Error::from_card)?;
    let tries = tx
        .pw_status_bytes()
        .map_err(Error::from_card)?
        .err_count_pw3();
    match tries {
        0 => return Err(Error::PinBlocked),
        1 if !allow_last_try => return Err(Error::LastPinTry),
        _ => {}
    }
    let mut admin = tx.as_admin_card(admin_pin).map_err(Error::from_card)?;
    for p in planned {
        admin
            .import_key(&p.key, p.slot)
            .map_err(|e| Error::Card(format!("importing {}: {e}", p.fingerprint)))?;
    }
    Ok(idents.swap_remove(index))
}

//! `cardecrypt card ...`: list, status, import, generate, export, PINs, settings, reset.

mod keys;
mod manage;

use std::path::Path;

use openpgp_card::{
    state::{Open, Transaction},
    Card,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    card::{
        self, forget,
        link::ApduCounter,
        pin::{read_pin, PinSource},
        report, CardInfo, CardSource, OpenCard, PcscSource,
    },
    cli::{AuthArgs, CardCommand, KdfCommand, StatusArgs},
    error::{Error, Result},
};

pub use keys::import;

pub fn run(command: CardCommand, verbose: bool) -> Result<()> {
    let source = &mut PcscSource::default();
    match command {
        CardCommand::List => {
            for line in list(source, verbose)? {
                super::print(&format!("{line}\n"))?;
            }
            Ok(())
        }
        CardCommand::Status(StatusArgs { card, json }) => {
            let (mut open, _) = open_one(source, card.card.as_deref(), verbose)?;
            let reader = open.reader.clone();
            let mut tx = transaction(&mut open.card)?;
            let status = report::read(&mut tx, &reader)?;
            if json {
                let text = serde_json::to_string_pretty(&status)
                    .map_err(|e| Error::Other(e.to_string()))?;
                super::print(&format!("{text}\n"))?;
            } else {
                super::print(&status.to_text())?;
            }
            Ok(())
        }
        CardCommand::Import(args) => keys::import_file(source, args, verbose),
        CardCommand::Generate(args) => keys::generate(source, args, verbose),
        CardCommand::Export(args) => keys::export(source, args, verbose),
        CardCommand::Pin(pin) => manage::pin(source, pin, verbose),
        CardCommand::Set(args) => manage::set(source, args, verbose),
        CardCommand::Kdf(KdfCommand::Enable(args)) => manage::enable_kdf(source, args, verbose),
        CardCommand::FactoryReset(args) => manage::factory_reset(source, args, verbose),
    }
}

/// `cardecrypt lock`: end every holder (or the one for `wanted`) and make the cards forget
/// their verified PIN.
pub fn lock(wanted: Option<&str>) -> Result<()> {
    use crate::card::holder;
    let counter = ApduCounter::default();
    let mut locked = 0;
    let mut seen = Vec::new();
    for open in card::open_all(&mut PcscSource::default(), &counter, false)? {
        let mut card = open.card;
        let ident = transaction(&mut card)?
            .application_identifier()
            .map_err(Error::from)?
            .ident();
        if wanted.is_some_and(|w| !card::ident_matches(&ident, w)) {
            seen.push(ident);
            continue;
        }
        // Our connection goes first, before the holder locks the card as it leaves: it is
        // locked by VERIFY P1=FF when no other program is connected, by a reset they all
        // notice when one is.
        drop(card);
        let had_holder = holder::stop(&ident);
        let forgot = forget::forget_in_reader(&open.reader, &[forget::PW1_SIGN, forget::PW1]);
        if let Some(note) = forgot.as_ref().and_then(|f| forget::note(&open.reader, f)) {
            eprintln!("cardecrypt: {note}");
        }
        eprintln!(
            "cardecrypt: card {ident} locked{}",
            if had_holder {
                " (it is no longer kept unlocked)"
            } else {
                ""
            }
        );
        locked += 1;
    }
    match wanted {
        Some(w) if locked == 0 => Err(Error::CardNotFound {
            wanted: w.to_string(),
            found: seen,
        }),
        _ => Ok(()),
    }
}

fn transaction(card: &mut Card<Open>) -> Result<Card<Transaction<'_>>> {
    card.transaction().map_err(Error::from)
}

/// One line per card: ident, reader, decryption key fingerprint.
pub fn list(source: &mut dyn CardSource, trace: bool) -> Result<Vec<String>> {
    let counter = ApduCounter::default();
    let mut lines = Vec::new();
    for mut open in card::open_all(source, &counter, trace)? {
        let mut tx = transaction(&mut open.card)?;
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

/// The one card `wanted` names, or the only card present.
pub fn open_one(
    source: &mut dyn CardSource,
    wanted: Option<&str>,
    trace: bool,
) -> Result<(OpenCard, String)> {
    let counter = ApduCounter::default();
    let mut cards = card::open_all(source, &counter, trace)?;
    let mut idents = Vec::new();
    for open in &mut cards {
        let tx = transaction(&mut open.card)?;
        idents.push(tx.application_identifier().map_err(Error::from)?.ident());
    }
    let index = match wanted {
        Some(w) => idents
            .iter()
            .position(|i| card::ident_matches(i, w))
            .ok_or_else(|| card::not_found(source, w, idents.clone()))?,
        None if idents.len() == 1 => 0,
        None => {
            return Err(Error::Usage(format!(
                "several cards are present ({}); choose one with --card",
                idents.join(", ")
            )))
        }
    };
    let ident = idents.swap_remove(index);
    Ok((cards.swap_remove(index), ident))
}

/// A secret from a file, or asked on the terminal.
fn secret(file: Option<&Path>, batch: bool, what: &str) -> Result<SecretString> {
    if let Some(f) = file {
        return read_pin(&PinSource::File(f.to_path_buf()))?
            .ok_or_else(|| Error::PinUnavailable(format!("and the {what} file is empty")));
    }
    if batch {
        return Err(Error::PinUnavailable(format!(
            "the {what} is needed and --batch forbids asking for it"
        )));
    }
    rpassword::prompt_password(format!("{}: ", capitalize(what)))
        .map(SecretString::from)
        .map_err(|e| Error::PinUnavailable(format!("no terminal to ask for the {what} ({e})")))
}

/// A new secret from a file, or asked twice on the terminal.
fn new_secret(file: Option<&Path>, batch: bool, what: &str) -> Result<SecretString> {
    let first = secret(file, batch, &format!("new {what}"))?;
    if file.is_none() {
        let again = secret(None, batch, &format!("new {what} again"))?;
        if again.expose_secret() != first.expose_secret() {
            return Err(Error::Usage(format!("the two new {what}s differ")));
        }
    }
    Ok(first)
}

fn admin_pin(auth: &AuthArgs) -> Result<SecretString> {
    from_fd_or(
        auth.admin_pin_fd,
        auth.admin_pin_file.as_deref(),
        auth.batch,
        "admin PIN",
    )
}

fn user_pin(auth: &AuthArgs) -> Result<SecretString> {
    from_fd_or(
        auth.pin_fd,
        auth.pin_file.as_deref(),
        auth.batch,
        "user PIN",
    )
}

fn from_fd_or(
    fd: Option<i32>,
    file: Option<&Path>,
    batch: bool,
    what: &str,
) -> Result<SecretString> {
    match fd {
        Some(n) => read_pin(&PinSource::Fd(n))?
            .ok_or_else(|| Error::PinUnavailable(format!("and descriptor {n} gave no {what}"))),
        None => secret(file, batch, what),
    }
}

/// Asks a yes/no question on the terminal; `--batch` answers no.
fn confirm(question: &str, batch: bool) -> bool {
    if batch {
        return false;
    }
    let answer = rpassword::prompt_password(format!("{question} [y/N] "));
    matches!(answer.as_deref().map(str::trim), Ok("y" | "Y" | "yes"))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

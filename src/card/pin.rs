//! Unlocking the decryption key: PIN sources, retry-counter care, no automatic retries.

use std::{io::Read, path::PathBuf, sync::Mutex};

use openpgp_card::{ocard::StatusBytes, state::Transaction, Card};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::CardInfo;
use crate::{
    error::{Error, Result},
    ui::Interaction,
};

/// Where the user PIN comes from, besides a card that is still unlocked.
#[derive(Clone, Debug)]
pub enum PinSource {
    /// First line of this file.
    File(PathBuf),
    /// First line read from this file descriptor.
    Fd(i32),
    /// Ask through the interaction (a terminal), unless in batch mode.
    Ask,
}

pub struct PinPolicy {
    pub source: PinSource,
    pub batch: bool,
    pub allow_last_try: bool,
    /// The PIN a card accepted, for the rest of the command.
    pub memory: PinMemory,
}

/// The PIN one card accepted, kept (zeroized when it goes) until the command ends: the card
/// forgets it after each transaction, and the next part of an email must not ask again.
#[derive(Default)]
pub struct PinMemory(Mutex<Option<(String, SecretString)>>);

impl PinMemory {
    fn recall(&self, ident: &str) -> Option<SecretString> {
        let kept = self.0.lock().ok()?;
        let (card, pin) = kept.as_ref()?;
        (card == ident).then(|| SecretString::from(pin.expose_secret()))
    }

    fn remember(&self, ident: &str, pin: SecretString) {
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some((ident.to_string(), pin));
        }
    }
}

/// Reads a PIN from a file or descriptor: the first line, without its line ending.
pub fn read_pin(source: &PinSource) -> Result<Option<SecretString>> {
    let (opened, what) = match source {
        PinSource::Ask => return Ok(None),
        PinSource::File(p) => (
            std::fs::File::open(p),
            format!("cannot read the PIN file {}", p.display()),
        ),
        PinSource::Fd(n) => (
            crate::paths::open_fd(*n, false),
            format!("cannot read the PIN from file descriptor {n}"),
        ),
    };
    // A fixed buffer, read until the first line ends: no growth leaves a copy of the PIN
    // behind, and what follows the line is not read at all.
    let mut raw = Zeroizing::new(vec![0u8; MAX_PIN_LINE]);
    let mut len = 0;
    let mut file = opened.map_err(|e| Error::PinUnavailable(format!("{what}: {e}")))?;
    while len < raw.len() && !raw[..len].contains(&b'\n') {
        match file.read(&mut raw[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::PinUnavailable(format!("{what}: {e}"))),
        }
    }
    if len == raw.len() && !raw.contains(&b'\n') {
        return Err(Error::PinUnavailable(format!(
            "{what}: the first line is longer than any PIN"
        )));
    }
    first_line_pin(&raw[..len], &what).map(Some)
}

/// The longest first line read as a PIN (OpenPGP cards take at most 127 bytes).
pub const MAX_PIN_LINE: usize = 1024;

/// The PIN in the first line of `raw`, without its line ending; `what` says where it came
/// from, for the error.
pub fn first_line_pin(raw: &[u8], what: &str) -> Result<SecretString> {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let pin = std::str::from_utf8(line)
        .map_err(|_| Error::PinUnavailable(format!("{what}: the PIN is not UTF-8")))?;
    if pin.is_empty() {
        return Err(Error::PinUnavailable(format!("{what}: it is empty")));
    }
    Ok(SecretString::from(pin))
}

/// Makes sure PW1 (mode 82) is verified, spending at most one try, and only knowingly.
/// Returns whether a PIN was sent (false: the card was still unlocked).
pub fn unlock(
    tx: &mut Card<Transaction<'_>>,
    info: &CardInfo,
    policy: &PinPolicy,
    ui: &mut dyn Interaction,
) -> Result<bool> {
    // Ask the card first: a card still unlocked (by our holder, or by another program that
    // will go on believing so) needs no PIN, and gets none from us to forget later. An
    // empty VERIFY answers 9000 (verified) or 63Cx (x tries left) and spends nothing.
    let mut tries = info.pw1_tries;
    match tx.card().check_pw1_user() {
        Ok(()) => return Ok(false),
        Err(openpgp_card::Error::CardStatus(StatusBytes::PasswordNotChecked(n))) => tries = n,
        Err(_) => {}
    }
    let pin = match policy.memory.recall(&info.ident) {
        Some(pin) => pin,
        None => match read_pin(&policy.source)? {
            Some(pin) => pin,
            None if policy.batch => {
                check_tries(tries, policy.allow_last_try)?;
                return Err(Error::PinUnavailable(
                    "and --batch forbids asking for it".into(),
                ));
            }
            None => {
                check_tries(tries, policy.allow_last_try)?;
                ui.user_pin(&info.ident, tries)?
            }
        },
    };
    check_tries(tries, policy.allow_last_try)?;
    if pin.expose_secret().is_empty() {
        return Err(Error::PinUnavailable("and the PIN given is empty".into()));
    }
    let copy = SecretString::from(pin.expose_secret());
    tx.verify_user_pin(pin).map_err(|e| pin_failure(e, tries))?;
    policy.memory.remember(&info.ident, copy);
    Ok(true)
}

/// Maps a failed PIN operation to our error. Cards differ: most answer 63Cx (x tries
/// left), some 6300 or 6982 without a count; then the count is one less than before.
pub fn pin_failure(e: openpgp_card::Error, tries_before: u8) -> Error {
    match e {
        openpgp_card::Error::CardStatus(StatusBytes::PasswordNotChecked(n)) => {
            Error::WrongPin { tries_left: n }
        }
        openpgp_card::Error::CardStatus(
            StatusBytes::SecurityStatusNotSatisfied
            | StatusBytes::IncorrectParametersCommandDataField
            | StatusBytes::UnknownStatus(0x63, 0x00),
        ) => Error::WrongPin {
            tries_left: tries_before.saturating_sub(1),
        },
        other => Error::from(other),
    }
}

/// Refuses a blocked PIN, and the last try unless the user allowed it.
pub fn check_tries(tries: u8, allow_last_try: bool) -> Result<()> {
    match tries {
        0 => Err(Error::PinBlocked),
        1 if !allow_last_try => Err(Error::LastPinTry),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_try_needs_consent_and_zero_is_blocked() {
        assert!(matches!(check_tries(0, true), Err(Error::PinBlocked)));
        assert!(matches!(check_tries(1, false), Err(Error::LastPinTry)));
        assert!(check_tries(1, true).is_ok());
        assert!(check_tries(3, false).is_ok());
    }

    #[test]
    fn pin_file_first_line_without_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pin");
        std::fs::write(&f, "123456\r\nignored\n").expect("write");
        let pin = read_pin(&PinSource::File(f)).expect("read").expect("some");
        assert_eq!(pin.expose_secret(), "123456");
    }

    #[test]
    fn empty_pin_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pin");
        std::fs::write(&f, "\n").expect("write");
        assert!(matches!(
            read_pin(&PinSource::File(f)),
            Err(Error::PinUnavailable(_))
        ));
    }
}

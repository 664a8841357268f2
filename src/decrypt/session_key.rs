//! Session keys shown and given, as gpg's `--show-session-key` and `--override-session-key`
//! do: a mail indexer (notmuch) stashes the key of each message it decrypted, and later
//! views read the message with it, without the card. Whoever holds a message's session key
//! reads that message (and only that one) without the card.

use sequoia_openpgp::{
    crypto::SessionKey,
    packet::{PKESK, SKESK},
    types::SymmetricAlgorithm,
};
use zeroize::Zeroizing;

use super::{recipient_id, Report};
use crate::{
    engine,
    error::{Error, Result},
};

/// A session key as gpg writes it: `ALGO:HEX` (the cipher's number, the key in hex). Its
/// `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct ShownKey(pub Zeroizing<String>);

impl std::fmt::Debug for ShownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownKey(redacted)")
    }
}

impl ShownKey {
    pub fn new(algo: u8, key: &SessionKey) -> ShownKey {
        let mut text = Zeroizing::new(format!("{algo}:"));
        for b in key.iter() {
            text.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            text.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
        ShownKey(text)
    }
}

/// A session key the caller gave (`--override-session-key-fd`): the message is decrypted
/// with it, with no card.
pub struct GivenKey {
    algo: u8,
    key: SessionKey,
}

impl GivenKey {
    /// Reads `ALGO:HEX` (gpg's form; surrounding white space and quotes are allowed).
    pub fn parse(text: &str) -> Result<GivenKey> {
        let bad = || {
            Error::Usage(
                "the session key given is not in gpg's form ALGO:HEX (for example 9:4F3A...)"
                    .into(),
            )
        };
        let text = text.trim().trim_matches(|c| c == '\'' || c == '"');
        let (algo, hex) = text.split_once(':').ok_or_else(bad)?;
        let algo: u8 = algo.parse().map_err(|_| bad())?;
        if hex.is_empty() || hex.len() % 2 != 0 {
            return Err(bad());
        }
        let mut key = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
        for pair in hex.as_bytes().chunks(2) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(bad);
            key.push((digit(pair[0])? * 16 + digit(pair[1])?) as u8);
        }
        Ok(GivenKey {
            algo,
            key: SessionKey::from(&key[..]),
        })
    }

    /// Reads the key from the first line of inherited descriptor `fd`.
    pub fn from_fd(fd: i32) -> Result<GivenKey> {
        use std::io::Read;
        let what = format!("cannot read the session key from descriptor {fd}");
        let mut file = crate::paths::open_fd(fd, false).map_err(|e| Error::io(&what, e))?;
        let mut raw = Zeroizing::new(Vec::new());
        (&mut file)
            .take(4096)
            .read_to_end(&mut raw)
            .map_err(|e| Error::io(&what, e))?;
        let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
        GivenKey::parse(&String::from_utf8_lossy(line))
    }
}

/// The engine's session key source for a given key: no card is asked.
pub(super) struct Given<'g> {
    pub key: &'g GivenKey,
    pub report: &'g mut Report,
}

impl engine::SessionKeys for Given<'_> {
    fn unwrap(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        _sym: Option<SymmetricAlgorithm>,
        fits: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> Result<(Option<SymmetricAlgorithm>, SessionKey)> {
        self.report.recipients = pkesks.iter().map(recipient_id).collect();
        let algo = SymmetricAlgorithm::from(self.key.algo);
        if !fits(Some(algo), &self.key.key) {
            return Err(Error::BadMessage(
                "the session key given does not fit this message (another cipher or key \
                 length)"
                    .into(),
            ));
        }
        Ok((Some(algo), self.key.key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpgs_form_reads_back_as_written() {
        let key = SessionKey::from(&[0x4f, 0x3a, 0x00, 0xff][..]);
        let shown = ShownKey::new(9, &key);
        assert_eq!(&shown.0[..], "9:4F3A00FF");
        assert!(!format!("{shown:?}").contains("4F3A"));
        let given = GivenKey::parse(" '9:4f3a00ff'\n").expect("parse");
        assert_eq!((given.algo, &given.key[..]), (9, &key[..]));
        for bad in ["", "9", "9:", "x:00", "9:0", "9:zz"] {
            assert!(GivenKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}

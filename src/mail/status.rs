//! GnuPG-compatible status lines (`--status-fd N`), so mail clients that judge a decrypt by
//! gpg's status output (mutt, neomutt, Evolution, GPGME) work unchanged.
//!
//! Lines come in gpg's order. They are written when the outcome is known: clients read the
//! status stream after the command ends, and no line may claim success early.

use std::io::Write;

use crate::{
    decrypt::Report,
    error::Error,
    verify::{SignatureCheck, Verdict},
};

pub struct StatusLines {
    sink: Option<Box<dyn Write>>,
    /// NEED_PASSPHRASE_PIN was already written while asking (gpg's loopback protocol).
    pub pin_announced: bool,
}

impl StatusLines {
    /// Status lines on file descriptor `fd` (1 and 2 are stdout and stderr), or nowhere.
    pub fn open(fd: Option<i32>) -> Result<Self, Error> {
        let sink: Option<Box<dyn Write>> = match fd {
            None => None,
            Some(1) => Some(Box::new(std::io::stdout())),
            Some(2) => Some(Box::new(std::io::stderr())),
            Some(n) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/dev/fd/{n}"))
                    .map_err(|e| Error::io(format!("cannot write status lines to fd {n}"), e))?,
            )),
        };
        Ok(StatusLines {
            sink,
            pin_announced: false,
        })
    }

    pub(crate) fn line(&mut self, text: &str) {
        if let Some(sink) = &mut self.sink {
            let _ = writeln!(sink, "[GNUPG:] {text}");
        }
    }

    /// The lines for one decrypt: `outcome` is its result (after the output was written).
    pub fn decrypt(&mut self, report: &Report, plaintext_len: usize, outcome: Result<(), &Error>) {
        if self.sink.is_none() {
            return;
        }
        if let Err(Error::NotOpenPgp(_)) = outcome {
            self.line("NODATA 1");
            return;
        }
        for (keyid, algo) in &report.recipients {
            self.line(&format!("ENC_TO {keyid} {algo} 0"));
        }
        if !report.card_aid.is_empty() {
            self.line(&format!("CARDCTRL 3 {}", report.card_aid));
        }
        if !self.pin_announced
            && (report.pin_sent || matches!(outcome, Err(Error::WrongPin { .. })))
        {
            self.line(&format!(
                "NEED_PASSPHRASE_PIN OPENPGP 2 {}",
                report.card_aid
            ));
        }
        if let Err(e) = outcome {
            match e {
                Error::WrongPin { .. } | Error::PinBlocked => self.line("SC_OP_FAILURE 2"),
                Error::NoMatchingKey { .. } => {
                    // NO_SECKEY only for key ids announced by ENC_TO (GPGME relies on it).
                    let wildcard = "0".repeat(16);
                    let ids: Vec<String> = report
                        .recipients
                        .iter()
                        .filter(|(id, _)| *id != wildcard)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in ids {
                        self.line(&format!("NO_SECKEY {id}"));
                    }
                }
                _ => {}
            }
            self.line("BEGIN_DECRYPTION");
            self.line("DECRYPTION_FAILED");
            self.line("END_DECRYPTION");
            return;
        }
        let fpr = &report.key_fingerprint;
        // The primary key is not on the card; gpg prints it as the second field, and clients
        // use the first. The subkey stands for both.
        self.line(&format!("DECRYPTION_KEY {fpr} {fpr} u"));
        self.line("BEGIN_DECRYPTION");
        let sym = report.sym_algo.unwrap_or(0);
        match report.aead_algo {
            Some(aead) => self.line(&format!("DECRYPTION_INFO 0 {sym} {aead}")),
            None => self.line(&format!("DECRYPTION_INFO 2 {sym}")),
        }
        if let Some((format, date, name)) = &report.literal {
            let kind = match *format {
                b't' => 74,
                b'u' => 75,
                _ => 62,
            };
            self.line(&format!("PLAINTEXT {kind} {date} {}", percent_escape(name)));
        }
        self.line(&format!("PLAINTEXT_LENGTH {plaintext_len}"));
        for check in &report.signatures {
            self.signature(check);
        }
        self.line("DECRYPTION_OKAY");
        if report.aead_algo.is_none() {
            self.line("GOODMDC");
        }
        self.line("END_DECRYPTION");
    }
}

impl StatusLines {
    /// gpg's lines for one checked signature.
    fn signature(&mut self, c: &SignatureCheck) {
        self.line("NEWSIG");
        let uid = escape_text(c.user_id.as_deref().unwrap_or("[?]"));
        let fpr = c.signer_fingerprint.as_deref().unwrap_or("-");
        match &c.verdict {
            Verdict::Good => {
                self.line(&format!("GOODSIG {} {uid}", c.key_id));
                let date = crate::verify::utc(c.created);
                self.line(&format!(
                    "VALIDSIG {fpr} {} {} {} {} 0 {} {} {:02X} {}",
                    &date[..10],
                    c.created,
                    c.expires,
                    c.version,
                    c.pk_algo,
                    c.hash_algo,
                    c.sig_type,
                    c.primary_fingerprint.as_deref().unwrap_or(fpr)
                ));
                // No web of trust here: the certificate was handed to us, not validated.
                self.line("TRUST_UNDEFINED 0 pgp");
            }
            Verdict::Bad => self.line(&format!("BADSIG {} {uid}", c.key_id)),
            Verdict::NoCert | Verdict::Unusable(_) => {
                let rc = if c.verdict == Verdict::NoCert { 9 } else { 4 };
                self.line(&format!(
                    "ERRSIG {} {} {} {:02X} {} {rc} {fpr}",
                    c.key_id, c.pk_algo, c.hash_algo, c.sig_type, c.created
                ));
                if rc == 9 {
                    self.line(&format!("NO_PUBKEY {}", c.key_id));
                }
            }
        }
    }
}

/// gpg's escaping for free text such as user ids: control characters and '%'.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch < ' ' || ch == '%' {
            out.push_str(&format!("%{:02X}", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

/// gpg's escaping for status arguments: %XX for bytes below 0x20, space, '%' and 0x7F+.
fn percent_escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b <= b' ' || b == b'%' || b >= 0x7f {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(report: &Report, outcome: Result<(), &Error>) -> Vec<String> {
        let buf = Shared::default();
        let mut s = StatusLines {
            sink: Some(Box::new(buf.clone())),
            pin_announced: false,
        };
        s.decrypt(report, 12, outcome);
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        text.lines()
            .map(|l| l.trim_start_matches("[GNUPG:] ").to_string())
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

//! What a decrypt did, filled in as it goes (so a failure still tells how far it got), and
//! gpg's status lines for it, in gpg's order.

use crate::{
    error::{Error, Result},
    gpg_status::Status,
    verify::SignatureCheck,
};

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
    /// The fingerprint of that key's primary key, where the keyring knows it (the gpg front
    /// end looks it up): gpg names it in DECRYPTION_KEY and KEY_CONSIDERED.
    pub primary_fingerprint: Option<String>,
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
    /// With `show_session_key`: the session key, once the message authenticated.
    pub session_key: Option<super::ShownKey>,
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
        if let (Ok(()), Some(primary)) = (outcome, &self.primary_fingerprint) {
            lines.push(Status::KeyConsidered {
                fpr: primary.clone(),
            });
        }
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
        // The primary key where the keyring names it, else the subkey stands for both. None
        // with a session key given.
        if !self.key_fingerprint.is_empty() {
            lines.push(Status::DecryptionKey {
                fpr: self.key_fingerprint.clone(),
                primary_fpr: self
                    .primary_fingerprint
                    .clone()
                    .unwrap_or_else(|| self.key_fingerprint.clone()),
            });
        }
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
        if let Some(key) = &self.session_key {
            lines.push(Status::SessionKey(key.0.to_string()));
        }
        lines.push(Status::DecryptionOkay);
        if self.aead_algo.is_none() {
            lines.push(Status::GoodMdc);
        }
        lines.push(Status::EndDecryption);
        lines
    }
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

//! Session keys shown and given (gpg's `--show-session-key`, `--override-session-key`): the
//! card decrypts once and the key comes back in gpg's form; given back, it decrypts the
//! message with no card; a key that does not fit is refused with no plaintext.

mod common;

use std::sync::Arc;

use cardecrypt::{card::pin::PinSource, decrypt::GivenKey, error::Error};
use common::*;
use sequoia_openpgp::types::AEADAlgorithm;

const TEXT: &[u8] = b"read once with the card, then with the session key";

#[test]
fn a_shown_session_key_decrypts_without_the_card() {
    for aead in [None, Some(AEADAlgorithm::OCB)] {
        let mut cards = Cards::with_key("cv25519");
        let message = encrypt(
            &[&cert("cv25519")],
            TEXT,
            Form {
                aead,
                ..Form::default()
            },
        );
        let mut ui = Scripted::with_pin(USER_PIN);
        let mut opts = options(PinSource::Ask, false);
        opts.show_session_key = true;
        let (_, report) = decrypt_with(&mut cards, &mut ui, &opts, &message).expect("card");
        let shown = report.session_key.clone().expect("shown");
        assert!(shown.0.starts_with("9:"), "AES-256 ({aead:?})");
        assert!(
            !format!("{report:?}").contains(&shown.0[2..]),
            "Debug hides it"
        );

        // An empty card, never asked: the key alone.
        let mut empty = Cards::one();
        let mut opts = options(PinSource::Ask, true);
        opts.session_key = Some(Arc::new(GivenKey::parse(&shown.0).expect("parse")));
        let (plain, report) = decrypt_with(&mut empty, &mut ui, &opts, &message).expect("key");
        assert_eq!(plain, TEXT, "{aead:?}");
        assert_eq!(report.apdus, 0, "no card asked");
        assert!(!report.recipients.is_empty(), "ENC_TO still named");

        // The wrong key, or one for another cipher: refused.
        let mut wrong = shown.0.to_string();
        let last = wrong.pop().expect("digit");
        wrong.push(if last == '0' { '1' } else { '0' });
        for bad in [wrong, format!("7:{}", &shown.0[2..34])] {
            opts.session_key = Some(Arc::new(GivenKey::parse(&bad).expect("parse")));
            let err = decrypt_with(&mut empty, &mut ui, &opts, &message).expect_err("bad");
            assert!(
                matches!(err, Error::BadMessage(_) | Error::Malformed(_)),
                "{aead:?} {bad}: {err:?}"
            );
        }
    }
}

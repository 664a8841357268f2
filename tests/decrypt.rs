//! Decryption against the virtual card in-process: every card algorithm, every message form,
//! PIN handling, card selection. The whole openpgp-card client stack runs unchanged; only
//! the transport is a function call instead of pcscd.

#[path = "decrypt/cards.rs"]
mod cards;
mod common;

use cardecrypt::error::exit;
use cardecrypt::{
    card::pin::PinSource,
    verify::{SignatureCheck, Verdict},
    Error,
};
use common::*;
use sequoia_openpgp::{
    types::{AEADAlgorithm, CompressionAlgorithm},
    Cert,
};

const TEXT: &[u8] = b"Meet me at the usual place at ten.\n";

fn roundtrip(algo: &str) {
    let mut cards = Cards::with_key(algo);
    let message = encrypt(&[&cert(algo)], TEXT, Form::default());
    let (plain, report) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(plain, TEXT);
    assert_eq!(report.card, "FFFE:00000001");
}

#[test]
fn cv25519() {
    roundtrip("cv25519");
}

#[test]
fn nistp256() {
    roundtrip("nistp256");
}

#[test]
fn nistp384() {
    roundtrip("nistp384");
}

#[test]
fn nistp521() {
    roundtrip("nistp521");
}

#[test]
fn rsa2048() {
    roundtrip("rsa2048");
}

#[test]
fn rsa3072() {
    roundtrip("rsa3072");
}

#[test]
fn rsa4096() {
    roundtrip("rsa4096");
}

fn form_roundtrip(form: Form) -> cardecrypt::decrypt::Report {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, form);
    let (plain, report) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(plain, TEXT);
    report
}

#[test]
fn seipd_v2_ocb() {
    form_roundtrip(Form {
        aead: Some(AEADAlgorithm::OCB),
        ..Form::default()
    });
}

#[test]
fn seipd_v2_gcm() {
    form_roundtrip(Form {
        aead: Some(AEADAlgorithm::GCM),
        ..Form::default()
    });
}

#[test]
fn seipd_v2_eax() {
    form_roundtrip(Form {
        aead: Some(AEADAlgorithm::EAX),
        ..Form::default()
    });
}

#[test]
fn compressed_zip_zlib_bzip2() {
    for algo in [
        CompressionAlgorithm::Zip,
        CompressionAlgorithm::Zlib,
        CompressionAlgorithm::BZip2,
    ] {
        form_roundtrip(Form {
            compression: Some(algo),
            ..Form::default()
        });
    }
}

#[test]
fn armored() {
    form_roundtrip(Form {
        armor: true,
        ..Form::default()
    });
}

/// RFC 9580 v6 keys made by sequoia (X25519, algorithm 25, and ECDH on NIST P-256) go on a
/// card: the card keeps the first 20 bytes of the 32-byte fingerprint, and the v6 key is
/// rebuilt from the card to decrypt v6 PKESKs, named and hidden.
#[test]
fn v6_keys_go_on_a_card_and_decrypt() {
    use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
    for suite in [CipherSuite::Cv25519, CipherSuite::P256] {
        let (cert, _) = CertBuilder::general_purpose(Some("v6 <v6@cardecrypt.test>"))
            .set_cipher_suite(suite)
            .set_profile(sequoia_openpgp::Profile::RFC9580)
            .expect("profile")
            .generate()
            .expect("generate");
        assert_eq!(cert.primary_key().key().version(), 6);
        let policy = sequoia_openpgp::policy::StandardPolicy::new();
        let subkey = cert
            .keys()
            .with_policy(&policy, None)
            .for_transport_encryption()
            .next()
            .expect("encryption subkey")
            .key()
            .fingerprint();
        let mut cards = Cards::one();
        cards.import_cert(0, &cert, None).expect("import");
        for hidden in [false, true] {
            let message = encrypt(
                &[&cert],
                TEXT,
                Form {
                    hidden,
                    ..Form::default()
                },
            );
            let (plain, report) = decrypt_prompting(&mut cards, &message)
                .unwrap_or_else(|e| panic!("{suite:?} hidden={hidden}: {e}"));
            assert_eq!(plain, TEXT);
            assert_eq!(report.key_fingerprint, subkey.to_hex(), "{suite:?}");
        }
        // `card status` names the whole v6 fingerprint, from the public key cache that the
        // import filled (no APDU).
        let backend = Box::new(cards.0[0].backend()) as cardecrypt::card::Backend;
        let mut card = openpgp_card::Card::new(backend).expect("open");
        let mut tx = card.transaction().expect("tx");
        let status = cardecrypt::card::report::read(&mut tx, "virtual").expect("status");
        let slot = status
            .slots
            .iter()
            .find(|s| s.slot == "decryption")
            .expect("decryption slot");
        assert_eq!(slot.key_version, Some(6), "{suite:?}");
        assert_eq!(slot.fingerprint.as_deref(), Some(&subkey.to_hex()[..]));
    }
}

#[test]
fn hidden_recipient() {
    form_roundtrip(Form {
        hidden: true,
        ..Form::default()
    });
}

fn signed_roundtrip(form: Form, signer_certs: Vec<Cert>) -> Vec<SignatureCheck> {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, form);
    let mut opts = options(PinSource::Ask, false);
    opts.signer_certs = signer_certs;
    let mut ui = Scripted::with_pin(USER_PIN);
    let (plain, report) = decrypt_with(&mut cards, &mut ui, &opts, &message).expect("decrypt");
    assert_eq!(plain, TEXT);
    report.signatures
}

#[test]
fn signature_without_the_signers_cert_is_reported_unchecked() {
    let checks = signed_roundtrip(
        Form {
            signed_by: Some("nistp256"),
            ..Form::default()
        },
        vec![cert("rsa2048")],
    );
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].verdict, Verdict::NoCert);
    let signing_key = signing_fingerprint("nistp256");
    assert_eq!(checks[0].key_id, signing_key[24..]);
    assert!(checks[0].summary(true).contains("NOT checked"));
}

#[test]
fn good_signature_names_the_signer() {
    let checks = signed_roundtrip(
        Form {
            signed_by: Some("nistp256"),
            ..Form::default()
        },
        vec![cert("rsa2048"), cert("nistp256")],
    );
    assert_eq!(checks.len(), 1, "{checks:?}");
    let c = &checks[0];
    assert_eq!(c.verdict, Verdict::Good, "{c:?}");
    assert_eq!(
        c.signer_fingerprint.as_deref(),
        Some(&signing_fingerprint("nistp256")[..])
    );
    assert_eq!(
        c.primary_fingerprint.as_deref(),
        Some(&cert("nistp256").fingerprint().to_hex()[..])
    );
    let uid = c.user_id.clone().expect("user id");
    assert!(
        c.summary(true).starts_with("good signature by "),
        "{}",
        c.summary(true)
    );
    assert!(c.summary(true).contains(&uid));
}

#[test]
fn forged_signature_shows_the_text_and_says_bad() {
    let checks = signed_roundtrip(
        Form {
            forged_by: Some("nistp256"),
            ..Form::default()
        },
        vec![cert("nistp256")],
    );
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].verdict, Verdict::Bad, "{:?}", checks[0]);
    assert!(checks[0].summary(true).contains("BAD SIGNATURE"));
}

fn signing_fingerprint(algo: &str) -> String {
    signing_keypair(algo).public().fingerprint().to_hex()
}

#[test]
fn several_recipients_with_the_card_key_last() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("rsa2048"), &cert("cv25519")], TEXT, Form::default());
    let (plain, _) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(plain, TEXT);
}

#[test]
fn tampered_ciphertext_yields_no_plaintext() {
    for aead in [None, Some(AEADAlgorithm::OCB)] {
        let mut cards = Cards::with_key("cv25519");
        let mut message = encrypt(
            &[&cert("cv25519")],
            TEXT,
            Form {
                aead,
                ..Form::default()
            },
        );
        let last = message.len() - 1;
        message[last] ^= 0x01;
        let err = decrypt_prompting(&mut cards, &message).expect_err("tampered");
        assert!(matches!(err, Error::BadMessage(_)), "{err:?}");
        assert_eq!(err.exit_code(), exit::BAD_MESSAGE);
    }
}

#[test]
fn message_for_another_key_names_the_recipients_and_the_card() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("nistp256")], TEXT, Form::default());
    let mut ui = Scripted::with_pin(USER_PIN);
    let err = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, false),
        &message,
    )
    .expect_err("no key");
    let text = err.to_string();
    assert!(matches!(err, Error::NoMatchingKey { .. }), "{err:?}");
    assert!(text.contains("FFFE:00000001"), "{text}");
    assert!(
        ui.asked.is_empty(),
        "no PIN may be asked for a card that cannot decrypt"
    );
    assert_eq!(err.exit_code(), exit::NO_KEY);
}

//! Decryption against the virtual card in-process: every card algorithm, every message form,
//! PIN handling, card selection. The whole openpgp-card client stack runs unchanged; only
//! the transport is a function call instead of pcscd.

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

#[test]
fn wrong_pin_costs_exactly_one_try_and_is_not_retried() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let before = cards.pw1_tries(0);
    let mut ui = Scripted::with_pin("999999");
    ui.pins.push_back(USER_PIN.into());
    let err = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, false),
        &message,
    )
    .expect_err("wrong pin");
    assert!(
        matches!(err, Error::WrongPin { tries_left } if tries_left == before - 1),
        "{err:?}"
    );
    assert_eq!(ui.asked.len(), 1, "asked once, never retried");
    assert_eq!(ui.asked[0].1, before, "prompt shows the tries left");
    assert_eq!(cards.pw1_tries(0), before - 1);
}

#[test]
fn last_try_is_refused_unless_allowed() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    for _ in 0..2 {
        let mut ui = Scripted::with_pin("999999");
        let _ = decrypt_with(
            &mut cards,
            &mut ui,
            &options(PinSource::Ask, false),
            &message,
        );
    }
    assert_eq!(cards.pw1_tries(0), 1);
    let mut ui = Scripted::with_pin(USER_PIN);
    let err = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, false),
        &message,
    )
    .expect_err("last try");
    assert!(matches!(err, Error::LastPinTry), "{err:?}");
    assert!(ui.asked.is_empty());
    assert_eq!(cards.pw1_tries(0), 1);

    let mut opts = options(PinSource::Ask, false);
    opts.pin.allow_last_try = true;
    let (plain, _) = decrypt_with(&mut cards, &mut ui, &opts, &message).expect("allowed");
    assert_eq!(plain, TEXT);
    assert_eq!(cards.pw1_tries(0), 3, "a correct PIN resets the counter");
}

#[test]
fn batch_without_pin_fails_before_spending_a_try() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let mut ui = Scripted::default();
    let err = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, true),
        &message,
    )
    .expect_err("batch");
    assert!(matches!(err, Error::PinUnavailable(_)), "{err:?}");
    assert_eq!(err.exit_code(), exit::PIN);
    assert_eq!(cards.pw1_tries(0), 3);
}

#[test]
fn a_card_still_unlocked_is_not_asked_for_its_pin_again() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    decrypt_prompting(&mut cards, &message).expect("first");
    let mut ui = Scripted::default();
    let (plain, _) = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, true),
        &message,
    )
    .expect("second decrypt needs no PIN");
    assert_eq!(plain, TEXT);
    assert!(ui.asked.is_empty());

    // A power cycle makes the card forget; then the PIN is needed again.
    cards.0[0].power_cycle();
    let err = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, true),
        &message,
    )
    .expect_err("after power cycle");
    assert!(matches!(err, Error::PinUnavailable(_)), "{err:?}");
}

#[test]
fn pin_file_is_used_without_prompting() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = dir.path().join("pin");
    std::fs::write(&pin, format!("{USER_PIN}\n")).expect("write pin");
    let mut ui = Scripted::default();
    let (plain, _) = decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::File(pin), true),
        &message,
    )
    .expect("decrypt");
    assert_eq!(plain, TEXT);
    assert!(ui.asked.is_empty());
}

#[test]
fn the_card_with_the_matching_key_is_chosen_among_several() {
    let mut cards = Cards::new(&[1, 2]);
    cards.import(0, "nistp256").expect("import a");
    cards.import(1, "cv25519").expect("import b");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let (plain, report) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(plain, TEXT);
    assert_eq!(report.card, "FFFE:00000002");

    let mut ui = Scripted::with_pin(USER_PIN);
    let mut opts = options(PinSource::Ask, false);
    opts.card = Some("FFFE:00000001".into());
    let err = decrypt_with(&mut cards, &mut ui, &opts, &message).expect_err("forced card");
    assert!(matches!(err, Error::NoMatchingKey { .. }), "{err:?}");

    opts.card = Some("FFFE:0000000A".into());
    let err = decrypt_with(&mut cards, &mut ui, &opts, &message).expect_err("absent card");
    assert!(
        matches!(err, Error::CardNotFound { ref found, .. } if found.len() == 2),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit::NO_CARD);
}

#[test]
fn fresh_decrypt_costs_six_apdus_with_a_cached_key_and_seven_without() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let pin = dir.path().join("pin");
    std::fs::write(&pin, USER_PIN).expect("write pin");
    let mut opts = options(PinSource::File(pin), true);
    opts.key_cache = Some(cache.path().to_path_buf());
    let mut ui = Scripted::default();
    let (_, first) = decrypt_with(&mut cards, &mut ui, &opts, &message).expect("first");
    cards.0[0].power_cycle();
    let (_, second) = decrypt_with(&mut cards, &mut ui, &opts, &message).expect("second");
    // SELECT, GET DATA 6E, KDF-DO, empty VERIFY (is the card unlocked already? then it
    // gets no PIN from us), VERIFY, PSO:DECIPHER; the first run also reads the key. Through
    // PC/SC a VERIFY P1=FF follows in the same transaction (src/card/forget.rs).
    assert_eq!(second.apdus, 6, "cached public key");
    assert_eq!(first.apdus, 7, "public key read once");
}

/// Regenerates the Sequoia-made base messages of the bad-input corpus; run by hand with
/// `cargo test --test decrypt -- --ignored`, then `python3 tests/data/make-fail-vectors.py`.
#[test]
#[ignore = "writes tests/data; run by hand to regenerate the corpus"]
fn write_base_vectors() {
    let plain = std::fs::read(data_dir().join("plain.txt")).expect("plain.txt");
    let v2 = encrypt(
        &[&cert("cv25519")],
        &plain,
        Form {
            aead: Some(AEADAlgorithm::OCB),
            ..Form::default()
        },
    );
    std::fs::write(data_dir().join("base_seipd2_ocb.gpg"), v2).expect("write");
}

/// Every file of the bad-input corpus fails with its documented error, and no plaintext.
#[test]
fn bad_input_corpus() {
    let cases = std::fs::read_to_string(data_dir().join("fail_cases.tsv")).expect("fail_cases");
    let mut checked = 0;
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let (file, code, needle) = (fields[0], fields[1], fields[2]);
        let message = std::fs::read(data_dir().join(file)).expect(file);
        let mut cards = Cards::with_key("cv25519");
        let mut ui = Scripted::with_pin(USER_PIN);
        let err = decrypt_with(
            &mut cards,
            &mut ui,
            &options(PinSource::Ask, false),
            &message,
        )
        .expect_err(file);
        assert_eq!(err.exit_code().to_string(), code, "{file}: {err}");
        assert!(err.to_string().contains(needle), "{file}: {err}");
        checked += 1;
    }
    assert!(checked >= 8, "corpus too small: {checked}");
}

/// Switches card `index` to KDF-DO PIN handling, as `gpg --card-edit kdf-setup` does: the
/// card stores only iterated-salted hashes of the PINs from now on.
fn enable_kdf(cards: &Cards, index: usize) {
    use openpgp_card::ocard::data::KdfDo;
    let kdf = KdfDo::iter_salted(0x08, vec![1; 8], vec![2; 8], vec![3; 8]).expect("kdf");
    let mut card =
        openpgp_card::Card::new(Box::new(cards.0[index].backend()) as cardecrypt::card::Backend)
            .expect("open");
    let mut tx = card.transaction().expect("tx");
    let raw = |s: &str| secrecy::SecretBox::<[u8]>::from(s.as_bytes().to_vec());
    let hashed = |h: Option<&[u8]>| secrecy::SecretBox::<[u8]>::from(h.expect("hash").to_vec());
    tx.card().verify_pw3(raw(ADMIN_PIN)).expect("admin");
    tx.card().set_kdf_do(&kdf).expect("set kdf");
    tx.card()
        .change_pw1(raw(USER_PIN), hashed(kdf.initial_hash_pw1()))
        .expect("pw1 to hash");
    tx.card()
        .change_pw3(raw(ADMIN_PIN), hashed(kdf.initial_hash_pw3()))
        .expect("pw3 to hash");
}

#[test]
fn kdf_cards_get_the_hashed_pin() {
    let mut cards = Cards::with_key("cv25519");
    enable_kdf(&cards, 0);
    cards.0[0].power_cycle();
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let (plain, _) = decrypt_prompting(&mut cards, &message).expect("decrypt with KDF");
    assert_eq!(plain, TEXT);
    assert_eq!(cards.pw1_tries(0), 3, "no try spent");
}

#[test]
fn password_only_message_is_refused_with_a_pointer_elsewhere() {
    use sequoia_openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
    use std::io::Write;
    let mut sink = Vec::new();
    {
        let m = Message::new(&mut sink);
        let m = Encryptor::with_passwords(m, Some("hunter2"))
            .build()
            .expect("enc");
        let mut w = LiteralWriter::new(m).build().expect("lit");
        w.write_all(TEXT).expect("write");
        w.finalize().expect("fin");
    }
    let mut cards = Cards::with_key("cv25519");
    let err = decrypt_prompting(&mut cards, &sink).expect_err("password only");
    assert!(matches!(err, Error::PasswordOnly), "{err:?}");
    assert_eq!(cards.pw1_tries(0), 3);
}

/// The message with a copy of its first PKESK, damaged, put in front: `damage` changes the
/// copy's encrypted session key.
fn with_a_damaged_pkesk_first(message: &[u8], damage: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    use sequoia_openpgp::{
        crypto::mpi::{Ciphertext, MPI},
        packet::{pkesk::PKESK3, Packet, PKESK},
        parse::Parse,
        serialize::Serialize,
        PacketPile,
    };
    let pile = PacketPile::from_bytes(message).expect("parse");
    let packets: Vec<Packet> = pile.into_children().collect();
    let Packet::PKESK(PKESK::V3(good)) = &packets[0] else {
        panic!("a v3 PKESK first");
    };
    let esk = match good.esk() {
        Ciphertext::RSA { c } => {
            let mut bytes = c.value().to_vec();
            damage(&mut bytes);
            Ciphertext::RSA {
                c: MPI::new(&bytes),
            }
        }
        Ciphertext::ECDH { e, key } => {
            let mut bytes = e.value().to_vec();
            damage(&mut bytes);
            Ciphertext::ECDH {
                e: MPI::new(&bytes),
                key: key.clone(),
            }
        }
        other => panic!("{other:?}"),
    };
    let bad = PKESK3::new(good.recipient().cloned(), good.pk_algo(), esk).expect("pkesk");
    let mut out = Vec::new();
    Packet::from(PKESK::V3(bad))
        .serialize(&mut out)
        .expect("serialize");
    for p in &packets {
        p.serialize(&mut out).expect("serialize");
    }
    out
}

/// A PKESK the card cannot unwrap (RSA padding that does not check, an ECDH point that is
/// not one) is passed over for the next one; alone, it gives the one error every unwrap
/// failure gives.
#[test]
fn a_pkesk_the_card_cannot_unwrap_is_passed_over() {
    use sequoia_openpgp::parse::Parse;
    for algo in ["rsa2048", "nistp256", "cv25519"] {
        let mut cards = Cards::with_key(algo);
        let message = encrypt(&[&cert(algo)], TEXT, Form::default());
        let damaged = with_a_damaged_pkesk_first(&message, |b| {
            let middle = b.len() / 2;
            b[middle..].iter_mut().for_each(|x| *x ^= 0x5A);
        });
        let (plain, _) = decrypt_prompting(&mut cards, &damaged).expect(algo);
        assert_eq!(plain, TEXT, "{algo}");
        // Only the damaged one: the uniform error, exit 6.
        let pile = sequoia_openpgp::PacketPile::from_bytes(&damaged).expect("parse");
        let mut alone = Vec::new();
        for (i, p) in pile.into_children().enumerate() {
            if i != 1 {
                sequoia_openpgp::serialize::Serialize::serialize(&p, &mut alone).expect("ser");
            }
        }
        let err = decrypt_prompting(&mut cards, &alone).expect_err(algo);
        assert!(
            matches!(&err, Error::BadMessage(m) if m.contains("unwrapped no session key")),
            "{algo}: {err:?}"
        );
    }
}

//! PINs (one try per wrong PIN, never retried, the last one kept, KDF cards), choosing among
//! several cards, the APDU budget, and the inputs refused or passed over: the bad-input
//! corpus, password-only messages, session key packets the card cannot use.

use super::*;

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

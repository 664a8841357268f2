//! Card management against the virtual card in-process: generate (with a certificate the
//! card signs), export, status, PINs, card data, KDF, factory reset.

mod common;

use cardecrypt::{
    card::{pin::PinSource, report, Backend},
    certify,
    provision::{self, KeyAlgo, PinChange, Setting},
    Error,
};
use common::*;
use openpgp_card::{
    ocard::{data::TouchPolicy, KeyType},
    state::Open,
    Card,
};
use secrecy::SecretString;
use sequoia_openpgp::{policy::StandardPolicy, Cert};

fn open(cards: &Cards) -> Card<Open> {
    Card::<Open>::new(Box::new(cards.0[0].backend()) as Backend).expect("open")
}

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

fn generate(cards: &Cards, algo: KeyAlgo) -> Cert {
    let mut card = open(cards);
    let mut tx = card.transaction().expect("tx");
    let keys = provision::generate(&mut tx, s(ADMIN_PIN), false, algo).expect("generate");
    certify::certify(&mut tx, &keys, "Gen <gen@cardecrypt.test>", s(USER_PIN)).expect("certify")
}

fn card_status(cards: &Cards) -> report::Status {
    let mut card = open(cards);
    let mut tx = card.transaction().expect("tx");
    report::read(&mut tx, "Virtual 0").expect("status")
}

fn assert_generated_cert_works(algo: KeyAlgo) {
    let mut cards = Cards::one();
    let cert = generate(&cards, algo);
    let policy = StandardPolicy::new();
    let valid = cert
        .with_policy(&policy, None)
        .expect("self-signatures verify");
    assert_eq!(valid.keys().subkeys().count(), 2, "{algo:?}");
    let st = card_status(&cards);
    let fprs: Vec<String> = cert
        .keys()
        .map(|k| k.key().fingerprint().to_hex())
        .collect();
    for slot in &st.slots {
        assert!(
            fprs.contains(slot.fingerprint.as_ref().expect("slot filled")),
            "{algo:?}"
        );
        assert_eq!(slot.origin, Some("generated"));
    }
    let message = encrypt(&[&cert], b"to a card-made key\n", Form::default());
    let (plain, _) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(plain, b"to a card-made key\n");
}

#[test]
fn generate_cv25519() {
    assert_generated_cert_works(KeyAlgo::Cv25519);
}

#[test]
fn generate_nistp256() {
    assert_generated_cert_works(KeyAlgo::Nistp256);
}

#[test]
fn generate_nistp384() {
    assert_generated_cert_works(KeyAlgo::Nistp384);
}

#[test]
fn generate_rsa2048() {
    assert_generated_cert_works(KeyAlgo::Rsa2048);
}

#[test]
fn export_certifies_imported_keys_with_their_fingerprints() {
    let cards = Cards::with_key("nistp256");
    let mut card = open(&cards);
    let mut tx = card.transaction().expect("tx");
    let keys = provision::slot_keys(&mut tx).expect("slot keys");
    let cert = certify::certify(&mut tx, &keys, "Again <again@cardecrypt.test>", s(USER_PIN))
        .expect("certify");
    let original = cert_fprs(&common::cert("nistp256"));
    assert_eq!(cert_fprs(&cert), original);
    cert.with_policy(&StandardPolicy::new(), None)
        .expect("valid");
}

fn cert_fprs(cert: &Cert) -> Vec<String> {
    let mut v: Vec<String> = cert
        .keys()
        .map(|k| k.key().fingerprint().to_hex())
        .collect();
    v.sort();
    v
}

#[test]
fn status_shows_keys_pins_and_card_data() {
    let cards = Cards::with_key("cv25519");
    {
        let mut card = open(&cards);
        let mut tx = card.transaction().expect("tx");
        for setting in [
            Setting::Name("Alice Pleasance Liddell".into()),
            Setting::Url("https://example.org/alice.asc".into()),
            Setting::Lang("en,de".into()),
            Setting::Touch(KeyType::Decryption, TouchPolicy::On),
        ] {
            provision::set(&mut tx, s(ADMIN_PIN), false, setting).expect("set");
        }
    }
    let st = card_status(&cards);
    assert_eq!(st.schema, 1);
    assert_eq!(st.ident, "FFFE:00000001");
    assert_eq!(st.cardholder.as_deref(), Some("Alice Pleasance Liddell"));
    assert_eq!(st.url.as_deref(), Some("https://example.org/alice.asc"));
    assert_eq!(st.lang, ["en", "de"]);
    let dec = &st.slots[1];
    assert_eq!(dec.slot, "decryption");
    assert_eq!(
        dec.fingerprint.as_deref(),
        Some("F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44")
    );
    assert_eq!(dec.origin, Some("imported"));
    assert_eq!(dec.touch.as_deref(), Some("on"));
    assert_eq!(st.pin.user_tries, 3);
    assert!(!st.kdf);
    let json = serde_json::to_value(&st).expect("json");
    assert_eq!(
        json["slots"][1]["fingerprint"],
        "F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44"
    );
    assert!(st.to_text().contains("Alice Pleasance Liddell"));

    let bad = {
        let mut card = open(&cards);
        let mut tx = card.transaction().expect("tx");
        provision::set(
            &mut tx,
            s(ADMIN_PIN),
            false,
            Setting::Lang("english".into()),
        )
    };
    assert!(matches!(bad, Err(Error::Usage(_))), "{bad:?}");
}

fn change(cards: &Cards, change: PinChange) -> Result<(), Error> {
    let mut card = open(cards);
    let mut tx = card.transaction().expect("tx");
    provision::change_pin(&mut tx, change, false)
}

#[test]
fn user_pin_change_block_and_unblock() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&common::cert("cv25519")], b"pins\n", Form::default());
    change(
        &cards,
        PinChange::User {
            current: s(USER_PIN),
            new: s("24681357"),
        },
    )
    .expect("change");
    cards.0[0].power_cycle();
    let mut ui = Scripted::with_pin("24681357");
    decrypt_with(
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, false),
        &message,
    )
    .expect("new PIN");

    let short = change(
        &cards,
        PinChange::User {
            current: s("24681357"),
            new: s("123"),
        },
    );
    assert!(matches!(short, Err(Error::Usage(_))), "{short:?}");

    // Block the user PIN, then unblock it with a resetting code.
    change(
        &cards,
        PinChange::ResetCode {
            admin: s(ADMIN_PIN),
            new: s("reset-me-1"),
        },
    )
    .expect("rc");
    let wrong = || PinChange::User {
        current: s("999999"),
        new: s("111111"),
    };
    for _ in 0..2 {
        let _ = change(&cards, wrong());
    }
    let refused = change(&cards, wrong());
    assert!(matches!(refused, Err(Error::LastPinTry)), "{refused:?}");
    {
        let mut card = open(&cards);
        let mut tx = card.transaction().expect("tx");
        let blocked = provision::change_pin(&mut tx, wrong(), true);
        assert!(
            matches!(blocked, Err(Error::WrongPin { tries_left: 0 })),
            "{blocked:?}"
        );
    }
    assert_eq!(cards.pw1_tries(0), 0);
    change(
        &cards,
        PinChange::UnblockWithResetCode {
            reset_code: s("reset-me-1"),
            new: s("135792"),
        },
    )
    .expect("unblock with rc");
    assert_eq!(cards.pw1_tries(0), 3);
    change(
        &cards,
        PinChange::UnblockWithAdmin {
            admin: s(ADMIN_PIN),
            new: s(USER_PIN),
        },
    )
    .expect("unblock with admin");
    cards.0[0].power_cycle();
    decrypt_prompting(&mut cards, &message).expect("default PIN again");
}

#[test]
fn admin_pin_change_and_last_try_refusal() {
    let cards = Cards::one();
    change(
        &cards,
        PinChange::Admin {
            current: s(ADMIN_PIN),
            new: s("87654321"),
        },
    )
    .expect("change");
    for _ in 0..2 {
        let wrong = change(
            &cards,
            PinChange::ResetCode {
                admin: s("00000000"),
                new: s("whatever1"),
            },
        );
        assert!(matches!(wrong, Err(Error::WrongPin { .. })), "{wrong:?}");
    }
    let last = change(
        &cards,
        PinChange::ResetCode {
            admin: s("87654321"),
            new: s("whatever1"),
        },
    );
    assert!(matches!(last, Err(Error::LastPinTry)), "{last:?}");
    assert_eq!(card_status(&cards).pin.admin_tries, 1);
}

#[test]
fn kdf_enable_keeps_the_pins_working() {
    let mut cards = Cards::with_key("cv25519");
    {
        let mut card = open(&cards);
        let mut tx = card.transaction().expect("tx");
        provision::enable_kdf(&mut tx, s(USER_PIN), s(ADMIN_PIN), false).expect("kdf");
    }
    assert!(card_status(&cards).kdf);
    cards.0[0].power_cycle();
    let message = encrypt(&[&common::cert("cv25519")], b"kdf\n", Form::default());
    let (plain, _) = decrypt_prompting(&mut cards, &message).expect("user PIN via KDF");
    assert_eq!(plain, b"kdf\n");
    let mut card = open(&cards);
    let mut tx = card.transaction().expect("tx");
    provision::set(
        &mut tx,
        s(ADMIN_PIN),
        false,
        Setting::Url("https://k.example".into()),
    )
    .expect("admin PIN via KDF");
    assert_eq!(card_status(&cards).pin.user_tries, 3);

    // A wrong user PIN is caught before anything changes.
    let fresh = Cards::one();
    let mut card = open(&fresh);
    let mut tx = card.transaction().expect("tx");
    let err = provision::enable_kdf(&mut tx, s("000000"), s(ADMIN_PIN), false).expect_err("wrong");
    assert!(matches!(err, Error::WrongPin { .. }), "{err:?}");
    drop(tx);
    assert!(!card_status(&fresh).kdf);
}

#[test]
fn factory_reset_wipes_keys_and_pins() {
    let cards = Cards::with_key("cv25519");
    change(
        &cards,
        PinChange::User {
            current: s(USER_PIN),
            new: s("24681357"),
        },
    )
    .expect("change");
    {
        let mut card = open(&cards);
        let mut tx = card.transaction().expect("tx");
        provision::factory_reset(&mut tx).expect("reset");
    }
    let st = card_status(&cards);
    assert!(st.slots.iter().all(|s| s.fingerprint.is_none()), "{st:?}");
    change(
        &cards,
        PinChange::User {
            current: s(USER_PIN),
            new: s("11223344"),
        },
    )
    .expect("default PIN is back");
}

#[test]
fn passphrase_protected_key_is_imported_with_its_passphrase() {
    use sequoia_openpgp::{crypto::Password, packet::Packet};
    let plain = common::cert("cv25519");
    let pw = Password::from("correct horse");
    let primary = plain
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .expect("secret")
        .encrypt_secret(&pw)
        .expect("encrypt");
    let mut packets: Vec<Packet> = vec![Packet::from(primary)];
    for ka in plain.keys().subkeys().secret() {
        let k = ka.key().clone().encrypt_secret(&pw).expect("encrypt");
        packets.push(Packet::from(k));
    }
    let (locked, _) = plain.clone().insert_packets(packets).expect("insert");
    assert!(locked
        .keys()
        .secret()
        .all(|k| !k.key().has_unencrypted_secret()));

    let missing = provision::plan(&locked, &[], None);
    assert!(
        matches!(missing, Err(Error::PinUnavailable(_))),
        "{:?}",
        missing.err()
    );
    let wrong = provision::plan(&locked, &[], Some(&Password::from("wrong")));
    assert!(matches!(wrong, Err(Error::Usage(_))), "{:?}", wrong.err());
    let planned = provision::plan(&locked, &[], Some(&pw)).expect("plan");
    let mut cards = Cards::one();
    let mut only = Cards(vec![cards.0[0].clone()]);
    cardecrypt::cmd::card::import(&mut only, None, &planned, s(ADMIN_PIN), false, false)
        .expect("import");
    let message = encrypt(&[&plain], b"locked key\n", Form::default());
    let (out, _) = decrypt_prompting(&mut cards, &message).expect("decrypt");
    assert_eq!(out, b"locked key\n");
}

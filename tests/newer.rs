//! Packets from newer and other implementations, where RFC 9580 says what to do: a session
//! key packet of an unknown version, or for an unknown public key algorithm, is passed over
//! (before or after the card's), and said with `-v`; alone, it is a format refusal, not
//! damage.

mod common;

use cardecrypt::error::Error;
use common::*;
use sequoia_openpgp::{parse::Parse, serialize::Serialize, PacketPile};

const TEXT: &[u8] = b"a message from a newer implementation";

/// A packet with a new-format header (`body` under 8384 bytes).
fn raw_packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xc0 | tag];
    match body.len() {
        n if n < 192 => out.push(n as u8),
        n => {
            let n = n - 192;
            out.extend_from_slice(&[(n >> 8) as u8 + 192, (n & 0xff) as u8]);
        }
    }
    out.extend_from_slice(body);
    out
}

/// The PKESKs that must be passed over, and what `-v` says of each.
fn strangers() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut future = vec![7, 33, 7];
    future.extend_from_slice(&[0xab; 32]);
    future.push(25);
    future.extend_from_slice(&[0x11; 40]);
    let mut v3 = vec![3];
    v3.extend_from_slice(&[0x42; 8]);
    v3.extend_from_slice(&[99, 0x00, 0x08, 0xff]);
    let mut v6 = vec![6, 0, 100];
    v6.extend_from_slice(&[0x01; 20]);
    vec![
        ("version 7", raw_packet(1, &future), "version 7"),
        ("v3, algorithm 99", raw_packet(1, &v3), "algorithm 99"),
        ("v6, algorithm 100", raw_packet(1, &v6), "algorithm 100"),
    ]
}

/// The message's packets serialized one by one: the card's PKESK first, then the container.
fn packets(message: &[u8]) -> Vec<Vec<u8>> {
    PacketPile::from_bytes(message)
        .expect("parse")
        .into_children()
        .map(|p| {
            let mut out = Vec::new();
            p.serialize(&mut out).expect("serialize");
            out
        })
        .collect()
}

#[test]
fn a_session_key_packet_of_an_unknown_version_or_algorithm_is_passed_over() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let parts = packets(&message);
    assert_eq!(parts.len(), 2, "one PKESK and the container");
    for (name, stranger, said) in strangers() {
        for first in [true, false] {
            let mut m = Vec::new();
            if first {
                m.extend_from_slice(&stranger);
            }
            m.extend_from_slice(&parts[0]);
            if !first {
                m.extend_from_slice(&stranger);
            }
            m.extend_from_slice(&parts[1]);
            let (plain, report) = decrypt_prompting(&mut cards, &m)
                .unwrap_or_else(|e| panic!("{name}, first {first}: {e:?}"));
            assert_eq!(plain, TEXT);
            assert_eq!(report.skipped.len(), 1, "{name}: {:?}", report.skipped);
            assert!(report.skipped[0].contains(said), "{:?}", report.skipped);
        }
    }
}

#[test]
fn only_unknown_session_key_packets_is_a_format_refusal_not_damage() {
    let mut cards = Cards::with_key("cv25519");
    let message = encrypt(&[&cert("cv25519")], TEXT, Form::default());
    let parts = packets(&message);
    for (name, stranger, said) in strangers() {
        let mut m = stranger.clone();
        m.extend_from_slice(&parts[1]);
        let err = decrypt_prompting(&mut cards, &m).expect_err(name);
        assert!(
            matches!(&err, Error::Unsupported(why) if why.contains(said)),
            "{name}: {err:?}"
        );
        let hint = err.hint().unwrap_or_default();
        assert!(!hint.contains("damaged"), "{name}: {hint}");
    }
    assert_eq!(cards.pw1_tries(0), 3, "no PIN spent");
}

/// A v6 key locked the RFC 9580 way: Argon2 S2K (here with 64 MiB, t=1, p=4) and
/// AEAD-protected secret key material (OCB, and EAX), as sequoia and OpenPGP.js 6 lock v6
/// keys. The right passphrase puts it on a card, which then decrypts; a wrong one says so.
#[test]
fn a_v6_key_locked_with_argon2_and_aead_is_imported() {
    use sequoia_openpgp::{
        cert::{CertBuilder, CipherSuite},
        crypto::{Password, S2K},
        packet::{key::SecretKeyMaterial, Packet},
        types::{AEADAlgorithm, SymmetricAlgorithm},
        Cert, Profile,
    };
    let (cert, _) = CertBuilder::general_purpose(Some("locked <v6@cardecrypt.test>"))
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_profile(Profile::RFC9580)
        .expect("profile")
        .generate()
        .expect("generate");
    let password = Password::from("correct horse battery staple");
    for aead in [AEADAlgorithm::OCB, AEADAlgorithm::EAX] {
        let mut locked: Vec<Packet> = Vec::new();
        for key in cert.keys().secret() {
            let key = key.key().clone();
            let s2k = S2K::Argon2 {
                salt: [7; 16],
                t: 1,
                p: 4,
                m: 16,
            };
            let (key, secret) = key.take_secret();
            let SecretKeyMaterial::Unencrypted(plain) = secret else {
                panic!("unlocked when generated");
            };
            let encrypted = plain
                .encrypt_with(&key, s2k, SymmetricAlgorithm::AES256, Some(aead), &password)
                .expect("lock");
            let (key, _) = key.add_secret(SecretKeyMaterial::Encrypted(encrypted));
            locked.push(if key.fingerprint() == cert.fingerprint() {
                key.role_into_primary().into()
            } else {
                key.role_into_subordinate().into()
            });
        }
        let (cert, _) = cert.clone().insert_packets(locked).expect("insert");
        // Serialized and read back, as from a file.
        let mut bytes = Vec::new();
        cert.as_tsk().serialize(&mut bytes).expect("tsk");
        let cert = Cert::from_bytes(&bytes).expect("read");
        assert!(
            !cert.keys().unencrypted_secret().any(|_| true),
            "all locked"
        );

        let mut cards = Cards::one();
        let wrong = cards
            .import_cert(0, &cert, Some(&Password::from("wrong horse")))
            .expect_err("wrong passphrase");
        assert!(
            format!("{wrong}").contains("wrong passphrase"),
            "{aead:?}: {wrong}"
        );
        cards
            .import_cert(0, &cert, Some(&password))
            .unwrap_or_else(|e| panic!("{aead:?}: {e}"));
        let message = encrypt(&[&cert], TEXT, Form::default());
        let (plain, _) = decrypt_prompting(&mut cards, &message).expect("decrypt");
        assert_eq!(plain, TEXT);
    }
}

//! The decryption engine against messages from other implementations, in-process against the
//! virtual card: GnuPG's and RNP's OCB/EAX Encrypted Data packet (tag 20), every legacy cipher
//! from the real gpg, streams in two passes, and inputs that change between the passes.

mod common;
#[path = "engine/passes.rs"]
mod passes;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use cardecrypt::{
    card::pin::PinSource,
    decrypt::{self, Report},
    engine::{Dest, Input},
    Error,
};
use common::*;

const RECIPIENT: &str = "cv25519@cardecrypt.test";

/// Runs a peer program; its absence is a failure (scripts/test.sh installs them).
fn run(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    piped(Command::new(program).args(args), input)
}

/// A home for rnp or gpg holding the cv25519 fixture certificate.
struct PeerHome(tempfile::TempDir);

impl PeerHome {
    fn rnp() -> PeerHome {
        let home = PeerHome(tempfile::tempdir().expect("tempdir"));
        let cert = data_dir().join("keys/cv25519.pub.asc");
        run(
            "rnpkeys",
            &[
                "--homedir",
                home.path(),
                "--import",
                cert.to_str().expect("path"),
            ],
            b"",
        );
        home
    }

    fn gpg() -> PeerHome {
        let home = PeerHome(tempfile::tempdir().expect("tempdir"));
        home.gpg_import("cv25519");
        home
    }

    /// Imports the fixture certificate `algo` into this gpg home.
    fn gpg_import(&self, algo: &str) {
        let cert = data_dir().join(format!("keys/{algo}.pub.asc"));
        run(
            "gpg",
            &[
                "--homedir",
                self.path(),
                "--batch",
                "--quiet",
                "--import",
                cert.to_str().expect("path"),
            ],
            b"",
        );
    }

    fn path(&self) -> &str {
        self.0.path().to_str().expect("utf-8 path")
    }

    fn rnp_encrypt(&self, aead: &str, chunk_bits: &str, armor: bool, plain: &[u8]) -> Vec<u8> {
        let mut args = vec![
            "--homedir",
            self.path(),
            "--encrypt",
            "-r",
            RECIPIENT,
            "--aead-chunk-bits",
            chunk_bits,
        ];
        let mode = format!("--aead={aead}");
        args.push(&mode);
        if armor {
            args.push("--armor");
        }
        args.extend(["--output", "-", "-"]);
        run("rnp", &args, plain)
    }

    fn gpg_encrypt(&self, extra: &[&str], plain: &[u8]) -> Vec<u8> {
        let mut args = vec![
            "--homedir",
            self.path(),
            "--batch",
            "--quiet",
            "--trust-model",
            "always",
            "-z",
            "0",
            "-e",
            "-r",
            RECIPIENT,
        ];
        args.extend_from_slice(extra);
        run("gpg", &args, plain)
    }
}

fn text(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
        .collect()
}

fn decrypts(message: &[u8]) -> Result<(Vec<u8>, Report), Error> {
    let mut cards = Cards::with_key("cv25519");
    decrypt_prompting(&mut cards, message)
}

#[test]
fn rnp_ocb_and_eax_packets_decrypt_binary_and_armored_any_chunk_size() {
    let home = PeerHome::rnp();
    for len in [0usize, 1, 63, 64, 65, 5000, 300_000] {
        let plain = text(len);
        for (aead, id) in [("ocb", 2u8), ("eax", 1)] {
            for (bits, armor) in [("0", false), ("6", true), ("12", false)] {
                let message = home.rnp_encrypt(aead, bits, armor, &plain);
                let (got, report) = decrypts(&message)
                    .unwrap_or_else(|e| panic!("{aead} chunk bits {bits} len {len}: {e}"));
                assert!(got == plain, "{aead} chunk bits {bits} len {len}");
                assert_eq!(report.aead_algo, Some(id));
                assert!(report.librepgp);
            }
        }
    }
}

/// Flips one byte at `from_end` bytes before the end of the message.
fn flip(message: &[u8], from_end: usize) -> Vec<u8> {
    let mut m = message.to_vec();
    let at = m.len() - from_end;
    m[at] ^= 0x01;
    m
}

#[test]
fn tag20_tampered_in_the_last_chunk_or_the_final_tag_gives_nothing() {
    let home = PeerHome::rnp();
    let plain = text(10_000);
    for aead in ["ocb", "eax"] {
        let message = home.rnp_encrypt(aead, "6", false, &plain);
        // The final tag is the last 16 bytes; the last chunk's data and tag come before it.
        for (what, from_end) in [("final tag", 3), ("last chunk tag", 20), ("last chunk", 40)] {
            let err = decrypts(&flip(&message, from_end)).expect_err(what);
            assert_eq!(
                err.exit_code(),
                cardecrypt::error::exit::BAD_MESSAGE,
                "{aead} {what}: {err}"
            );
            assert!(
                err.to_string().contains("authenticate"),
                "{aead} {what}: {err}"
            );
        }
        // Cut off the final tag: caught, not released.
        let err = decrypts(&message[..message.len() - 16]).expect_err("truncated");
        assert_eq!(
            err.exit_code(),
            cardecrypt::error::exit::BAD_MESSAGE,
            "{err}"
        );
    }
}

fn tag20_script(ojs5: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    node_script("tag20.mjs", "OPENPGPJS5", ojs5, args, stdin)
}

/// OpenPGP.js 5's tag-20 packets (another writer than rnp and GnuPG) to a key OpenPGP.js 5
/// made and cardecrypt put on a card: EAX and OCB, tiny (64-byte) and large chunks, several
/// chunks, armored and binary; tampered in the last chunk or the final tag, nothing.
#[test]
fn openpgpjs5_tag20_packets_decrypt_on_a_card_and_tampering_gives_nothing() {
    let Some(ojs5) = openpgpjs("openpgp5", "OPENPGPJS5") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (secret, public) = (dir.path().join("sec.asc"), dir.path().join("pub.asc"));
    let path = |p: &Path| p.to_str().expect("utf8").to_string();
    tag20_script(&ojs5, &["genkey", &path(&secret), &path(&public)], b"");
    let cert = cardecrypt::provision::read_key(&secret).expect("read the key");
    let mut cards = Cards::one();
    cards.import_cert(0, &cert, None).expect("import");
    for len in [0usize, 1, 64, 5000, 300_000] {
        let plain = text(len);
        for (aead, id) in [("ocb", 2u8), ("eax", 1)] {
            for (chunk, armor) in [("0", "binary"), ("12", "armored"), ("6", "binary")] {
                let what = format!("{aead} chunk byte {chunk} {armor} len {len}");
                let message = tag20_script(
                    &ojs5,
                    &["encrypt", aead, chunk, armor, &path(&public)],
                    &plain,
                );
                if armor == "binary" {
                    assert_eq!(
                        message.first().map(|b| b & 0x3F),
                        Some(0x01),
                        "{what}: PKESK first"
                    );
                }
                let (got, report) = decrypt_prompting(&mut cards, &message)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(got == plain, "{what}");
                assert_eq!(report.aead_algo, Some(id), "{what}");
                assert!(report.librepgp, "{what}: the tag-20 packet");
                if armor == "binary" && len == 5000 {
                    for (part, from_end) in
                        [("final tag", 3), ("last chunk tag", 20), ("last chunk", 40)]
                    {
                        let err = decrypt_prompting(&mut cards, &flip(&message, from_end))
                            .expect_err(part);
                        assert_eq!(
                            err.exit_code(),
                            cardecrypt::error::exit::BAD_MESSAGE,
                            "{what} {part}: {err}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_legacy_cipher_from_gpg_decrypts_and_the_weak_ones_are_named() {
    let home = PeerHome::gpg();
    let plain = text(20_000);
    for (name, id, weak) in [
        ("IDEA", 1u8, true),
        ("3DES", 2, true),
        ("CAST5", 3, true),
        ("BLOWFISH", 4, true),
        ("AES", 7, false),
        ("AES192", 8, false),
        ("AES256", 9, false),
        ("TWOFISH", 10, false),
        ("CAMELLIA128", 11, false),
        ("CAMELLIA192", 12, false),
        ("CAMELLIA256", 13, false),
    ] {
        let message = home.gpg_encrypt(&["--cipher-algo", name], &plain);
        let (got, report) = decrypts(&message).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == plain, "{name}");
        assert_eq!(report.sym_algo, Some(id), "{name}");
        assert_eq!(report.weak_cipher.is_some(), weak, "{name}");
        let tampered = flip(&message, 30);
        let err = decrypts(&tampered).expect_err(name);
        assert!(
            !err.to_string().is_empty() && err.exit_code() == 6,
            "{name}: {err}"
        );
    }
}

/// Blowfish from gpg (the cipher GnuPG 1.4-2.1 messages were reported as tampered in) for
/// every card algorithm: the cipher layer is the same whatever unwrapped the session key.
#[test]
fn gpg_blowfish_messages_decrypt_for_every_card_algorithm() {
    let home = PeerHome::gpg();
    let plain = text(5_000);
    for algo in [
        "cv25519", "nistp256", "nistp384", "nistp521", "rsa2048", "rsa3072", "rsa4096",
    ] {
        home.gpg_import(algo);
        let recipient = format!("{algo}@cardecrypt.test");
        let message = run(
            "gpg",
            &[
                "--homedir",
                home.path(),
                "--batch",
                "--quiet",
                "--trust-model",
                "always",
                "--cipher-algo",
                "BLOWFISH",
                "-e",
                "-r",
                &recipient,
            ],
            &plain,
        );
        let mut cards = Cards::with_key(algo);
        let (got, report) =
            decrypt_prompting(&mut cards, &message).unwrap_or_else(|e| panic!("{algo}: {e}"));
        assert!(got == plain, "{algo}");
        assert_eq!(report.sym_algo, Some(4), "{algo}");
    }
}

/// gpg's compressed messages (zlib, zip, bzip2) stream through the inner parser.
#[test]
fn gpg_compressed_messages_decrypt() {
    let home = PeerHome::gpg();
    let plain = text(200_000);
    for algo in ["zip", "zlib", "bzip2"] {
        let message = home.gpg_encrypt(&["--compress-algo", algo, "-z", "6"], &plain);
        let (got, _) = decrypts(&message).unwrap_or_else(|e| panic!("{algo}: {e}"));
        assert!(got == plain, "{algo}");
    }
}

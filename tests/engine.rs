//! The decryption engine against messages from other implementations, in-process against the
//! virtual card: GnuPG's and RNP's OCB/EAX Encrypted Data packet (tag 20), every legacy cipher
//! from the real gpg, streams in two passes, and inputs that change between the passes.

mod common;

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

fn stream(input: Input, out: &mut Vec<u8>, spool_dir: &Path) -> Result<u64, Error> {
    let mut opts = options(PinSource::Ask, false);
    opts.spool_dir = Some(spool_dir.to_path_buf());
    stream_with(input, out, &opts)
}

/// Decrypts `input` to the stream `out` (two passes) with a fresh card holding cv25519.
fn stream_with(
    input: Input,
    out: &mut dyn Write,
    opts: &cardecrypt::decrypt::DecryptOptions,
) -> Result<u64, Error> {
    let mut cards = Cards::with_key("cv25519");
    let mut ui = Scripted::with_pin(USER_PIN);
    decrypt::decrypt_to(
        input,
        Dest::Stream(out),
        &mut cards,
        &mut ui,
        opts,
        &mut Report::default(),
    )
}

fn file_with(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write");
    path
}

/// Streams from a re-read file and from a spooled pipe give the plaintext once: held in
/// memory from pass 1 when it is small, from pass 2 when it is not; the spool leaves nothing
/// in its directory.
#[test]
fn streams_get_the_plaintext_from_pass_one_or_a_second_pass_from_a_file_or_a_spool() {
    let home = PeerHome::gpg();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = tempfile::tempdir().expect("spool dir");
    // The second size is larger than what pass 1 holds in memory, so pass 2 runs.
    for len in [100_000, 10 << 20] {
        let plain = text(len);
        for armor in [false, true] {
            let extra: &[&str] = if armor { &["--armor"] } else { &[] };
            let message = home.gpg_encrypt(extra, &plain);
            let path = file_with(dir.path(), "m.gpg", &message);
            let mut out = Vec::new();
            let file = std::fs::File::open(&path).expect("open");
            assert_eq!(
                stream(Input::File(file), &mut out, spool.path()).expect("file"),
                plain.len() as u64
            );
            assert!(out == plain, "file, armor {armor}, {len}");
            let mut out = Vec::new();
            let pipe = Input::Stream(Box::new(std::io::Cursor::new(message.clone())));
            assert_eq!(
                stream(pipe, &mut out, spool.path()).expect("spool"),
                plain.len() as u64
            );
            assert!(out == plain, "spool, armor {armor}, {len}");
            assert_eq!(std::fs::read_dir(spool.path()).expect("spool").count(), 0);
        }
    }
}

/// A compressed message larger than what pass 1 keeps in memory is inflated once: pass 1
/// seals what it inflated and pass 2 opens that, so the message file is not read again
/// (overwriting it after pass 1 changes nothing; an uncompressed one is refused then). Both
/// a message that outgrows memory and one too large for it from the start, from a file and
/// from a pipe; the spool leaves nothing in its directory.
#[test]
fn large_compressed_streams_are_inflated_once() {
    let home = PeerHome::gpg();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = tempfile::tempdir().expect("spool dir");
    let mut opts = options(PinSource::Ask, false);
    opts.spool_dir = Some(spool.path().to_path_buf());
    let mut x = 7u32;
    let noisy: Vec<u8> = (0..12 << 20)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x >> 26) as usize]
        })
        .collect();
    let cases = [
        ("zip", text(12 << 20)),
        ("zlib", text(12 << 20)),
        ("bzip2", text(12 << 20)),
        ("zlib", noisy),
    ];
    for (algo, plain) in cases {
        let message = home.gpg_encrypt(&["--compress-algo", algo, "-z", "6"], &plain);
        let path = file_with(dir.path(), "z.gpg", &message);
        let mut out = Overwrites::new(&path);
        let file = std::fs::File::open(&path).expect("open");
        let n = stream_with(Input::File(file), &mut out, &opts).expect(algo);
        assert_eq!(n, plain.len() as u64, "{algo}, {} bytes", message.len());
        assert!(out.out == plain, "{algo}, {} bytes", message.len());
        let mut out = Vec::new();
        let pipe = Input::Stream(Box::new(std::io::Cursor::new(message.clone())));
        stream(pipe, &mut out, spool.path()).expect(algo);
        assert!(out == plain, "{algo} piped");
        assert_eq!(std::fs::read_dir(spool.path()).expect("spool").count(), 0);
    }
    let message = home.gpg_encrypt(&["-z", "0"], &text(12 << 20));
    let path = file_with(dir.path(), "plain.gpg", &message);
    let mut out = Overwrites::new(&path);
    let file = std::fs::File::open(&path).expect("open");
    assert!(matches!(
        stream_with(Input::File(file), &mut out, &opts),
        Err(Error::InputChanged)
    ));
}

/// Overwrites the message file with zeros at the first write of pass 2.
struct Overwrites<'a> {
    path: &'a Path,
    out: Vec<u8>,
    done: bool,
}

impl<'a> Overwrites<'a> {
    fn new(path: &'a Path) -> Overwrites<'a> {
        Overwrites {
            path,
            out: Vec::new(),
            done: false,
        }
    }
}

impl Write for Overwrites<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.done {
            self.done = true;
            let len = std::fs::metadata(self.path)?.len() as usize;
            let mut f = std::fs::OpenOptions::new().write(true).open(self.path)?;
            f.write_all(&vec![0u8; len])?;
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An AEAD container in a large file is read ahead on a thread of its own from the moment
/// its header is known (SEIPD v1 is not: SHA-1 has that core): the switch loses no byte.
#[test]
fn a_large_aead_file_streams_through_the_read_ahead() {
    let rnp = PeerHome::rnp();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = tempfile::tempdir().expect("spool dir");
    let plain = text(9 << 20);
    let message = rnp.rnp_encrypt("ocb", "16", false, &plain);
    let path = file_with(dir.path(), "ocb.gpg", &message);
    let mut out = Vec::new();
    let file = std::fs::File::open(&path).expect("open");
    assert_eq!(
        stream(Input::File(file), &mut out, spool.path()).expect("file"),
        plain.len() as u64
    );
    assert!(out == plain, "OCB through the read-ahead");
}

/// A stream's output is written in pass 2 only; if the file changes after pass 1, pass 2
/// stops at the first changed block (what came before it was authenticated in pass 1).
#[test]
fn a_file_changed_between_the_passes_is_refused() {
    // Block 10 is checked by the reading side, block 11 by the read-ahead thread.
    for mib in [10, 11] {
        file_changed_in(mib);
    }
}

fn file_changed_in(mib: usize) {
    struct ChangesFile<'a> {
        path: &'a Path,
        out: Vec<u8>,
        done: bool,
        at: usize,
    }
    impl Write for ChangesFile<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.done {
                // Pass 2 has started (and read a few MiB ahead): change one byte of a later
                // MiB of the ciphertext, in place (a rewrite would truncate the file first,
                // and a short read would be refused whichever side checks).
                use std::os::unix::fs::FileExt;
                let file = std::fs::OpenOptions::new().write(true).open(self.path)?;
                let mut byte = [0u8; 1];
                std::fs::File::open(self.path)?.read_exact_at(&mut byte, self.at as u64)?;
                file.write_all_at(&[byte[0] ^ 0x55], self.at as u64)?;
                self.done = true;
            }
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let home = PeerHome::gpg();
    let plain = text(12 << 20);
    let message = home.gpg_encrypt(&[], &plain);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file_with(dir.path(), "m.gpg", &message);
    let mut sink = ChangesFile {
        path: &path,
        out: Vec::new(),
        done: false,
        at: (mib << 20) + 100,
    };
    let file = std::fs::File::open(&path).expect("open");
    let err = stream_with(
        Input::File(file),
        &mut sink,
        &options(PinSource::Ask, false),
    )
    .expect_err("changed file");
    assert!(matches!(err, Error::InputChanged), "MiB {mib}: {err}");
    assert!(sink.out.len() < plain.len());
    assert!(plain.starts_with(&sink.out));
}

/// Garbage is "not OpenPGP"; a broken packet is a bad message.
#[test]
fn garbage_is_not_openpgp_but_a_broken_packet_is_a_bad_message() {
    let err = decrypts(b"hello world").expect_err("garbage");
    assert!(matches!(err, Error::NotOpenPgp(_)), "{err}");
    let err = decrypts(&[0xc1, 0x00]).expect_err("broken");
    assert!(matches!(err, Error::BadMessage(_)), "{err}");
}

/// Ciphertext altered where the first inner packet's tag is: the packets inside no longer
/// parse (a "secret key" where literal data was), and the MDC fails. That is damage (exit 6,
/// BadMessage), found by reading on to the MDC, not a malformed message.
#[test]
fn altered_ciphertext_that_garbles_the_inner_packets_is_damage() {
    let message = encrypt(
        &[&cert("cv25519")],
        b"an altered literal packet",
        Form::default(),
    );
    // PKESK (new format, one-octet length), then the SEIPD packet's header and version.
    assert_eq!(message[0], 0xC1, "a PKESK first");
    let seipd = 2 + usize::from(message[1]);
    assert_eq!(message[seipd], 0xD2, "then a SEIPD packet");
    let header = match message[seipd + 1] {
        0..=191 | 224..=254 => 2,
        192..=223 => 3,
        _ => 6,
    };
    // Plaintext: 16 random bytes, 2 check bytes, then the literal packet's tag (0xCB). CFB
    // flips the same plaintext bits as ciphertext bits: 0xCB ^ 0x0E is 0xC5, a secret key.
    let mut altered = message.clone();
    altered[seipd + header + 1 + 18] ^= 0x0E;
    let err = decrypts(&altered).expect_err("altered");
    assert!(matches!(err, Error::BadMessage(_)), "{err:?}");
    assert!(decrypts(&message).is_ok(), "the original decrypts");
}

/// A file input of 64 MiB or more reports its progress: "checking" then "writing" for a
/// stream's two passes, each rising to the file's size; a small one reports nothing.
#[test]
fn large_file_inputs_report_progress_per_pass() {
    use std::sync::{Arc, Mutex};
    let home = PeerHome::gpg();
    let plain = text(66 << 20);
    let message = home.gpg_encrypt(&["-z", "0"], &plain);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file_with(dir.path(), "big.gpg", &message);
    type Reports = Arc<Mutex<Vec<(&'static str, u64, u64)>>>;
    let seen: Reports = Arc::default();
    let record = seen.clone();
    let mut opts = options(PinSource::Ask, false);
    opts.progress = Some(Arc::new(move |phase, done, total| {
        record.lock().expect("lock").push((phase, done, total));
    }));
    let mut out = Vec::new();
    stream_with(
        Input::File(std::fs::File::open(&path).expect("open")),
        &mut out,
        &opts,
    )
    .expect("decrypt");
    assert!(out == plain);
    let seen = seen.lock().expect("lock").clone();
    let size = message.len() as u64;
    for phase in ["checking", "writing"] {
        let calls: Vec<_> = seen.iter().filter(|(p, _, _)| *p == phase).collect();
        assert!(calls.len() >= 50, "{phase}: {} reports", calls.len());
        assert!(
            calls.windows(2).all(|w| w[0].1 <= w[1].1),
            "{phase} went backwards"
        );
        assert_eq!(
            calls.last().map(|c| (c.1, c.2)),
            Some((size, size)),
            "{phase}"
        );
    }
    let first_writing = seen.iter().position(|(p, _, _)| *p == "writing");
    let last_checking = seen.iter().rposition(|(p, _, _)| *p == "checking");
    assert!(last_checking < first_writing, "the passes interleaved");

    // Below the threshold: silent.
    let small = file_with(dir.path(), "small.gpg", &home.gpg_encrypt(&[], b"small\n"));
    let quiet: Arc<Mutex<usize>> = Arc::default();
    let count = quiet.clone();
    opts.progress = Some(Arc::new(move |_, _, _| *count.lock().expect("lock") += 1));
    let mut out = Vec::new();
    stream_with(
        Input::File(std::fs::File::open(&small).expect("open")),
        &mut out,
        &opts,
    )
    .expect("small");
    assert_eq!(*quiet.lock().expect("lock"), 0);
}

/// Decrypted into memory, compression inside compression stops at the in-memory limit with
/// its own error; the same under the limit decrypts.
#[test]
fn nested_compression_stops_at_the_memory_limit() {
    use openpgp::{
        cert::prelude::*,
        serialize::stream::{Compressor, Encryptor, LiteralWriter, Message, Recipient},
        types::CompressionAlgorithm,
    };
    use sequoia_openpgp as openpgp;
    let certificate = cert("cv25519");
    let policy = openpgp::policy::StandardPolicy::new();
    let make = |len: usize| {
        let mut sink = Vec::new();
        let message = Message::new(&mut sink);
        let recipients: Vec<Recipient> = certificate
            .keys()
            .with_policy(&policy, None)
            .for_transport_encryption()
            .map(|ka| {
                Recipient::new(
                    ka.valid_cert().features(),
                    Some(ka.key().key_handle()),
                    ka.key(),
                )
            })
            .collect();
        let message = Encryptor::for_recipients(message, recipients)
            .build()
            .expect("enc");
        let message = Compressor::new(message)
            .algo(CompressionAlgorithm::BZip2)
            .build()
            .expect("z1");
        let message = Compressor::new(message)
            .algo(CompressionAlgorithm::Zip)
            .build()
            .expect("z2");
        let mut w = LiteralWriter::new(message).build().expect("literal");
        w.write_all(&vec![0u8; len]).expect("write");
        w.finalize().expect("finalize");
        sink
    };
    let mut cards = Cards::with_key("cv25519");
    let mut ui = Scripted::with_pin(USER_PIN);
    let mut opts = options(PinSource::Ask, false);
    opts.max_plaintext = 4 << 20;
    let bomb = make(16 << 20);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let err = decrypt_with(&mut cards, &mut ui, &opts, &bomb).expect_err("past the limit");
    assert!(
        matches!(err, Error::TooLarge { limit } if limit == 4 << 20),
        "{err}"
    );
    assert_eq!(err.exit_code(), cardecrypt::error::exit::BAD_MESSAGE);
    let (plain, _) =
        decrypt_with(&mut cards, &mut ui, &opts, &make(4 << 20)).expect("at the limit");
    assert_eq!(plain.len(), 4 << 20);
}

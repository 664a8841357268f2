//! Streams in two passes: the plaintext from pass 1 or a second pass, from a file read again
//! or a spooled pipe; compressed streams inflated once; a file changed between the passes;
//! bad input; progress per pass; nested compression in memory.

use super::*;

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

//! Decrypting what other programs made: peer vectors, gpg's and Sequoia's messages for every
//! card algorithm and form, keys gpg moved to the card, the output file, and bad input.

use super::*;

/// A few of the peer vectors (`../shared/peer-vectors`) through the binaries: `card import`
/// of the suite's key (SHA-1 self-signatures and a passphrase among them), then `cardecrypt`:
/// GnuPG 1.4's 3DES message, GnuPG's tag-20 OCB packet in several chunks, an rPGP SEIPD v2,
/// a v6 key (rPGP, NIST P-256) and GnuPG 2.1.5's key with padded secret MPIs.
pub fn peer_vectors_decrypt_through_the_binaries(env: &Env) {
    use sha2::{Digest, Sha256};
    let Some(dir) = peer_corpus("peer_vectors_decrypt_through_the_binaries") else {
        return;
    };
    let table = std::fs::read_to_string(dir.join("cases.tsv")).expect("peer vectors");
    let wanted = [
        "interop-gnupg-v1-4-11-001",
        "rpgp-gnupg-ocb-multichunk",
        "rpgp-rfc9580-v4nistp-seipdv2",
        "rpgp-rfc9580-v6nistp-seipdv2",
        "interop-gnupg-v2-1-5-001",
    ];
    let mut checked = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if !wanted.contains(&f[0]) {
            continue;
        }
        let passphrase = env.path("passphrase");
        std::fs::write(&passphrase, format!("{}\n", f[4])).expect("passphrase");
        let key = dir.join(f[3]);
        let mut args = vec!["card", "import", "--batch", "--replace", "--admin-pin-file"];
        let admin = env.path("admin");
        args.push(admin.to_str().expect("utf8"));
        if f[4] != "-" {
            args.extend(["--passphrase-file", passphrase.to_str().expect("utf8")]);
        }
        args.push(key.to_str().expect("utf8"));
        assert_ok(&env.cardecrypt(&args, b""), f[0]);
        let message = dir.join(f[2]);
        let out = env.cardecrypt_with_pin(&[message.to_str().expect("utf8")], b"");
        assert_ok(&out, f[0]);
        let sha = format!("{:x}", Sha256::digest(&out.stdout));
        assert!(f[5].split('|').any(|x| x == sha), "{}: sha256 {sha}", f[0]);
        checked += 1;
    }
    assert_eq!(checked, wanted.len());
    env.import_to_card("cv25519");
}

pub fn decrypts_gpg_messages_for_every_card_algorithm(env: &Env) {
    let plain = b"interop with the real gpg\n";
    for algo in [
        "cv25519", "nistp256", "nistp384", "nistp521", "rsa2048", "rsa3072", "rsa4096",
    ] {
        env.import_to_card(algo);
        let pubkey = data_dir().join(format!("keys/{algo}.pub.asc"));
        assert_ok(
            &env.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
        let recipient = format!("{algo}@cardecrypt.test");
        let enc = env.gpg(&["-e", "-a", "-r", &recipient], plain);
        assert_ok(&enc, "gpg -e");
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, algo);
        assert_eq!(out.stdout, plain, "{algo}");
        assert!(out.stderr.is_empty(), "{algo}: {}", text(&out.stderr));
    }
}

pub fn decrypts_every_gpg_message_form(env: &Env) {
    env.import_to_card("cv25519");
    for algo in ["cv25519", "nistp256"] {
        let pubkey = data_dir().join(format!("keys/{algo}.pub.asc"));
        assert_ok(
            &env.gpg(&["--import", pubkey.to_str().expect("utf8")], b""),
            "gpg import",
        );
    }
    let secret = data_dir().join("keys/nistp256.sec.asc");
    assert_ok(
        &env.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--import",
                secret.to_str().expect("utf8"),
            ],
            b"",
        ),
        "gpg import signer",
    );
    let plain: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let me = "cv25519@cardecrypt.test";
    let other = "nistp256@cardecrypt.test";
    let forms: Vec<(&str, Vec<&str>)> = vec![
        ("binary", vec!["-e", "-r", me]),
        (
            "uncompressed",
            vec!["-e", "-a", "--compress-algo", "none", "-r", me],
        ),
        ("zip", vec!["-e", "--compress-algo", "zip", "-r", me]),
        ("zlib", vec!["-e", "--compress-algo", "zlib", "-r", me]),
        ("bzip2", vec!["-e", "--compress-algo", "bzip2", "-r", me]),
        ("two recipients", vec!["-e", "-r", other, "-r", me]),
        ("hidden recipient", vec!["-e", "-R", me]),
        (
            "signed",
            vec![
                "-s",
                "-e",
                "-u",
                other,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "-r",
                me,
            ],
        ),
    ];
    for (name, args) in forms {
        let enc = env.gpg(&args, &plain);
        assert_ok(&enc, name);
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, name);
        assert!(out.stdout == plain, "{name}: plaintext differs");
        let err = text(&out.stderr);
        if name != "signed" {
            assert!(err.is_empty(), "{name}: {err}");
            continue;
        }
        assert!(err.contains("NOT checked"), "{name}: {err}");
        // With the signer's certificate the gpg-made signature verifies, in words and in
        // gpg's status lines.
        let signer = data_dir().join("keys/nistp256.pub.asc");
        let out = env.cardecrypt_with_pin(
            &[
                "--status-fd=2",
                "--signer-certs",
                signer.to_str().expect("utf8"),
            ],
            &enc.stdout,
        );
        assert_ok(&out, "signed, with certs");
        assert!(out.stdout == plain, "signed: plaintext differs");
        let err = text(&out.stderr);
        let primary = cert("nistp256").fingerprint().to_hex();
        assert!(
            err.contains(&format!(
                "good signature by Test nistp256 <{other}> ({primary})"
            )),
            "{err}"
        );
        for want in ["[GNUPG:] NEWSIG", "[GNUPG:] GOODSIG ", "[GNUPG:] VALIDSIG "] {
            assert!(err.contains(want), "{want} missing: {err}");
        }
        let validsig = err
            .lines()
            .find(|l| l.starts_with("[GNUPG:] VALIDSIG "))
            .expect("VALIDSIG");
        assert!(validsig.ends_with(&primary), "{validsig}");
    }
}

pub fn gpg_decrypts_through_a_key_cardecrypt_imported(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    // gpg links the card's keys to the public key it knows.
    assert_ok(&env.gpg(&["--card-status"], b""), "gpg --card-status");
    let enc = env.gpg(&["-e", "-r", "cv25519@cardecrypt.test"], b"both ways\n");
    assert_ok(&enc, "gpg -e");
    let out = env.gpg_decrypts_on_card(&enc.stdout);
    assert_ok(&out, "gpg -d through the card");
    assert_eq!(out.stdout, b"both ways\n");
    env.stop_gpg();
}

pub fn output_file_is_new_private_and_not_overwritten(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");
    let out_file = env.path("out.txt");
    let args = ["-o", out_file.to_str().expect("utf8")];
    assert_ok(&env.cardecrypt_with_pin(&args, &message), "decrypt to file");
    assert_eq!(std::fs::read(&out_file).expect("out"), expected);
    let mode = std::fs::metadata(&out_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = env.cardecrypt_with_pin(&args, &message);
    assert_fails(&again, exit::USAGE, "--overwrite");
    let mut with_overwrite = args.to_vec();
    with_overwrite.push("--overwrite");
    assert_ok(
        &env.cardecrypt_with_pin(&with_overwrite, &message),
        "overwrite",
    );

    // A tampered message leaves no output file behind.
    let bad_file = env.path("bad.txt");
    let bad = std::fs::read(data_dir().join("fail_mdc.gpg")).expect("fail_mdc");
    let out = env.cardecrypt_with_pin(&["-o", bad_file.to_str().expect("utf8")], &bad);
    assert_fails(&out, exit::BAD_MESSAGE, "manipulated");
    assert!(!bad_file.exists());

    // An existing device or FIFO is written into (after authentication), never replaced.
    use std::os::unix::fs::FileTypeExt;
    assert_ok(
        &env.cardecrypt_with_pin(&["-o", "/dev/null"], &message),
        "-o /dev/null",
    );
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    let fifo = env.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).expect("read fifo"))
    };
    let fifo_arg = fifo.to_str().expect("utf8");
    let out = env.cardecrypt_with_pin(&["-o", fifo_arg, "--overwrite"], &message);
    // Should cardecrypt not have opened the FIFO, open it here so the reader ends.
    let _ = rustix::fs::open(
        &fifo,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    );
    assert_ok(&out, "-o FIFO --overwrite");
    assert_eq!(reader.join().expect("reader"), expected);
    let kind = std::fs::metadata(&fifo).expect("fifo").file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    std::fs::remove_file(&fifo).expect("rm fifo");
}

pub fn bad_input_corpus_gives_errors_and_no_plaintext(env: &Env) {
    env.import_to_card("cv25519");
    let cases = std::fs::read_to_string(data_dir().join("fail_cases.tsv")).expect("cases");
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let file = data_dir().join(f[0]);
        let out = env.cardecrypt_with_pin(&[file.to_str().expect("utf8")], b"");
        assert_fails(&out, f[1].parse().expect("code"), f[2]);
        assert_eq!(
            text(&out.stderr)
                .lines()
                .filter(|l| !l.contains("hint:"))
                .count(),
            1,
            "{}: one line",
            f[0]
        );
    }
}

pub fn gpg_keytocard_keys_decrypt_with_cardecrypt(env: &Env) {
    // gpg 2.2 keytocard does not switch a slot from ECC to RSA attributes by itself ("Invalid
    // value"); the RSA and NIST paths are covered by `card import` + gpg messages above.
    {
        let algo = "cv25519";
        // Put another key in the slot first, so the key on the card is gpg's doing.
        env.import_to_card("nistp256");
        // A card stub for this key from an earlier case (`gpg --card-status`) would stay in
        // place of the imported secret key: gpg then calls it unusable.
        env.stop_gpg();
        let _ = std::fs::remove_dir_all(env.gnupghome.join("private-keys-v1.d"));
        let secret = data_dir().join(format!("keys/{algo}.sec.asc"));
        let loopback = ["--pinentry-mode", "loopback", "--passphrase", ""];
        let mut args = loopback.to_vec();
        args.extend(["--import", secret.to_str().expect("utf8")]);
        assert_ok(&env.gpg(&args, b""), "gpg import secret");
        let cert = cert(algo);
        let primary = cert.fingerprint().to_hex();
        let out = env.gpg_keytocard(&primary);
        assert_ok(&out, &format!("gpg keytocard {algo}"));
        let gpg_log = text(&out.stderr);
        env.stop_gpg();
        let listed = env.cardecrypt(&["card", "list"], b"");
        let subkey = cert
            .keys()
            .subkeys()
            .next()
            .expect("subkey")
            .key()
            .fingerprint()
            .to_hex();
        let status = env.cardecrypt(&["card", "status"], b"");
        assert!(
            text(&status.stdout).contains(&subkey) && text(&status.stdout).contains("imported"),
            "card status after keytocard: {}",
            text(&status.stdout)
        );
        assert!(
            text(&listed.stdout).contains(&subkey),
            "{algo}: keytocard did not reach the card: {}\ngpg: {gpg_log}",
            text(&listed.stdout)
        );
        let enc = env.gpg(
            &["-e", "-r", &format!("{algo}@cardecrypt.test")],
            b"moved by gpg\n",
        );
        assert_ok(&enc, "gpg -e");
        let out = env.cardecrypt_with_pin(&[], &enc.stdout);
        assert_ok(&out, algo);
        assert_eq!(out.stdout, b"moved by gpg\n");
    }
}

pub fn decrypts_sequoia_messages_for_every_card_algorithm(env: &Env) {
    use sequoia_openpgp::types::AEADAlgorithm;
    for algo in [
        "cv25519", "nistp256", "nistp384", "nistp521", "rsa2048", "rsa3072", "rsa4096",
    ] {
        env.import_to_card(algo);
        for aead in [
            None,
            Some(AEADAlgorithm::OCB),
            Some(AEADAlgorithm::GCM),
            Some(AEADAlgorithm::EAX),
        ] {
            let plain = format!("sequoia to {algo} with {aead:?}\n");
            let message = encrypt(
                &[&cert(algo)],
                plain.as_bytes(),
                Form {
                    aead,
                    armor: true,
                    ..Form::default()
                },
            );
            let out = env.cardecrypt_with_pin(&[], &message);
            assert_ok(&out, &plain);
            assert_eq!(text(&out.stdout), plain);
        }
    }
}

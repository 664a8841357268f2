//! `cardecrypt inspect`: messages from the real gpg and from OpenPGP.js, emails with the
//! fields that give senders away. Every fact must appear in the text and in the JSON; no
//! plaintext body ever does; no card or pcscd is needed without `--decrypt`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use cardecrypt::{
    card::pin::PinSource,
    decrypt,
    error::exit,
    inspect::{self, Inspection},
    mail::message,
};
use common::*;

const BODY: &str = "the launch code is 0000, tell nobody";

fn json(i: &Inspection) -> String {
    serde_json::to_string(i).expect("json")
}

/// The text with its line wrapping undone (every run of white space one space).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Both forms say `fact`; neither says the body.
fn says(i: &Inspection, fact: &str) {
    let text = inspect::render(i);
    let json = json(i);
    assert!(
        flat(&text).contains(&flat(fact)),
        "text lacks {fact:?}:\n{text}"
    );
    assert!(json.contains(fact), "JSON lacks {fact:?}:\n{json}");
    assert!(
        !text.contains(BODY) && !json.contains(BODY),
        "the body was shown"
    );
}

fn text_says(i: &Inspection, fact: &str) {
    let text = inspect::render(i);
    assert!(
        flat(&text).contains(&flat(fact)),
        "text lacks {fact:?}:\n{text}"
    );
}

/// Every line of the text fits an 80-column terminal.
fn fits_80(i: &Inspection) {
    for line in inspect::render(i).lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
}

/// gpg: one visible and one hidden recipient, a comment and a version in the armor,
/// compressed, signed, with a file name.
fn gpg_message(gpg: &Gpg) -> Vec<u8> {
    gpg.run(
        &[
            "--armor",
            "--emit-version",
            "--comment",
            "Sent by the inspect test",
            "--compress-level",
            "6",
            "--set-filename",
            "secret-plan.txt",
            "-u",
            "nistp256@cardecrypt.test",
            "-r",
            "cv25519@cardecrypt.test",
            "-R",
            "rsa2048@cardecrypt.test",
            "--sign",
            "--encrypt",
        ],
        BODY.as_bytes(),
    )
}

#[test]
fn gpg_message_shows_recipients_armor_headers_and_container() {
    let gpg = Gpg::new();
    let message = gpg_message(&gpg);
    let i = inspect::outside(&message, &None).expect("inspect");
    let m = i.message.as_ref().expect("message facts");
    assert_eq!(m.recipients.len(), 2, "{m:?}");
    assert!(m
        .recipients
        .iter()
        .any(|r| r.key_id.as_deref() == Some("7BC04DD0BECCEA44")));
    assert!(
        m.recipients.iter().any(|r| r.key_id.is_none()),
        "hidden recipient"
    );
    says(&i, "7BC04DD0BECCEA44");
    text_says(&i, "a hidden recipient");
    says(&i, "Sent by the inspect test");
    says(&i, "Version");
    says(&i, "SEIPDv1");
    says(&i, "MDC (SHA-1)");
    assert!(json(&i).contains("\"version\":1"));
    text_says(&i, "no card was checked");
    says(&i, "hidden recipients (gpg --throw-keyids");
    says(&i, "--no-emit-version");
    fits_80(&i);
}

#[test]
fn with_the_card_the_inside_is_described_not_shown() {
    let gpg = Gpg::new();
    let message = gpg_message(&gpg);
    let mut cards = Cards::with_key("cv25519");
    let cards_present = Some(vec![(
        "FFFE:00000001".to_string(),
        "F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44".to_string(),
    )]);
    let mut i = inspect::outside(&message, &cards_present).expect("inspect");
    text_says(&i, "your card FFFE:00000001 holds it");
    let mut ui = Scripted {
        pins: [USER_PIN.to_string()].into(),
        ..Scripted::default()
    };
    let opts = options(PinSource::Ask, false);
    let (plain, report) =
        decrypt::decrypt(&mut &message[..], &mut cards, &mut ui, &opts).expect("decrypt");
    inspect::add_inside(&mut i, &[(report, plain.len() as u64)], None);
    says(&i, "secret-plan.txt");
    says(&i, "AES-256");
    let inside = &i.inside.as_ref().expect("inside")[0];
    assert!(inside.compression.is_some(), "{inside:?}");
    text_says(&i, "compressed with");
    assert_eq!(inside.signatures.len(), 1, "{inside:?}");
    // The nistp256 fixture's signing key id.
    says(&i, &inside.signatures[0].key_id);
    says(&i, "no certificate to check it");
    text_says(&i, "Only the card holder can see:");
    fits_80(&i);
}

fn openpgpjs() -> Option<PathBuf> {
    common::openpgpjs("openpgp", "OPENPGPJS")
}

fn node(openpgpjs: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    node_script("encrypt.mjs", "OPENPGPJS", openpgpjs, args, stdin)
}

/// An OpenPGP.js key on a card, and its SEIPD v2 (OCB) message: inspected from outside, and
/// decrypted by the card.
#[test]
fn openpgpjs_seipdv2_message_is_inspected_and_decrypted() {
    let Some(ojs) = openpgpjs() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (secret, public) = (dir.path().join("ojs.sec"), dir.path().join("ojs.pub"));
    node(
        &ojs,
        &[
            "genkey",
            secret.to_str().expect("utf8"),
            public.to_str().expect("utf8"),
        ],
        b"",
    );
    let message = node(
        &ojs,
        &["v2", "armored", public.to_str().expect("utf8")],
        BODY.as_bytes(),
    );
    let i = inspect::outside(&message, &None).expect("inspect");
    says(&i, "SEIPDv2");
    says(&i, "OCB");
    says(&i, "AES-256");
    let m = i.message.as_ref().expect("message");
    assert_eq!(m.recipients[0].pkesk_version, 6, "{m:?}");
    assert!(m.recipients[0].fingerprint.is_some());

    // The same key imported onto a card decrypts it (OpenPGP.js-made key and message).
    let report = import_and_decrypt(&secret, &message);
    assert_eq!(report.aead_algo, Some(2), "OCB");
}

/// Puts the secret key in `secret` on a fresh virtual card and decrypts `message` with it
/// (the plaintext must be `BODY`).
fn import_and_decrypt(secret: &Path, message: &[u8]) -> decrypt::Report {
    let mut cards = Cards::new(&[0x0000_0A15]);
    let cert = cardecrypt::provision::read_key(secret).expect("read the OpenPGP.js key");
    cards
        .import_cert(0, &cert, None)
        .expect("import onto the card");
    let mut ui = Scripted {
        pins: [USER_PIN.to_string()].into(),
        ..Scripted::default()
    };
    let (plain, report) = decrypt::decrypt(
        &mut &message[..],
        &mut cards,
        &mut ui,
        &options(PinSource::Ask, false),
    )
    .expect("the card decrypts OpenPGP.js's message");
    assert_eq!(&plain[..], BODY.as_bytes());
    report
}

/// RFC 9580's X25519 keys (algorithm 25) from OpenPGP.js, as a v4 and as a v6 key, on a card
/// (the card does the Curve25519 operation, the host RFC 9580's HKDF and key wrap), with
/// SEIPD v1 (v3 PKESK) and v2 (v6 PKESK) messages; the key's fingerprint is reported whole.
/// OpenPGP.js picks the message format from the key's features: SEIPD v1 and a v3 PKESK for
/// the v4 key (it announces only v1), SEIPD v2 and a v6 PKESK for the v6 key.
#[test]
fn openpgpjs_x25519_keys_v4_and_v6_decrypt_on_a_card() {
    let Some(ojs) = openpgpjs() else {
        return;
    };
    for (kind, pkesk) in [("genkey-x25519", 3), ("genkey-v6", 6)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, public) = (dir.path().join("ojs.sec"), dir.path().join("ojs.pub"));
        let path = |p: &Path| p.to_str().expect("utf8").to_string();
        node(&ojs, &[kind, &path(&secret), &path(&public)], b"");
        let cert = cardecrypt::provision::read_key(&secret).expect("read");
        let subkey = cert.keys().subkeys().next().expect("subkey").key().clone();
        assert_eq!(u8::from(subkey.pk_algo()), 25, "{kind}: X25519");
        assert_eq!(subkey.version(), if kind == "genkey-v6" { 6 } else { 4 });
        for (seipd, armor) in [("v1", "binary"), ("v2", "armored")] {
            let message = node(&ojs, &[seipd, armor, &path(&public)], BODY.as_bytes());
            let i = inspect::outside(&message, &None).expect("inspect");
            let m = i.message.as_ref().expect("message");
            assert_eq!(
                m.recipients[0].pkesk_version, pkesk,
                "{kind} {seipd}: {m:?}"
            );
            let report = import_and_decrypt(&secret, &message);
            assert_eq!(
                report.key_fingerprint,
                subkey.fingerprint().to_hex(),
                "{kind} {seipd}"
            );
        }
    }
}

/// An email whose outside gives much away: three Received hops (the sender's first with
/// its IP), User-Agent, two To and one Cc, a +0200 Date, X-Originating-IP, an unprotected
/// subject, and an attachment outside the encryption.
fn leaky_email() -> Vec<u8> {
    let encrypted = encrypt(
        &[&cert("cv25519")],
        format!("Content-Type: text/plain\n\n{BODY}\n").as_bytes(),
        Form {
            armor: true,
            ..Form::default()
        },
    );
    let mut m = String::from(
        "Received: from mx.example.com by mail.example.org (Postfix) with ESMTPS; \
         Mon, 23 Nov 2026 10:00:05 +0000\n\
         Received: from relay.example.net ([203.0.113.9]) by mx.example.com; \
         Mon, 23 Nov 2026 10:00:03 +0000\n\
         Received: from laptop.home (dsl-7.example.net [198.51.100.7]) by relay.example.net \
         (Postfix) with ESMTPSA; Mon, 23 Nov 2026 10:00:01 +0200\n\
         From: Alice <alice@example.org>\n\
         To: Bob <bob@example.org>, Carol <carol@example.org>\n\
         Cc: dave@example.org\n\
         Subject: Quarterly numbers\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0200\n\
         Message-ID: <1234@laptop.example.org>\n\
         User-Agent: Mutt/2.2.12 (2023-09-09)\n\
         X-Originating-IP: [198.51.100.7]\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\n\n\
         --outer\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; \
         boundary=\"enc\"\n\n\
         --enc\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n\
         --enc\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\n\n",
    );
    m.push_str(std::str::from_utf8(&encrypted).expect("armor"));
    m.push_str(
        "\n--enc--\n\n--outer\nContent-Type: application/pdf; name=\"invoice.pdf\"\n\
         Content-Disposition: attachment; filename=\"invoice.pdf\"\n\
         Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--outer--\n",
    );
    m.into_bytes()
}

#[test]
fn email_outside_names_every_leak() {
    let i = inspect::outside(&leaky_email(), &None).expect("inspect");
    assert_eq!(i.kind, "email");
    let e = i.email.as_ref().expect("email");
    assert_eq!(e.received.len(), 3);
    assert_eq!(e.to.len(), 2);
    assert_eq!(e.cc.len(), 1);
    says(&i, "Quarterly numbers");
    says(&i, "198.51.100.7");
    says(&i, "laptop.home");
    says(&i, "Mutt/2.2.12");
    says(&i, "+0200");
    says(&i, "laptop.example.org");
    says(&i, "X-Originating-IP");
    says(&i, "invoice.pdf");
    says(&i, "7BC04DD0BECCEA44");
    text_says(&i, "the sender's first");
    says(&i, "The subject travels in the clear");
    says(&i, "part(s) travel outside the encryption");
    says(&i, "The Date shows the sender's time zone");
    says(
        &i,
        "The first Received: hop shows the sender's address 198.51.100.7",
    );
    says(&i, "The mail client named itself");
    says(&i, "All 3 recipients");
    fits_80(&i);
}

/// RFC 9788: "..." outside, the real subject inside; with the card, the protected subject
/// and where it differs from the outside are shown, never the body.
#[test]
fn protected_subject_is_found_inside() {
    let payload = format!(
        "Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\n\
         Subject: Secret plans\nFrom: Alice <alice@example.org>\nTo: Bob <bob@example.org>\n\
         HP-Outer: Subject: ...\n\n{BODY}\n"
    );
    let encrypted = encrypt(
        &[&cert("cv25519")],
        payload.as_bytes(),
        Form {
            armor: true,
            ..Form::default()
        },
    );
    let mut email = String::from(
        "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: ...\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <p@example.org>\n\
         MIME-Version: 1.0\nContent-Type: multipart/encrypted; \
         protocol=\"application/pgp-encrypted\"; boundary=\"b\"\n\n--b\n\
         Content-Type: application/pgp-encrypted\n\nVersion: 1\n\n--b\n\
         Content-Type: application/octet-stream\n\n",
    );
    email.push_str(std::str::from_utf8(&encrypted).expect("armor"));
    email.push_str("\n--b--\n");
    let email = email.into_bytes();
    let mut i = inspect::outside(&email, &None).expect("inspect");
    text_says(&i, "(a placeholder)");
    assert!(i.email.as_ref().expect("email").subject_placeholder);

    let mut cards = Cards::with_key("cv25519");
    let mut ui = Scripted {
        pins: [USER_PIN.to_string()].into(),
        ..Scripted::default()
    };
    let opts = options(PinSource::Ask, false);
    let mut lengths = Vec::new();
    let outcome = {
        let mut one = |m: &[u8]| {
            let (p, r) = decrypt::decrypt(&mut &m[..], &mut cards, &mut ui, &opts)?;
            lengths.push(p.len() as u64);
            Ok((p, r))
        };
        message::decrypt_message(&email, &mut one, &[]).expect("decrypt")
    };
    let reports: Vec<_> = outcome.reports.into_iter().zip(lengths).collect();
    inspect::add_inside(&mut i, &reports, Some(&outcome.message));
    says(&i, "Secret plans");
    let inside = i.email_inside.as_ref().expect("email inside");
    assert!(
        inside
            .differs_from_outer
            .iter()
            .any(|(n, o, v)| n == "Subject" && o.as_deref() == Some("...") && v == "Secret plans"),
        "{inside:?}"
    );
    text_says(&i, "Subject differs");
    assert!(!i
        .advice
        .iter()
        .any(|a| a.contains("subject travels in the clear")));
    fits_80(&i);
}

/// Through the binary: no pcscd (a socket that does not exist), text and JSON; bad input is
/// one line and exit 6.
#[test]
fn the_binary_needs_no_card_or_pcscd() {
    let gpg = Gpg::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.asc");
    std::fs::write(&file, gpg_message(&gpg)).expect("write");
    let inspect = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cardecrypt"))
            .arg("inspect")
            .args(args)
            .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd"))
            .env("CARDECRYPT_CONFIG", dir.path().join("no-config"))
            .output()
            .expect("run")
    };
    let out = inspect(&[file.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with("Anyone holding this message can see:"),
        "{text}"
    );
    assert!(text.contains("no card was checked"), "{text}");
    assert!(!text.contains(BODY));
    let out = inspect(&["--json", file.to_str().expect("utf8")]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["version"], 1);
    assert_eq!(json["message"]["container"]["kind"], "SEIPDv1");
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, [0xC1u8, 0xFF, 0x00, 0x13]).expect("write");
    let out = inspect(&[garbage.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(exit::BAD_MESSAGE.into()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

//! Whole emails against the virtual card in-process: PGP/MIME, the Exchange layout, inline
//! blocks, header protection (RFC 9788 and protected-headers="v1"), signatures inside, and
//! what must stay byte for byte as it was.

mod common;

use cardecrypt::{
    card::pin::PinSource,
    decrypt,
    mail::{
        message::{decrypt_message, Outcome},
        mime::Entity,
    },
    verify::Verdict,
    Error,
};
use common::*;
use sequoia_openpgp::{
    armor, packet::signature::SignatureBuilder, serialize::Serialize, types::SignatureType, Cert,
    Packet,
};

fn armored(plaintext: &[u8]) -> String {
    let bytes = encrypt(
        &[&cert("cv25519")],
        plaintext,
        Form {
            armor: true,
            ..Form::default()
        },
    );
    String::from_utf8(bytes).expect("armor is text")
}

fn run(cards: &mut Cards, message: &[u8], certs: &[Cert]) -> Result<Outcome, Error> {
    let mut ui = Scripted {
        pins: [USER_PIN; 4].iter().map(|p| p.to_string()).collect(),
        ..Scripted::default()
    };
    // As `cardecrypt mail` does: the same certificates for signatures in OpenPGP messages
    // and for multipart/signed parts.
    let mut opts = options(PinSource::Ask, false);
    opts.signer_certs = certs.to_vec();
    let mut one = |m: &[u8]| decrypt::decrypt(&mut &m[..], &mut *cards, &mut ui, &opts);
    decrypt_message(message, &mut one, certs)
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

fn header(e: &Entity<'_>, name: &str) -> Vec<String> {
    e.fields
        .iter()
        .filter(|f| f.is(name))
        .map(|f| f.value())
        .collect()
}

fn pgp_mime(outer_headers: &str, payload: &str) -> String {
    format!(
        "{outer_headers}MIME-Version: 1.0\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\n boundary=\"OUTER\"\n\
         \n\
         This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n\
         --OUTER\n\
         Content-Type: application/pgp-encrypted\n\
         Content-Description: PGP/MIME version identification\n\
         \n\
         Version: 1\n\
         \n\
         --OUTER\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\n\
         Content-Disposition: inline; filename=\"encrypted.asc\"\n\
         \n\
         {}\n\
         --OUTER--\n",
        armored(&crlf(payload))
    )
}

const RFC9788_PAYLOAD: &str = "\
Content-Type: multipart/alternative; boundary=\"ALT\"; hp=\"cipher\"
Subject: Quarterly numbers, do not forward
From: Alice <alice@example.org>
To: Bob <bob@example.org>
Date: Mon, 23 Nov 2026 08:00:00 +0000
Message-ID: <real-id@example.org>
HP-Outer: Subject: [...]
HP-Outer: From: Alice <alice@example.org>

--ALT
Content-Type: text/plain; charset=utf-8; hp-legacy-display=\"1\"

Subject: Quarterly numbers, do not forward

Revenue is up 12 %.
--ALT
Content-Type: text/html; charset=utf-8; hp-legacy-display=\"1\"

<html><body><div class=\"header-protection-legacy-display\"><pre>Subject: Quarterly numbers, do not forward</pre></div><p>Revenue is up 12 %.</p></body></html>
--ALT--
";

#[test]
fn rfc9788_protected_headers_replace_the_outer_ones() {
    let mut cards = Cards::with_key("cv25519");
    let outer = "Received: from mx.example.org by mail.example.org\n\
                 Subject: [...]\n\
                 From: Alice <alice@example.org>\n\
                 To: Bob <bob@example.org>\n\
                 Date: Mon, 23 Nov 2026 08:00:05 +0000\n\
                 Message-ID: <real-id@example.org>\n\
                 X-Mailer: Test\n";
    let message = pgp_mime(outer, RFC9788_PAYLOAD);
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    assert_eq!(outcome.reports.len(), 1);
    assert!(outcome.protected_headers);
    let text = String::from_utf8(outcome.message.to_vec()).expect("utf8");
    let e = Entity::parse(outcome.message.as_slice());
    assert_eq!(header(&e, "Subject"), ["Quarterly numbers, do not forward"]);
    assert_eq!(header(&e, "Date"), ["Mon, 23 Nov 2026 08:00:00 +0000"]);
    assert_eq!(header(&e, "Message-ID").len(), 1);
    assert_eq!(
        header(&e, "Received"),
        ["from mx.example.org by mail.example.org"]
    );
    assert_eq!(header(&e, "X-Mailer"), ["Test"]);
    assert!(header(&e, "HP-Outer").is_empty());
    assert!(e.content_type().is("multipart/alternative"));
    // Outer order kept: Received first, the protected Subject where the outer one was.
    let names: Vec<&str> = e.fields.iter().map(|f| f.name).collect();
    assert_eq!(&names[..3], ["Received", "Subject", "From"]);
    // Legacy display removed from both alternatives, the content kept.
    assert_eq!(text.matches("Revenue is up 12 %.").count(), 2, "{text}");
    assert!(!text.contains("header-protection-legacy-display"), "{text}");
    assert_eq!(text.matches("Quarterly numbers").count(), 1, "{text}");
    assert!(!text.contains("hp-legacy-display"), "{text}");
    // LF in, LF out: the CRLF payload follows the outer message.
    assert!(!text.contains('\r'));
}

#[test]
fn protected_headers_v1_and_its_legacy_part() {
    let mut cards = Cards::with_key("cv25519");
    let payload = "\
Content-Type: multipart/mixed; boundary=\"MIX\"; protected-headers=\"v1\"
Subject: The real subject
From: Carol <carol@example.org>

--MIX
Content-Type: text/rfc822-headers; protected-headers=\"v1\"
Content-Disposition: inline

Subject: The real subject
--MIX
Content-Type: text/plain; charset=utf-8

Hello Bob.
--MIX--
";
    let message = pgp_mime("Subject: ...\nFrom: Carol <carol@example.org>\n", payload);
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    let text = String::from_utf8(outcome.message.to_vec()).expect("utf8");
    let e = Entity::parse(outcome.message.as_slice());
    assert_eq!(header(&e, "Subject"), ["The real subject"]);
    assert!(!text.contains("text/rfc822-headers"), "{text}");
    assert!(text.contains("Hello Bob."));
    assert_eq!(text.matches("--MIX\n").count(), 1, "{text}");
    assert!(
        text.contains("protected-headers=\"v1\"\n\n--MIX\n"),
        "{text}"
    );
}

#[test]
fn without_header_protection_the_outer_header_stays() {
    let mut cards = Cards::with_key("cv25519");
    let payload = "Content-Type: text/plain; charset=utf-8\nSubject: not protected\n\nBody.\n";
    let message = pgp_mime("Subject: Outer\n", payload);
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    let e = Entity::parse(outcome.message.as_slice());
    assert!(!outcome.protected_headers);
    assert_eq!(header(&e, "Subject"), ["Outer"]);
    assert_eq!(e.body, b"Body.\n");
    assert_eq!(header(&e, "MIME-Version"), ["1.0"]);
}

#[test]
fn exchange_mangled_layout() {
    let mut cards = Cards::with_key("cv25519");
    let message = format!(
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"EX\"\r\n\r\n\
         --EX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n\
         --EX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --EX\r\nContent-Type: application/octet-stream\r\n\r\n{}\r\n--EX--\r\n",
        armored(b"Content-Type: text/plain\r\n\r\nFrom Exchange.\r\n").replace('\n', "\r\n")
    );
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    let e = Entity::parse(outcome.message.as_slice());
    assert!(e.content_type().is("text/plain"));
    assert_eq!(e.body, b"From Exchange.\r\n");
}

#[test]
fn inline_blocks_in_a_mixed_message_keep_everything_else() {
    let mut cards = Cards::with_key("cv25519");
    let first = armored("Erster Teil: grün.\n".as_bytes());
    // A latin-1 plaintext announced by the armor's Charset header.
    let second = armored(b"Second part: caf\xe9.\n").replacen(
        "-----BEGIN PGP MESSAGE-----\n",
        "-----BEGIN PGP MESSAGE-----\nCharset: ISO-8859-1\n",
        1,
    );
    let attachment = "Content-Type: application/pdf; name=\"a.pdf\"\n\
                      Content-Disposition: attachment; filename=\"a.pdf\"\n\
                      Content-Transfer-Encoding: base64\n\
                      \n\
                      JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\n";
    let message = format!(
        "Subject: inline\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n\
         --B\nContent-Type: text/plain; charset=us-ascii\n\n\
         Hi Bob,\n{first}between\n{second}bye\n\
         --B\n{attachment}--B--\n"
    );
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    assert_eq!(outcome.reports.len(), 2);
    let text = String::from_utf8(outcome.message.to_vec()).expect("utf8");
    assert!(
        text.contains("Hi Bob,\nErster Teil: grün.\nbetween\nSecond part: café.\nbye\n"),
        "{text}"
    );
    assert!(text.contains("charset=utf-8"), "{text}");
    assert!(text.contains("Content-Transfer-Encoding: 8bit"), "{text}");
    assert!(!text.contains("BEGIN PGP"));
    assert!(text.contains(attachment), "attachment changed:\n{text}");
    assert!(text.starts_with("Subject: inline\nMIME-Version: 1.0\n"));
}

#[test]
fn inline_block_in_a_quoted_printable_single_part() {
    let mut cards = Cards::with_key("cv25519");
    let block = armored(b"secret words\n").replace('=', "=3D");
    let message = format!(
        "Subject: qp\nContent-Type: text/plain; charset=us-ascii; format=flowed\n\
         Content-Transfer-Encoding: quoted-printable\n\n{block}"
    );
    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    let e = Entity::parse(outcome.message.as_slice());
    assert_eq!(e.body, b"secret words\n");
    assert_eq!(e.content_type().param("format"), Some("flowed"));
    assert_eq!(header(&e, "Content-Transfer-Encoding"), ["7bit"]);
}

#[test]
fn unencrypted_message_is_passed_through_unchanged() {
    let mut cards = Cards::with_key("cv25519");
    let message = b"Subject: hello\r\nContent-Type: text/plain\r\n\r\nJust text.\r\n";
    let outcome = run(&mut cards, message, &[]).expect("pass through");
    assert!(!outcome.encrypted());
    assert_eq!(outcome.message.as_slice(), message);
}

#[test]
fn one_tampered_part_fails_the_whole_message() {
    let mut cards = Cards::with_key("cv25519");
    let good = armored(b"fine\n");
    let bad = tamper_armor(&armored(b"altered\n"));
    let message = format!("Subject: t\n\n{good}\n{bad}\n");
    let result = run(&mut cards, message.as_bytes(), &[]);
    assert!(
        matches!(result, Err(Error::BadMessage(_))),
        "{:?}",
        result.err()
    );
    let cut = pgp_mime("Subject: t\n", "Content-Type: text/plain\n\nx\n");
    let cut = &cut[..cut.find("--OUTER--").expect("close")];
    let result = run(&mut cards, cut.as_bytes(), &[]);
    assert!(
        matches!(result, Err(Error::BadMessage(_))),
        "{:?}",
        result.err()
    );
}

/// Flips a bit in the middle of the base64 body of an armored message.
fn tamper_armor(armor: &str) -> String {
    let lines: Vec<&str> = armor.lines().collect();
    let target = lines.len() / 2;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == target {
                let mut chars: Vec<char> = l.chars().collect();
                chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
                chars.into_iter().collect::<String>()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn multipart_signed(signed_part: &str, signer: &str) -> String {
    let mut keypair = signing_keypair(signer);
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut keypair, crlf(signed_part))
        .expect("sign");
    let mut writer = armor::Writer::new(Vec::new(), armor::Kind::Signature).expect("armor");
    Packet::from(sig).serialize(&mut writer).expect("serialize");
    let armored_sig = String::from_utf8(writer.finalize().expect("armor")).expect("armor is text");
    format!(
        "Content-Type: multipart/signed; micalg=pgp-sha256;\n protocol=\"application/pgp-signature\"; boundary=\"SIG\"\n\n\
         --SIG\n{signed_part}\n--SIG\nContent-Type: application/pgp-signature; name=\"signature.asc\"\n\n\
         {armored_sig}\n--SIG--\n"
    )
}

#[test]
fn pgp_mime_signature_inside_is_checked() {
    let mut cards = Cards::with_key("cv25519");
    let signed_part = "Content-Type: text/plain; charset=utf-8\n\nSigned and sealed.\n";
    let payload = multipart_signed(signed_part, "nistp256");
    let message = pgp_mime("Subject: s\n", &payload);
    let certs = [cert("nistp256")];
    let outcome = run(&mut cards, message.as_bytes(), &certs).expect("decrypt");
    assert_eq!(outcome.mime_signatures.len(), 1);
    assert_eq!(outcome.mime_signatures[0].verdict, Verdict::Good);
    // The signed part is kept intact, so a mail reader can check it again.
    let text = String::from_utf8(outcome.message.to_vec()).expect("utf8");
    assert!(text.contains(signed_part), "{text}");

    let altered = payload.replace("Signed and sealed.", "Signed and sealed!");
    let message = pgp_mime("Subject: s\n", &altered);
    let outcome = run(&mut cards, message.as_bytes(), &certs).expect("decrypt");
    assert_eq!(outcome.mime_signatures[0].verdict, Verdict::Bad);
    assert!(String::from_utf8_lossy(&outcome.message).contains("Signed and sealed!"));

    let outcome = run(&mut cards, message.as_bytes(), &[]).expect("decrypt");
    assert_eq!(outcome.mime_signatures[0].verdict, Verdict::NoCert);
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("mail").join(name)).expect("fixture")
}

/// Found by the `mail` fuzz target: damaged ciphertext whose first read error used to be
/// followed by another read of sequoia's parser, which panicked. One error, no panic, no
/// plaintext.
#[test]
fn damaged_ciphertext_fails_once_without_a_panic() {
    let mut cards = Cards::with_key("nistp256");
    let result = run(&mut cards, &fixture("fuzz-read-after-error.eml"), &[]);
    let e = result.err().expect("damaged message decrypted");
    assert_eq!(e.exit_code(), cardecrypt::error::exit::BAD_MESSAGE, "{e}");
}

/// Messages neomutt 20220429 (Debian) wrote itself, with GPGME and
/// `crypt_protected_headers_write`: see tests/data/mail/README.md for how they were made.
#[test]
fn neomutt_made_messages_get_their_subject_back() {
    let mut cards = Cards::with_key("cv25519");
    let outcome = run(&mut cards, &fixture("neomutt-encrypted.eml"), &[]).expect("decrypt");
    assert!(outcome.protected_headers);
    let e = Entity::parse(outcome.message.as_slice());
    assert_eq!(header(&e, "Subject"), ["Secret subject"]);
    assert_eq!(header(&e, "From"), ["Alice <alice@example.org>"]);
    let text = String::from_utf8(outcome.message.to_vec()).expect("utf8");
    assert!(text.contains("\n\nHello from neomutt\n"), "{text}");
    assert!(!text.contains("BEGIN PGP"), "{text}");

    // Signed inside (a one-pass signature), iso-8859-1 quoted-printable, an encoded-word
    // subject, and "[...]" outside.
    let certs = [cert("nistp256")];
    let message = fixture("neomutt-signed-encrypted.eml");
    let outcome = run(&mut cards, &message, &certs).expect("decrypt");
    let e = Entity::parse(outcome.message.as_slice());
    assert_eq!(
        header(&e, "Subject"),
        ["Signed secret, =?utf-8?B?Z3LDvMOfZQ==?="]
    );
    let signatures = &outcome.reports[0].signatures;
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0].verdict, Verdict::Good);
    let text = String::from_utf8_lossy(&outcome.message).to_string();
    assert!(
        text.contains("Signed hello from neomutt, gr=FC=DFe."),
        "{text}"
    );
    assert!(text.contains("charset=iso-8859-1"), "{text}");
}

/// Mangled messages and mangled decrypted payloads (a sender can put anything inside):
/// truncated anywhere, or with a structural byte replaced, the parser answers with a
/// message or an error, never a panic. The decrypt step is replaced by one that hands back
/// the payload, so that thousands of variants run in a second.
#[test]
fn mangled_messages_and_payloads_never_panic() {
    use cardecrypt::decrypt::Report;
    use zeroize::Zeroizing;

    let v1 = "Content-Type: multipart/mixed; boundary=\"MIX\"; protected-headers=\"v1\"\n\
              Subject: s\n\n--MIX\nContent-Type: text/rfc822-headers; protected-headers=\"v1\"\n\n\
              Subject: s\n--MIX\nContent-Type: text/plain; charset=utf-8\n\nbody\n--MIX--\n";
    let signed = multipart_signed("Content-Type: text/plain\n\nsigned\n", "nistp256");
    let payloads = [RFC9788_PAYLOAD, v1, signed.as_str()];
    let inline = format!(
        "Subject: i\nContent-Type: text/plain; charset=us-ascii\n\nHi\n{}\nBye\n",
        armored(b"x")
    );
    let messages = [
        pgp_mime("Subject: [...]\n", v1).into_bytes(),
        inline.into_bytes(),
        fixture("neomutt-signed-encrypted.eml"),
    ];
    let certs = [cert("nistp256")];
    let variants = |text: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for cut in (0..text.len()).step_by(3) {
            out.push(text[..cut].to_vec());
        }
        for (i, b) in text.iter().enumerate() {
            if b"\n-\";=:".contains(b) {
                for replacement in [b' ', b'\n', b'-'] {
                    let mut v = text.to_vec();
                    v[i] = replacement;
                    out.push(v);
                }
            }
        }
        out
    };
    let mut runs = 0;
    for message in &messages {
        for payload in &payloads {
            let mut variants_of_message = variants(message);
            variants_of_message.truncate(400);
            let mut cases: Vec<(Vec<u8>, Vec<u8>)> = variants_of_message
                .into_iter()
                .map(|m| (m, payload.as_bytes().to_vec()))
                .collect();
            cases.extend(
                variants(payload.as_bytes())
                    .into_iter()
                    .map(|p| (message.clone(), p)),
            );
            for (m, p) in cases {
                let result = std::panic::catch_unwind(|| {
                    let mut give = |_: &[u8]| Ok((Zeroizing::new(p.clone()), Report::default()));
                    let _ = decrypt_message(&m, &mut give, &certs);
                });
                assert!(
                    result.is_ok(),
                    "panic on message {:?} with payload {:?}",
                    String::from_utf8_lossy(&m),
                    String::from_utf8_lossy(&p)
                );
                runs += 1;
            }
        }
    }
    assert!(runs > 1000, "only {runs} variants");
}

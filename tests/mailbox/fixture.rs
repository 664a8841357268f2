//! The fixture mailbox: mail from gpg, OpenPGP.js and Sequoia, written as a maildir or an
//! mbox. What each message leaks is listed beside it; the tests' numbers are their sums.

use std::path::Path;

use crate::common::*;

pub const BODY: &str = "the mailbox body that must never be shown";

/// One email of the fixture mailbox: who sent it (for the mbox "From " line), its bytes.
pub struct Mail {
    pub from: &'static str,
    pub bytes: Vec<u8>,
}

/// The fixture mail: what each one leaks is listed beside it, and the tests' numbers are the
/// sums of these lists.
pub fn fixture_mail(gpg: &Gpg, ojs: &Path) -> Vec<Mail> {
    let cv = "cv25519@cardecrypt.test";
    let mut out = Vec::new();
    // alice, October, gpg: subject, key ids, Version + User-Agent, Received IP, a file
    // outside, SEIPD v1, time zone +0200.
    let armored = gpg.run(
        &["--armor", "--emit-version", "-r", cv, "--encrypt"],
        BODY.as_bytes(),
    );
    out.push(Mail {
        from: "alice@example.org",
        bytes: email(
            "From: Alice <alice@example.org>\nSubject: Quarterly numbers\n\
             Date: Fri, 16 Oct 2026 09:30:00 +0200\nUser-Agent: Mutt/2.2.9\n\
             Received: from mx.example.org (mx.example.org [192.0.2.1]) by \
             imap.example.org; Fri, 16 Oct 2026 07:30:05 +0000\n\
             Received: from laptop (dsl.example.net [198.51.100.7]) by mx.example.org; \
             Fri, 16 Oct 2026 07:30:02 +0000\n",
            &armored,
            Some("budget.xlsx"),
        ),
    });
    // alice, November, gpg: hidden recipient, protected subject: SEIPD v1 only.
    let hidden = gpg.run(
        &["--armor", "--throw-keyids", "-r", cv, "--encrypt"],
        BODY.as_bytes(),
    );
    out.push(Mail {
        from: "alice@example.org",
        bytes: email(
            "From: Alice <alice@example.org>\nSubject: ...\n\
             Date: Mon, 2 Nov 2026 08:00:00 +0000\n",
            &hidden,
            None,
        ),
    });
    // bob, November, OpenPGP.js SEIPD v2: subject, key ids, X-Mailer, X-Originating-IP,
    // Autocrypt.
    let dir = tempfile::tempdir().expect("tempdir");
    let (secret, public) = (dir.path().join("bob.sec"), dir.path().join("bob.pub"));
    node_script(
        "encrypt.mjs",
        "OPENPGPJS",
        ojs,
        &["genkey", &path(&secret), &path(&public)],
        b"",
    );
    let v2 = node_script(
        "encrypt.mjs",
        "OPENPGPJS",
        ojs,
        &["v2", "armored", &path(&public)],
        BODY.as_bytes(),
    );
    out.push(Mail {
        from: "bob@example.net",
        bytes: email(
            "From: bob@example.net\nSubject: lunch\nDate: Tue, 10 Nov 2026 12:00:00 +0000\n\
             X-Mailer: WebMail 4.1\nX-Originating-IP: [203.0.113.9]\n\
             Autocrypt: addr=bob@example.net; keydata=AAAA\n",
            &v2,
            None,
        ),
    });
    // carol, October, Sequoia's session key in a SED container, inline: subject, key ids,
    // no integrity, inline PGP, time zone -0500.
    out.push(Mail {
        from: "carol@example.com",
        bytes: format!(
            "From: Carol <carol@example.com>\nTo: me@example.org\nSubject: old school\n\
             Date: Sat, 31 Oct 2026 23:59:00 -0500\n\nHello,\n\n{}\nCarol\n",
            String::from_utf8(sed_message()).expect("armor")
        )
        .into_bytes(),
    });
    // carol, November: signed only (multipart/signed, a real gpg signature).
    let signature = gpg.run(
        &["--armor", "--detach-sign", "-u", "nistp256@cardecrypt.test"],
        b"hi\r\n",
    );
    out.push(Mail {
        from: "carol@example.com",
        bytes: format!(
            "From: Carol <carol@example.com>\nSubject: signed\n\
             Date: Sun, 1 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\nContent-Type: \
             multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; \
             boundary=\"signed-boundary-carol-000000000001\"\n\n\
             --signed-boundary-carol-000000000001\nContent-Type: text/plain\n\nhi\n\
             --signed-boundary-carol-000000000001\nContent-Type: application/pgp-signature\n\n{}\n\
             --signed-boundary-carol-000000000001--\n",
            String::from_utf8_lossy(&signature)
        )
        .into_bytes(),
    });
    // dave, November: nothing encrypted.
    out.push(Mail {
        from: "dave@example.com",
        bytes: b"From: dave@example.com\nSubject: hello\nDate: Wed, 4 Nov 2026 10:00:00 +0000\n\n\
                 just text\n"
            .to_vec(),
    });
    // me, November, gpg: subject, key ids, User-Agent, SEIPD v1.
    let mine = gpg.run(&["--armor", "-r", cv, "--encrypt"], BODY.as_bytes());
    out.push(Mail {
        from: "me@example.org",
        bytes: email(
            "From: Me <me@example.org>\nSubject: my plans\n\
             Date: Thu, 5 Nov 2026 10:00:00 +0000\nUser-Agent: Thunderbird 115\n",
            &mine,
            None,
        ),
    });
    // Not an email at all: counted as malformed, never fatal.
    out.push(Mail {
        from: "nobody@example.com",
        bytes: b"\x00\x01 this is not an email\n\nat all\n".to_vec(),
    });
    out
}

pub fn path(p: &Path) -> String {
    p.to_str().expect("utf8").to_string()
}

/// A PGP/MIME email with `headers`, the armored message, and optionally a file beside it.
pub fn email(headers: &str, armored: &[u8], outside: Option<&str>) -> Vec<u8> {
    let inner = format!(
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; \
         boundary=\"encrypted-boundary-0000000000000001\"\n\n\
         --encrypted-boundary-0000000000000001\nContent-Type: application/pgp-encrypted\n\n\
         Version: 1\n\n--encrypted-boundary-0000000000000001\nContent-Type: \
         application/octet-stream; name=\"encrypted.asc\"\n\n{}\n\
         --encrypted-boundary-0000000000000001--\n",
        String::from_utf8_lossy(armored)
    );
    let body = match outside {
        None => inner,
        Some(name) => format!(
            "Content-Type: multipart/mixed; boundary=\"mixed-boundary-0000000000000001\"\n\n\
             --mixed-boundary-0000000000000001\n{inner}\n--mixed-boundary-0000000000000001\n\
             Content-Type: application/vnd.ms-excel; name=\"{name}\"\nContent-Disposition: \
             attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\nAAECAw==\n\
             --mixed-boundary-0000000000000001--\n"
        ),
    };
    format!("{headers}To: me@example.org\nMIME-Version: 1.0\n{body}").into_bytes()
}

/// Sequoia's encrypted session key for the cv25519 key, followed by a SED packet (what very
/// old programs wrote): the outside is all that matters here.
pub fn sed_message() -> Vec<u8> {
    use sequoia_openpgp::{
        armor::{Kind, Writer},
        parse::{PacketParser, PacketParserResult, Parse},
        serialize::Serialize,
        Packet,
    };
    use std::io::Write;
    let message = encrypt(&[&cert("cv25519")], b"x", Form::default());
    let mut binary = Vec::new();
    let mut ppr = PacketParser::from_bytes(&message).expect("parse");
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().expect("next");
        if let Packet::PKESK(_) = packet {
            packet.serialize(&mut binary).expect("serialize");
        }
        ppr = next;
    }
    let body = [0x5au8; 300];
    let length = body.len() - 192;
    binary.extend_from_slice(&[0xc9, (length >> 8) as u8 + 192, (length & 0xff) as u8]);
    binary.extend_from_slice(&body);
    let mut armored = Vec::new();
    let mut w = Writer::new(&mut armored, Kind::Message).expect("armor");
    w.write_all(&binary).expect("write");
    w.finalize().expect("finalize");
    armored
}

/// The fixture as a maildir (one file each, in cur/).
pub fn write_maildir(dir: &Path, mail: &[Mail]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    for (n, m) in mail.iter().enumerate() {
        let name = format!("17000000{n:02}.M{n}P1.host:2,S");
        std::fs::write(dir.join("cur").join(name), &m.bytes).expect("write");
    }
}

/// The fixture as an mbox ("From " lines, body lines that begin with "From " quoted).
pub fn mbox_bytes(mail: &[Mail]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in mail {
        out.extend_from_slice(format!("From {} Thu Nov  5 10:00:00 2026\n", m.from).as_bytes());
        for line in m.bytes.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        out.push(b'\n');
    }
    out
}

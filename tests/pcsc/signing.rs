//! Signing through cardecrypt-gpg with the card's signature key and no scdaemon: GPGME
//! (python3-gpg) in its three modes, armored and binary, text and binary; every signature
//! checked by the real gpg; a key not on the card goes to the real gpg.

use super::*;
use crate::front_end::{hex_decode, lock_card, FrontEnd};

/// GPGME's sign: `MODE ARMOR TEXT FRONT_END HOME DATA_FILE [SIGNER]`; prints one JSON
/// object. With SIGNER, the key is first looked up as a secret key (`gpgme_get_key(FPR,
/// secret=1)`, as Thunderbird does) and set as the signer.
const GPGME_SIGN: &str = r#"
import gpg, json, sys
mode, armor, text, front_end, home, data_file = sys.argv[1:7]
ctx = gpg.Context(armor=armor == "1", textmode=text == "1")
ctx.set_engine_info(gpg.constants.protocol.OpenPGP, file_name=front_end, home_dir=home)
if len(sys.argv) > 7 and sys.argv[7]:
    key = ctx.get_key(sys.argv[7], secret=True)
    print(json.dumps({"secret": bool(key.secret),
                      "cards": [s.card_number for s in key.subkeys]}), file=sys.stderr)
    ctx.signers = [key]
modes = {"normal": gpg.constants.sig.mode.NORMAL, "detach": gpg.constants.sig.mode.DETACH,
         "clear": gpg.constants.sig.mode.CLEAR}
out = {}
try:
    signed, result = ctx.sign(open(data_file, "rb").read(), mode=modes[mode])
    out["signed"] = signed.hex()
    out["fpr"] = result.signatures[0].fpr
    out["type"] = result.signatures[0].type
except gpg.errors.GPGMEError as e:
    out["error"] = str(e)
print(json.dumps(out))
"#;

pub fn gpgme_signs_with_the_card_in_every_mode(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "sign");
    let primary = front.fingerprint("cv25519@cardecrypt.test");
    let data = env.path("sign-data.txt");
    std::fs::write(&data, "Signed by the card,\nwith no scdaemon.\n").expect("data");
    let script = env.path("gpgme-sign.py");
    std::fs::write(&script, GPGME_SIGN).expect("script");
    let front_gpg = front.bin().join("gpg");
    let mut asked = 0;
    for (mode, armor, textmode, signer) in [
        ("detach", "1", "1", ""),
        ("detach", "0", "0", ""),
        ("normal", "1", "0", ""),
        ("normal", "0", "0", ""),
        ("clear", "1", "1", ""),
        // Thunderbird: the key looked up as a secret key, then named with -u.
        ("detach", "1", "1", primary.as_str()),
        ("normal", "0", "0", primary.as_str()),
    ] {
        lock_card(env);
        let out = run(
            front
                .client(env, &mut Command::new("/usr/bin/python3"))
                .args([
                    script.to_str().expect("utf8"),
                    mode,
                    armor,
                    textmode,
                    front_gpg.to_str().expect("utf8"),
                    front.home().to_str().expect("utf8"),
                    data.to_str().expect("utf8"),
                    signer,
                ]),
            b"",
        );
        assert_ok(&out, "python3-gpg sign");
        if !signer.is_empty() {
            let found: serde_json::Value =
                serde_json::from_str(text(&out.stderr).lines().last().unwrap_or_default())
                    .expect("get_key json");
            assert_eq!(found["secret"], true, "a secret key: {found}");
            assert!(
                found["cards"].to_string().contains("D2760001240"),
                "the card's serial: {found}"
            );
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(
            json["error"].is_null(),
            "{mode} {armor} {textmode} {signer}: {json}"
        );
        assert_eq!(json["fpr"], primary.as_str(), "{mode}: the card's key");
        asked += 1;
        assert_eq!(front.pinentry_asks(), asked, "one PIN per signature");
        let signed = hex_decode(json["signed"].as_str().expect("hex"));
        let file = env.path(&format!("sign-{mode}-{armor}{textmode}{}", signer.len()));
        std::fs::write(&file, &signed).expect("signed");
        let verify = match mode {
            "detach" => front.gpg(
                &[
                    "--status-fd",
                    "1",
                    "--verify",
                    file.to_str().expect("utf8"),
                    data.to_str().expect("utf8"),
                ],
                b"",
            ),
            _ => front.gpg(
                &["--status-fd", "1", "--verify", file.to_str().expect("utf8")],
                b"",
            ),
        };
        assert!(
            text(&verify.stdout).contains(&format!("VALIDSIG {primary}")),
            "{mode} {armor} {textmode}: gpg --verify said\n{}\n{}",
            text(&verify.stdout),
            text(&verify.stderr)
        );
        if armor == "1" {
            assert!(signed.starts_with(b"-----BEGIN PGP"), "{mode}: armored");
        }
    }
    // A key that is not on the card: the real gpg's (which has no secret key here).
    let other = run(
        front.client(env, &mut Command::new(&front_gpg)).args([
            "--batch",
            "-u",
            "nobody@example.org",
            "--detach-sign",
        ]),
        b"data",
    );
    assert!(!other.status.success());
    assert_eq!(front.pinentry_asks(), asked, "no PIN for another key");
    // No key named, in a keyring that does not know the card's key: that card is nobody's
    // default here (someone else's, or a spare), so the real gpg answers, and it has none.
    let stranger = tempfile::tempdir().expect("home");
    let unknown = run(
        front
            .client(env, &mut Command::new(&front_gpg))
            .env("GNUPGHOME", stranger.path())
            .args(["--batch", "--detach-sign"]),
        b"data",
    );
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(stranger.path())
        .args(["--kill", "all"])
        .status();
    assert!(
        !unknown.status.success(),
        "signed with a card the keyring does not know: {}",
        text(&unknown.stderr)
    );
    assert_eq!(front.pinentry_asks(), asked, "no PIN for an unknown card");
}

/// GPGME's encrypt-and-sign (neomutt, KMail, Emacs): signed by the card, encrypted by the real
/// gpg to a software key; the real gpg decrypts it and checks the card's signature.
pub fn gpgme_encrypts_and_signs_with_the_card(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "encsign");
    let primary = front.fingerprint("cv25519@cardecrypt.test");
    let script = env.path("gpgme-encsign.py");
    std::fs::write(
        &script,
        r#"
import gpg, json, sys
front_end, home, recipient = sys.argv[1:4]
ctx = gpg.Context(armor=True)
ctx.set_engine_info(gpg.constants.protocol.OpenPGP, file_name=front_end, home_dir=home)
key = ctx.get_key(recipient)
cipher, result, sign_result = ctx.encrypt(b"signed by the card, encrypted by gpg\n",
                                          recipients=[key], sign=True, always_trust=True)
print(json.dumps({"cipher": cipher.decode(), "signer": sign_result.signatures[0].fpr}))
"#,
    )
    .expect("script");
    lock_card(env);
    let out = run(
        front
            .client(env, &mut Command::new("/usr/bin/python3"))
            .arg(&script)
            .arg(front.bin().join("gpg"))
            .arg(front.home())
            .arg(&front.signer),
        b"",
    );
    assert_ok(&out, "python3-gpg encrypt+sign");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["signer"], primary.as_str(), "{json}");
    let cipher = json["cipher"].as_str().expect("cipher");
    assert!(cipher.starts_with("-----BEGIN PGP MESSAGE-----"));
    let opened = front.gpg(&["--status-fd", "2", "--decrypt"], cipher.as_bytes());
    assert_ok(&opened, "gpg --decrypt");
    assert_eq!(
        text(&opened.stdout),
        "signed by the card, encrypted by gpg\n"
    );
    assert!(
        text(&opened.stderr).contains(&format!("VALIDSIG {primary}")),
        "{}",
        text(&opened.stderr)
    );
    assert_eq!(front.pinentry_asks(), 1);
}

/// neomutt in its default GPGME mode, in tmux, sends a message signed by the card
/// (`crypt_autosign`) into a file through its sendmail command; the real gpg checks the
/// PGP/MIME signature.
pub fn neomutt_sends_mail_signed_by_the_card(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "neomutt-sign");
    let primary = front.fingerprint("cv25519@cardecrypt.test");
    let sent = env.path("neomutt-sent.eml");
    let sendmail = env.path("neomutt-sendmail.sh");
    std::fs::write(
        &sendmail,
        format!("#!/bin/sh\ncat > '{}'\n", sent.display()),
    )
    .expect("sendmail");
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let body = env.path("neomutt-body.txt");
    std::fs::write(&body, "Signed on the card, sent by neomutt.\n").expect("body");
    let muttrc = env.path("neomutt-sign-muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set crypt_use_gpgme=yes\nset crypt_autosign=yes\nset editor=true\n\
             set abort_unmodified=no\nset folder=\"{}\"\n\
             set sendmail=\"{}\"\nset record=\"\"\nset copy=no\nset from=\"Card Owner <cv25519@cardecrypt.test>\"\n\
             set use_from=yes\nset header_cache=\"\"\nset message_cachedir=\"\"\n\
             set mailcap_path=/dev/null\nset fast_reply=yes\n",
            env.dir.path().display(),
            sendmail.display()
        ),
    )
    .expect("muttrc");
    lock_card(env);
    let mut client = Command::new("tmux");
    front
        .client(env, &mut client)
        .env("HOME", env.dir.path())
        .env("TERM", "xterm-256color");
    let neomutt = Tmux::start(
        "cardecrypt-neomutt-sign",
        &mut client,
        &format!(
            "neomutt -n -F {} -s signed -i {} alice@example.org",
            muttrc.display(),
            body.display()
        ),
    );
    let shown = neomutt.wait_for("y:Send");
    assert!(shown.contains("y:Send"), "no compose menu:\n{shown}");
    // Keys typed while the menu is still being set up are lost.
    std::thread::sleep(Duration::from_millis(700));
    neomutt.keys(&["y"]);
    let until = Instant::now() + Duration::from_secs(15);
    while !sent.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = neomutt.screen();
    drop(neomutt);
    let mail = std::fs::read_to_string(&sent).unwrap_or_else(|_| panic!("nothing sent:\n{last}"));
    assert!(mail.contains("multipart/signed"), "{mail}");
    let (signed, signature) = split_signed(&mail);
    let (data, sig) = (env.path("neomutt-signed-part"), env.path("neomutt-sig.asc"));
    std::fs::write(&data, signed).expect("part");
    std::fs::write(&sig, signature).expect("sig");
    let verify = front.gpg(
        &[
            "--status-fd",
            "1",
            "--verify",
            sig.to_str().expect("utf8"),
            data.to_str().expect("utf8"),
        ],
        b"",
    );
    assert!(
        text(&verify.stdout).contains(&format!("VALIDSIG {primary}")),
        "gpg --verify:\n{}\n{}\n{mail}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    assert_eq!(front.pinentry_asks(), 1);
}

/// The signed part (its lines ending in CRLF, as RFC 3156 signs them) and the signature of a
/// multipart/signed message.
pub(crate) fn split_signed(mail: &str) -> (String, String) {
    let boundary = mail
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("boundary");
    let delimiter = format!("\n--{boundary}");
    let parts: Vec<&str> = mail.split(&delimiter).collect();
    let signed = parts[1].trim_start_matches('\n');
    let signature = parts[2];
    let signature = &signature[signature.find("-----BEGIN").expect("armor")..];
    (signed.replace('\n', "\r\n"), signature.to_string())
}

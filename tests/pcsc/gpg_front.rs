//! cardecrypt-gpg with the real clients: GPGME (Debian's python3-gpg) with the engine set to
//! the front end and found through the `gpgconf` link; forwarding to the real gpg.
//!
//! The gpg home these use has `scdaemon-program /bin/false`: its agent cannot reach the
//! card, so a card message that decrypts was decrypted by cardecrypt. The PIN comes from a
//! scripted pinentry that records that it was asked.

use super::*;

const SECRET: &str = "only the card opens this\n";

pub fn gpgme_decrypts_card_messages_through_cardecrypt_gpg(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "gpgme");
    let signed = front.gpg(
        &[
            "-a",
            "-r",
            CARD_FPR,
            "-u",
            &front.signer,
            "--sign",
            "--encrypt",
        ],
        SECRET.as_bytes(),
    );
    assert_ok(&signed, "encrypt and sign to the card");
    let message = env.path("front-end-signed.asc");
    std::fs::write(&message, &signed.stdout).expect("message");
    lock_card(env);

    // The engine set to the front end, as Thunderbird's alternative_gpg_path does.
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    assert_eq!(result["recipients"][0], &CARD_FPR[24..], "{result}");
    let sig = &result["signatures"][0];
    assert_eq!(sig[0], front.signer.as_str(), "{result}");
    assert_eq!(
        sig[1], 0,
        "signature status is not GPG_ERR_NO_ERROR: {result}"
    );
    assert!(
        front.pinentry_asks() >= 1,
        "the PIN did not come from the pinentry"
    );
    assert!(
        result["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{result}"
    );

    // Thunderbird's call: --unwrap; the real gpg turns the packet stream into the text.
    lock_card(env);
    let result = front.gpgme(env, "unwrap", &message);
    let stream = hex_decode(result["unwrapped"].as_str().expect("unwrapped"));
    let plain = front.gpg(&["--decrypt"], &stream);
    assert_ok(&plain, "real gpg on the unwrapped stream");
    assert_eq!(text(&plain.stdout), SECRET);

    // keep-unlocked applies as for cardecrypt: one PIN for two decrypts.
    lock_card(env);
    let before = front.pinentry_asks();
    let keep = [("CARDECRYPT_KEEP_UNLOCKED", "60s")];
    for _ in 0..2 {
        let result = front.gpgme_with(env, "engine", &message, &keep);
        assert_eq!(result["plain"], SECRET, "{result}");
    }
    assert_eq!(
        front.pinentry_asks(),
        before + 1,
        "kept unlocked, asked once"
    );
    lock_card(env);

    // A default context: GPGME asks gpgconf (the link) where gpg is.
    let result = front.gpgme(env, "default", &message);
    assert!(
        result["engine"]
            .as_str()
            .is_some_and(|e| e.ends_with("cardecrypt-gpg")),
        "GPGME did not find the front end through gpgconf: {result}"
    );
    assert_eq!(result["plain"], SECRET, "{result}");

    // Tampered: an error, and no plaintext.
    let binary = front.gpg(&["-r", CARD_FPR, "--encrypt"], SECRET.as_bytes());
    assert_ok(&binary, "encrypt");
    let mut tampered = binary.stdout.clone();
    let at = tampered.len() - 30;
    tampered[at] ^= 0x01;
    let tampered_path = env.path("front-end-tampered.gpg");
    std::fs::write(&tampered_path, &tampered).expect("write");
    let result = front.gpgme(env, "engine", &tampered_path);
    // "Decryption failed" (our DECRYPTION_FAILED), not "No secret key" (the real gpg).
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("Decryption failed")),
        "{result}"
    );
    assert!(result.get("plain").is_none(), "{result}");
}

pub fn cardecrypt_gpg_forwards_everything_else(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "forward");
    // Key listings equal the real gpg's.
    let listing = |program: &Path| {
        run(
            front
                .client(env, &mut Command::new(program))
                .args(["--with-colons", "--list-keys"]),
            b"",
        )
    };
    // The trust database line says when it was last checked: not the front end's business.
    let keys = |o: &Output| -> Vec<String> {
        text(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("tru:"))
            .map(str::to_string)
            .collect()
    };
    let through = listing(&front.bin.join("gpg"));
    let real = listing(Path::new("/usr/bin/gpg"));
    assert_ok(&through, "--list-keys through the front end");
    assert_eq!(keys(&through), keys(&real));
    assert!(text(&through.stdout).contains(&front.signer));

    // A message to the software key: the real gpg decrypts it, through GPGME too.
    let soft = front.gpg(&["-a", "-r", &front.signer, "--encrypt"], SECRET.as_bytes());
    assert_ok(&soft, "encrypt to the software key");
    let message = env.path("front-end-soft.asc");
    std::fs::write(&message, &soft.stdout).expect("write");
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    let direct = run(
        front
            .client(env, &mut Command::new(front.bin.join("gpg")))
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--decrypt"]),
        &soft.stdout,
    );
    assert_ok(
        &direct,
        "software-key message on stdin through the front end",
    );
    assert_eq!(text(&direct.stdout), SECRET);

    // --version claims the real gpg's version first and names cardecrypt after.
    let version = run(
        front
            .client(env, &mut Command::new(front.bin.join("gpg")))
            .arg("--version"),
        b"",
    );
    let real_version = run(Command::new("/usr/bin/gpg").arg("--version"), b"");
    let first = |o: &Output| {
        text(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(first(&version), first(&real_version));
    assert!(text(&version.stdout).contains("cardecrypt"));

    // doctor tells that GPGME finds the front end through the gpgconf link.
    let doctor = run(
        front
            .client(env, &mut Command::new(cardecrypt_bin()))
            .arg("doctor"),
        b"",
    );
    let report = text(&doctor.stdout);
    assert!(
        report.contains("ok    gpg on PATH is cardecrypt-gpg")
            && report.contains(
                "ok    GPGME (Thunderbird, neomutt, notmuch, KMail, Claws) runs cardecrypt-gpg"
            ),
        "{report}"
    );

    // remove takes the links away, and only them.
    let out = env.cardecrypt(
        &[
            "gpg-shim",
            "remove",
            "--dir",
            front.bin.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&out, "gpg-shim remove");
    assert!(!front.bin.join("gpg").exists() && !front.bin.join("gpgconf").exists());
    std::fs::write(front.bin.join("gpg"), "not ours").expect("write");
    let out = env.cardecrypt(
        &[
            "gpg-shim",
            "install",
            "--dir",
            front.bin.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_fails(&out, exit::USAGE, "is not cardecrypt's");
    assert_eq!(
        std::fs::read_to_string(front.bin.join("gpg")).expect("read"),
        "not ours"
    );
}

/// The clients that find gpg themselves: neomutt in its default GPGME mode (on PATH, through
/// gpgconf), notmuch (GMime + GPGME) and Emacs EasyPG (`epg-gpg-program`, loopback PIN).
pub fn mail_clients_decrypt_through_cardecrypt_gpg(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "clients");
    let body =
        "Content-Type: text/plain; charset=utf-8\n\nThe GPGME secret, decrypted by the card.\n";
    let encrypted = front.gpg(&["-a", "-r", CARD_FPR, "--encrypt"], body.as_bytes());
    assert_ok(&encrypted, "encrypt");
    let maildir = env.path("clients-Mail");
    maildir_with(&maildir, &pgp_mime_email("gpgme", &encrypted.stdout));
    let secret = "The GPGME secret, decrypted by the card.";

    // notmuch: `notmuch show --decrypt=true`.
    lock_card(env);
    let config = env.path("notmuch-config");
    std::fs::write(
        &config,
        format!(
            "[database]\npath={}\n[user]\nname=Bob\nprimary_email=bob@example.org\n\
             [new]\ntags=inbox;\n",
            maildir.display()
        ),
    )
    .expect("notmuch config");
    let notmuch = |args: &[&str]| {
        run(
            front
                .client(env, &mut Command::new("notmuch"))
                .env("NOTMUCH_CONFIG", &config)
                .args(args),
            b"",
        )
    };
    assert_ok(&notmuch(&["new"]), "notmuch new");
    let shown = notmuch(&["show", "--decrypt=true", "id:gpgme@example.org"]);
    assert_ok(&shown, "notmuch show --decrypt=true");
    assert!(
        text(&shown.stdout).contains(secret),
        "notmuch showed:\n{}\n{}",
        text(&shown.stdout),
        text(&shown.stderr)
    );
    assert!(
        front.pinentry_asks() >= 1,
        "the PIN did not come from the pinentry"
    );

    // Emacs EasyPG in batch, the PIN from its passphrase callback (gpg's loopback).
    lock_card(env);
    let armored = env.path("clients-message.asc");
    std::fs::write(&armored, &encrypted.stdout).expect("write");
    let elisp = format!(
        "(progn (require 'epg) (setq epg-gpg-program \"{gpg}\") \
         (let ((ctx (epg-make-context 'OpenPGP))) \
           (epg-context-set-passphrase-callback ctx (cons (lambda (&rest _) \
             (copy-sequence \"{USER_PIN}\")) nil)) \
           (princ (epg-decrypt-string ctx (with-temp-buffer \
             (insert-file-contents-literally \"{file}\") (buffer-string))))))",
        gpg = front.bin.join("gpg").display(),
        file = armored.display()
    );
    let emacs = run(
        front
            .client(env, &mut Command::new("emacs"))
            .args(["--batch", "-Q", "--eval", &elisp]),
        b"",
    );
    assert!(
        text(&emacs.stdout).contains(secret),
        "EasyPG: {}\n{}",
        text(&emacs.stdout),
        text(&emacs.stderr)
    );

    // neomutt as Debian installs it: GPGME mode, gpg found on PATH through gpgconf.
    lock_card(env);
    let muttrc = env.path("clients-muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set mbox_type=Maildir\nset folder={m}\nset crypt_use_gpgme=yes\n\
             set crypt_autopgp=yes\nset header_cache=\"\"\nset message_cachedir=\"\"\n\
             set mailcap_path=/dev/null\n",
            m = maildir.display()
        ),
    )
    .expect("muttrc");
    let session = format!("cardecrypt-gpgme-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env("HOME", env.dir.path())
            .output()
            .expect("tmux")
    };
    let _ = tmux(&["kill-session", "-t", &session]);
    let launch = format!(
        "{} GNUPGHOME={} PINENTRY_PROGRAM={} PATH={} neomutt -n -F {} -f {}",
        env.shell_env(),
        front.home.display(),
        front.pinentry.display(),
        front.path_var().to_string_lossy(),
        muttrc.display(),
        maildir.display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "50",
        &launch,
    ]);
    assert!(started.status.success(), "tmux: {}", text(&started.stderr));
    let capture = || text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
    let ready = Instant::now() + Duration::from_secs(10);
    while !capture().contains("q:Quit") {
        assert!(
            Instant::now() < ready,
            "neomutt did not start:\n{}",
            capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", &session, "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut shown = String::new();
    while Instant::now() < deadline && !shown.contains(secret) {
        std::thread::sleep(Duration::from_millis(300));
        shown = capture();
    }
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["send-keys", "-t", &session, "q"]);
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(shown.contains(secret), "neomutt (GPGME) showed:\n{shown}");
}

/// GPGME hears success only when the whole job succeeded: content the real gpg cannot read
/// (an encrypted message inside the card's, as `gpg --no-literal` makes) is a failure, while
/// a signature whose key is not at hand (gpg's exit code 2 alone) still decrypts.
pub fn gpgme_never_hears_success_for_what_gpg_could_not_read(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "verdict");
    let inner = front.gpg(&["-r", CARD_FPR, "--encrypt"], SECRET.as_bytes());
    assert_ok(&inner, "inner message");
    let outer = front.gpg(
        &["-r", CARD_FPR, "--no-literal", "--encrypt"],
        &inner.stdout,
    );
    assert_ok(&outer, "outer message, no literal packet");
    let nested = env.path("verdict-nested.gpg");
    std::fs::write(&nested, &outer.stdout).expect("write");
    let result = front.gpgme(env, "engine", &nested);
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("Decryption failed")),
        "GPGME was told the nested message decrypted: {result}"
    );
    assert!(result.get("plain").is_none(), "{result}");
    // The same through the command line: DECRYPTION_FAILED, never DECRYPTION_OKAY.
    let (out, status) = front.status_of(env, &nested);
    assert!(status.contains("[GNUPG:] DECRYPTION_FAILED"), "{status}");
    assert!(!status.contains("DECRYPTION_OKAY"), "{status}");
    assert_eq!(out.status.code(), Some(2), "{status}");

    // Signed by a key this home no longer has: decrypted, the signature "no public key".
    let signed = front.gpg(
        &["-r", CARD_FPR, "-u", &front.signer, "--sign", "--encrypt"],
        SECRET.as_bytes(),
    );
    assert_ok(&signed, "signed message");
    let message = env.path("verdict-signed.gpg");
    std::fs::write(&message, &signed.stdout).expect("write");
    let delete = ["--yes", "--delete-secret-and-public-key", &front.signer];
    assert_ok(&front.gpg(&delete, b""), "forget the signer");
    // GPGME reports this as it does for the real gpg alone: the plaintext, no error.
    let result = front.gpgme(env, "engine", &message);
    assert_eq!(result["plain"], SECRET, "{result}");
    assert!(result.get("error").is_none(), "{result}");
    let (_, status) = front.status_of(env, &message);
    assert!(status.contains("[GNUPG:] NO_PUBKEY"), "{status}");
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
}

//! mutt and neomutt in classic mode, and `cardecrypt mail` on whole messages.

use super::*;

/// mutt's sample gpg.rc line, with cardecrypt in place of gpg: status lines on stderr, the
/// PIN on stdin (mutt's %p), the message from a file.
pub fn mutts_gpg_command_line_works(env: &Env) {
    env.import_to_card("cv25519");
    let expected = std::fs::read(data_dir().join("plain.txt")).expect("plain");
    let run_mutt_line = |file: &str, stdin: &[u8]| {
        let msg = data_dir().join(file);
        env.cardecrypt(
            &[
                "--status-fd=2",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                "--no-verbose",
                "--quiet",
                "--batch",
                "--output",
                "-",
                "--decrypt",
                msg.to_str().expect("utf8"),
            ],
            stdin,
        )
    };
    let in_order = |err: &str, wanted: &[&str]| {
        let mut rest = err;
        for w in wanted {
            let at = rest
                .find(w)
                .unwrap_or_else(|| panic!("{w} missing or out of order:\n{err}"));
            rest = &rest[at + w.len()..];
        }
    };
    let out = run_mutt_line("base_seipd1.gpg", format!("{USER_PIN}\n").as_bytes());
    assert_ok(&out, "mutt line");
    assert_eq!(out.stdout, expected);
    let err = text(&out.stderr);
    in_order(
        &err,
        &[
            "[GNUPG:] ENC_TO 7BC04DD0BECCEA44 18 0",
            "[GNUPG:] NEED_PASSPHRASE_PIN OPENPGP 2",
            "[GNUPG:] DECRYPTION_KEY F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44",
            "[GNUPG:] BEGIN_DECRYPTION",
            "[GNUPG:] DECRYPTION_INFO 2 9",
            "[GNUPG:] PLAINTEXT 62 ",
            "[GNUPG:] PLAINTEXT_LENGTH 45",
            "[GNUPG:] DECRYPTION_OKAY",
            "[GNUPG:] GOODMDC",
            "[GNUPG:] END_DECRYPTION",
        ],
    );

    let out = run_mutt_line("fail_mdc.gpg", format!("{USER_PIN}\n").as_bytes());
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    in_order(
        &err,
        &[
            "[GNUPG:] BEGIN_DECRYPTION",
            "[GNUPG:] DECRYPTION_FAILED",
            "[GNUPG:] END_DECRYPTION",
        ],
    );
    assert!(!err.contains("DECRYPTION_OKAY"), "{err}");

    let out = run_mutt_line("base_seipd1.gpg", b"000000\n");
    assert!(
        text(&out.stderr).contains("[GNUPG:] SC_OP_FAILURE 2"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("[GNUPG:] DECRYPTION_FAILED"));
    let out = run_mutt_line("fail_not_openpgp.txt", b"");
    assert!(
        text(&out.stderr).contains("[GNUPG:] NODATA 1"),
        "{}",
        text(&out.stderr)
    );
    let out = run_mutt_line("fail_pkesk_keyid.gpg", b"");
    assert!(
        text(&out.stderr).contains("[GNUPG:] NO_SECKEY 7BC04CD0BECCEA44"),
        "{}",
        text(&out.stderr)
    );
}

/// The real neomutt and mutt, in classic mode with cardecrypt as their decrypt and decode
/// commands, show a PGP/MIME and an inline message decrypted, and a tampered one not.
pub fn mail_clients_show_messages_decrypted(env: &Env) {
    env.import_to_card("cv25519");
    let maildir = env.path("Mail");
    // One folder per message: opening "the" message needs no navigation.
    for folder in ["good", "inline", "tampered"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder).join(sub)).expect("maildir");
        }
    }
    let armor = |plain: &[u8]| {
        encrypt(
            &[&cert("cv25519")],
            plain,
            Form {
                armor: true,
                ..Form::default()
            },
        )
    };
    let armored = armor(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe secret body, decrypted by the card.\r\n",
    );
    let mut tampered = armored.clone();
    // Flip a character in the middle of the armored ciphertext.
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let headers = |subject: &str| {
        format!(
            "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\nSubject: {subject}\n\
             Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <{subject}@example.org>\n\
             MIME-Version: 1.0\n"
        )
    };
    let mut inline = format!(
        "{}Content-Type: text/plain; charset=us-ascii\n\nHi Bob,\n\n",
        headers("inline")
    )
    .into_bytes();
    inline.extend(armor(b"The inline secret, decrypted by the card.\n"));
    inline.extend_from_slice(b"\nAlice\n");
    let messages = [
        ("good", pgp_mime_email("good", &armored)),
        ("inline", inline),
        ("tampered", pgp_mime_email("tampered", &tampered)),
    ];
    for (folder, message) in &messages {
        std::fs::write(maildir.join(folder).join("cur/1:2,S"), message).expect("mail");
    }
    let cmd = format!(
        "{} {} --status-fd=2 --no-verbose --quiet --batch --pin-file {} --output - %f",
        env.shell_env(),
        cardecrypt_bin().display(),
        env.path("pin").display()
    );
    let muttrc = env.path("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set mbox_type=Maildir\nset folder={m}\nunset crypt_use_gpgme\n\
             set pgp_decrypt_command=\"{cmd}\"\nset pgp_decode_command=\"{cmd}\"\n\
             set pgp_check_gpg_decrypt_status_fd\nset crypt_autopgp=yes\nset pgp_auto_decode=yes\n\
             set header_cache=\"\"\nset message_cachedir=\"\"\nset mailcap_path=/dev/null\n",
            m = maildir.display()
        ),
    )
    .expect("muttrc");
    // How the clients report a failed decryption: neomutt "Could not copy message" or "Could
    // not decrypt PGP message", mutt "[-- Error: decryption failed --]".
    let refused = |shown: &str| shown.contains("Could not") || shown.contains("decryption failed");
    let session = format!("cardecrypt-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .env("HOME", env.dir.path())
            .output()
            .expect("tmux")
    };
    let screen = |client: &str, folder: &str| -> String {
        let _ = tmux(&["kill-session", "-t", &session]);
        let started = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "50",
            &format!(
                "{client} -n -F {} -f {}",
                muttrc.display(),
                maildir.join(folder).display()
            ),
        ]);
        assert!(started.status.success(), "tmux: {}", text(&started.stderr));
        // Keys sent before the index is drawn are lost.
        let ready = Instant::now() + Duration::from_secs(10);
        while !text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).contains("q:Quit") {
            assert!(Instant::now() < ready, "{client} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        tmux(&["send-keys", "-t", &session, "Enter"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut shown = String::new();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            shown = text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
            if shown.contains("decrypted by the card") || refused(&shown) {
                break;
            }
        }
        tmux(&["send-keys", "-t", &session, "q"]);
        tmux(&["send-keys", "-t", &session, "q"]);
        let _ = tmux(&["kill-session", "-t", &session]);
        shown
    };
    for client in ["neomutt", "mutt"] {
        let good = screen(client, "good");
        assert!(
            good.contains("The secret body, decrypted by the card."),
            "{client} showed:\n{good}"
        );
        let shown = screen(client, "inline");
        assert!(
            shown.contains("The inline secret, decrypted by the card."),
            "{client} showed:\n{shown}"
        );
        assert!(shown.contains("Hi Bob,"), "{client} showed:\n{shown}");
        let bad = screen(client, "tampered");
        assert!(
            !bad.contains("The secret body"),
            "{client} showed a tampered message:\n{bad}"
        );
        assert!(refused(&bad), "{client} showed:\n{bad}");
    }
}

/// `cardecrypt mail` on whole messages encrypted by gpg: protected headers restored, an
/// unencrypted message passed through with exit 9, a tampered one refused with nothing out.
pub fn cardecrypt_mail_decrypts_whole_messages(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let payload = "Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\n\
                   Subject: Budget 2027\r\nHP-Outer: Subject: [...]\r\n\r\n\
                   The numbers are attached in spirit.\r\n";
    let enc = env.gpg(
        &["-e", "-a", "-r", "cv25519@cardecrypt.test"],
        payload.as_bytes(),
    );
    assert_ok(&enc, "gpg encrypt");
    let message = format!(
        "Subject: [...]\nFrom: a@example.org\nMIME-Version: 1.0\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\n\n\
         --x\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n\
         --x\nContent-Type: application/octet-stream\n\n{}\n--x--\n",
        text(&enc.stdout)
    );
    let out = env.cardecrypt_with_pin(&["mail"], message.as_bytes());
    assert_ok(&out, "cardecrypt mail");
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with("Subject: Budget 2027\nFrom: a@example.org\nMIME-Version: 1.0\n"),
        "{shown}"
    );
    assert!(
        shown.ends_with("\n\nThe numbers are attached in spirit.\n"),
        "{shown}"
    );
    assert!(!shown.contains("[...]"), "{shown}");

    let plain = b"Subject: hi\n\nnot secret\n";
    let out = env.cardecrypt(&["mail", "--batch"], plain);
    assert_eq!(
        out.status.code(),
        Some(exit::NOT_ENCRYPTED.into()),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.stdout, plain);
    assert!(text(&out.stderr).contains("not encrypted"));

    let mut tampered = message.clone().into_bytes();
    let at = message.find("-----BEGIN PGP MESSAGE-----").expect("armor") + 120;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let out = env.cardecrypt_with_pin(&["mail"], &tampered);
    assert_fails(&out, exit::BAD_MESSAGE, "cannot be decrypted safely");
}

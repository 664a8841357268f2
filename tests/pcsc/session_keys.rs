//! Session keys for mail indexers and scripts: notmuch (GMime, GPGME) stashes the session
//! key cardecrypt-gpg gives for `--show-session-key` and shows the message later with it,
//! with no card; `cardecrypt --show-session-key` and `--override-session-key-fd` do the same
//! for the plain command and `cardecrypt mail`.

use super::*;
use crate::front_end::{lock_card, FrontEnd, CARD_FPR};

const WORD: &str = "zanzibarquokka";

/// notmuch with `index.decrypt=true` indexes a card message (one PIN), stashes its session
/// key, finds its words, and shows it with pcscd out of reach.
pub fn notmuch_stashes_session_keys_and_shows_without_the_card(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "stash");
    let body = format!("Content-Type: text/plain; charset=utf-8\n\nThe {WORD} is indexed.\n");
    let encrypted = front.gpg(&["-a", "-r", CARD_FPR, "--encrypt"], body.as_bytes());
    assert_ok(&encrypted, "encrypt");
    let maildir = env.path("stash-Mail");
    maildir_with(&maildir, &pgp_mime_email("stash", &encrypted.stdout));
    let config = env.path("stash-notmuch-config");
    std::fs::write(
        &config,
        format!(
            "[database]\npath={}\n[user]\nname=Bob\nprimary_email=bob@example.org\n\
             [new]\ntags=inbox;\n[index]\ndecrypt=true\n",
            maildir.display()
        ),
    )
    .expect("notmuch config");
    let notmuch = |args: &[&str], reach_card: bool| {
        let mut cmd = Command::new("notmuch");
        front.client(env, &mut cmd).env("NOTMUCH_CONFIG", &config);
        if !reach_card {
            cmd.env("PCSCLITE_CSOCK_NAME", env.path("no-such-socket"));
        }
        run(cmd.args(args), b"")
    };

    lock_card(env);
    assert_ok(&notmuch(&["new"], true), "notmuch new");
    assert_eq!(front.pinentry_asks(), 1, "one PIN to index");
    let found = notmuch(&["search", "--output=messages", WORD], true);
    assert!(
        text(&found.stdout).contains("id:stash@example.org"),
        "the decrypted words are indexed: {}",
        text(&found.stderr)
    );
    let dump = notmuch(&["dump", "--include=properties"], true);
    assert!(
        text(&dump.stdout).contains("session-key="),
        "no session key stashed:\n{}",
        text(&dump.stdout)
    );

    // The card out of reach (no pcscd): the stashed key opens the message.
    lock_card(env);
    let shown = notmuch(&["show", "--decrypt=auto", "id:stash@example.org"], false);
    assert_ok(&shown, "notmuch show with the stashed key");
    assert!(
        text(&shown.stdout).contains(WORD),
        "notmuch showed:\n{}\n{}",
        text(&shown.stdout),
        text(&shown.stderr)
    );
    assert_eq!(front.pinentry_asks(), 1, "no PIN for a stashed key");
}

/// `cardecrypt --show-session-key` prints it (and SESSION_KEY with --status-fd); with
/// `--override-session-key-fd` a message, and a whole email, decrypt with no pcscd at all; a
/// wrong key is refused with no plaintext.
pub fn the_command_line_shows_and_takes_session_keys(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let message = env.path("session.asc");
    let plain = "decrypted once with the card, then with its session key\n";
    let out = env.gpg(
        &["-a", "-r", "cv25519@cardecrypt.test", "--encrypt"],
        plain.as_bytes(),
    );
    assert_ok(&out, "encrypt");
    std::fs::write(&message, &out.stdout).expect("write");
    let shown = env.cardecrypt_with_pin(
        &[
            "--show-session-key",
            "--status-fd",
            "2",
            message.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&shown, "--show-session-key");
    let stderr = text(&shown.stderr);
    let key = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cardecrypt: session key: '"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no session key line:\n{stderr}"))
        .to_string();
    assert!(
        key.starts_with("9:") && key.len() == 2 + 64,
        "AES-256: {key}"
    );
    assert!(
        stderr.contains(&format!("[GNUPG:] SESSION_KEY {key}\n")),
        "{stderr}"
    );

    // No pcscd: the key alone decrypts, for a message and for a whole email.
    let key_file = env.path("session-key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key");
    let with_key = |args: &[&str], key: &Path| {
        run(
            env.isolate(&mut Command::new("sh"))
                .arg("-c")
                .arg("exec \"$CARDECRYPT\" --batch --override-session-key-fd 3 \"$@\" 3<\"$KEY\"")
                .arg("sh")
                .args(args)
                .env("CARDECRYPT", cardecrypt_bin())
                .env("KEY", key)
                .env("PCSCLITE_CSOCK_NAME", env.path("no-such-socket")),
            b"",
        )
    };
    let opened = with_key(&[message.to_str().expect("utf8")], &key_file);
    assert_ok(&opened, "--override-session-key-fd");
    assert_eq!(text(&opened.stdout), plain);
    let mail = env.path("session.eml");
    let email = pgp_mime_email("session", &out.stdout);
    std::fs::write(&mail, &email).expect("mail");
    let opened = with_key(&["mail", mail.to_str().expect("utf8")], &key_file);
    assert_ok(&opened, "mail --override-session-key-fd");
    assert!(text(&opened.stdout).contains(plain.trim()));
    // `mail --show-session-key` gives the same key through the card.
    let shown = env.cardecrypt_with_pin(
        &["mail", "--show-session-key", mail.to_str().expect("utf8")],
        b"",
    );
    assert_ok(&shown, "mail --show-session-key");
    assert!(
        text(&shown.stderr).contains(&format!("session key: '{key}'")),
        "{}",
        text(&shown.stderr)
    );

    // A wrong key: refused, nothing written.
    let mut wrong = key.clone();
    wrong.replace_range(2..4, if &key[2..4] == "00" { "01" } else { "00" });
    std::fs::write(&key_file, format!("{wrong}\n")).expect("key");
    let refused = with_key(&[message.to_str().expect("utf8")], &key_file);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused.stderr));
    assert!(refused.stdout.is_empty());
}

/// aerc's call, `gpg --status-fd 1 --batch --decrypt`, reads status lines and plaintext from
/// one descriptor in gpg's order: ENC_TO .. KEY_CONSIDERED, DECRYPTION_KEY naming the
/// primary key, DECRYPTION_INFO with its AEAD field, PLAINTEXT, PLAINTEXT_LENGTH, then the
/// plaintext, then DECRYPTION_OKAY, GOODMDC, END_DECRYPTION; signed, the signature lines
/// follow the plaintext.
pub fn status_and_plaintext_on_one_descriptor_come_in_gpgs_order(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "order");
    let primary = front.fingerprint("cv25519@cardecrypt.test");
    let body = "the body aerc shows\n";
    for sign in [false, true] {
        let mut args = vec!["-a", "-r", CARD_FPR];
        if sign {
            args.extend(["-u", front.signer.as_str(), "--sign"]);
        }
        args.push("--encrypt");
        let encrypted = front.gpg(&args, body.as_bytes());
        assert_ok(&encrypted, "encrypt");
        lock_card(env);
        let out = run(
            front
                .client(env, &mut Command::new(front_gpg(&front)))
                .args(["--status-fd", "1", "--batch", "--decrypt"]),
            &encrypted.stdout,
        );
        assert_ok(&out, "aerc's call");
        let all = text(&out.stdout);
        let at = all
            .find(body)
            .unwrap_or_else(|| panic!("no plaintext in:\n{all}"));
        let (before, after) = (&all[..at], &all[at + body.len()..]);
        let keywords = |t: &str| -> Vec<String> {
            t.lines()
                .filter_map(|l| l.strip_prefix("[GNUPG:] "))
                .map(|l| l.split(' ').next().unwrap_or_default().to_string())
                .collect()
        };
        let (head, tail) = (keywords(before), keywords(after));
        assert_eq!(head.first().map(String::as_str), Some("ENC_TO"), "{all}");
        assert_eq!(
            head.last().map(String::as_str),
            Some("PLAINTEXT_LENGTH"),
            "{all}"
        );
        for (a, b) in [
            ("KEY_CONSIDERED", "DECRYPTION_KEY"),
            ("DECRYPTION_KEY", "BEGIN_DECRYPTION"),
            ("BEGIN_DECRYPTION", "DECRYPTION_INFO"),
            ("DECRYPTION_INFO", "PLAINTEXT"),
        ] {
            let pos = |k: &str| head.iter().position(|h| h == k);
            assert!(
                pos(a).is_some() && pos(a) < pos(b),
                "{a} before {b}:\n{all}"
            );
        }
        assert_eq!(
            tail.iter().rev().take(3).rev().collect::<Vec<_>>(),
            ["DECRYPTION_OKAY", "GOODMDC", "END_DECRYPTION"],
            "{all}"
        );
        assert_eq!(tail.contains(&"GOODSIG".to_string()), sign, "{all}");
        assert!(
            before.contains(&format!("[GNUPG:] DECRYPTION_KEY {CARD_FPR} {primary} ")),
            "field 3 is the primary key:\n{all}"
        );
        assert!(before.contains("[GNUPG:] DECRYPTION_INFO 2 9 0\n"), "{all}");
    }
}

/// The front end's `gpg` link.
fn front_gpg(front: &FrontEnd) -> PathBuf {
    front.bin().join("gpg")
}

/// The real aerc (Debian's 0.14, `pgp-provider = gpg`, cardecrypt-gpg first on PATH) in tmux
/// opens a card message from a maildir and shows its text.
pub fn aerc_shows_a_card_message(env: &Env) {
    if !Path::new("/usr/bin/aerc").exists() {
        assert!(
            std::env::var("CARDECRYPT_PCSC_TESTS").as_deref() != Ok("require"),
            "aerc is required here: scripts/test.sh installs it"
        );
        println!("aerc not installed: skipped");
        return;
    }
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "aerc");
    let body = format!("Content-Type: text/plain; charset=utf-8\n\nThe {WORD} that aerc shows.\n");
    let encrypted = front.gpg(&["-a", "-r", CARD_FPR, "--encrypt"], body.as_bytes());
    assert_ok(&encrypted, "encrypt");
    let maildir = env.path("aerc-Mail/INBOX");
    maildir_with(&maildir, &pgp_mime_email("for-aerc", &encrypted.stdout));
    let config = env.path("aerc-config/aerc");
    std::fs::create_dir_all(&config).expect("config");
    std::fs::write(
        config.join("aerc.conf"),
        "[general]\npgp-provider=gpg\nunsafe-accounts-conf=true\n\
         [filters]\ntext/plain=cat\n",
    )
    .expect("aerc.conf");
    let accounts = config.join("accounts.conf");
    std::fs::write(
        &accounts,
        format!(
            "[Test]\nsource=maildir://{}\noutgoing=/bin/true\nfrom=Bob <bob@example.org>\n\
             default=INBOX\n",
            maildir.parent().expect("Mail").display()
        ),
    )
    .expect("accounts.conf");
    std::fs::set_permissions(&accounts, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    lock_card(env);
    let mut client = Command::new("tmux");
    front
        .client(env, &mut client)
        .env("HOME", env.dir.path())
        .env("XDG_CONFIG_HOME", env.path("aerc-config"))
        .env("TERM", "xterm-256color");
    let aerc = Tmux::start("cardecrypt-aerc", &mut client, "aerc");
    let listed = aerc.wait_for("for-aerc");
    assert!(listed.contains("for-aerc"), "aerc's list:\n{listed}");
    aerc.keys(&["Enter"]);
    let shown = aerc.wait_for(WORD);
    aerc.keys(&[":quit", "Enter"]);
    drop(aerc);
    assert!(
        shown.contains(&format!("The {WORD} that aerc shows.")),
        "aerc showed:\n{shown}"
    );
    assert!(!shown.contains("no media type"), "{shown}");
    assert_eq!(front.pinentry_asks(), 1);
}

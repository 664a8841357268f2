//! The card itself: PIN tries, touch, exclusive holders, key generation, status and settings,
//! keeping it unlocked, reset, restarts, doctor and listing, no card and no pcscd.

use super::*;

pub fn wrong_pin_costs_one_try_and_says_how_many_are_left(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "654321\n").expect("write");
    let out = env.cardecrypt(
        &["--batch", "--pin-file", wrong.to_str().expect("utf8")],
        &message,
    );
    assert_fails(&out, exit::PIN, "wrong PIN");
    assert!(
        text(&out.stderr).contains("2 tries left"),
        "{}",
        text(&out.stderr)
    );
    // The right PIN through an inherited descriptor works.
    let out = run(
        env.isolate(&mut Command::new("sh"))
            .arg("-c")
            .arg("exec \"$CARDECRYPT\" --batch --pin-fd 3 3<\"$PIN_FILE\"")
            .env("CARDECRYPT", cardecrypt_bin())
            .env("PIN_FILE", env.path("pin")),
        &message,
    );
    assert_ok(&out, "pin-fd");
}

pub fn touch_policy_makes_cardecrypt_ask_for_a_touch(env: &Env) {
    use openpgp_card::ocard::data::TouchPolicy;
    env.import_to_card("cv25519");
    set_touch_policy(TouchPolicy::On);
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt_with_pin(&[], &message);
    set_touch_policy(TouchPolicy::Off);
    assert_ok(&out, "decrypt with touch");
    assert!(
        text(&out.stderr).contains("touch your card"),
        "{}",
        text(&out.stderr)
    );
}

/// Sets the decryption key's touch policy through PC/SC with openpgp-card (issue 3 brings a
/// `card set touch` command).
pub fn set_touch_policy(policy: openpgp_card::ocard::data::TouchPolicy) {
    use cardecrypt::card::{CardSource, PcscSource};
    use openpgp_card::ocard::KeyType;
    // Kept to the end: when it goes, the card forgets the admin PIN.
    let mut source = PcscSource::default();
    let (_, backend) = source
        .backends()
        .expect("cards")
        .into_iter()
        .find(|(reader, _)| reader == reader_name())
        .expect("the test card");
    let mut card = openpgp_card::Card::new(backend).expect("open");
    let mut tx = card.transaction().expect("tx");
    let mut admin = tx
        .as_admin_card(secrecy::SecretString::from(ADMIN_PIN))
        .expect("admin");
    admin
        .set_touch_policy(KeyType::Decryption, policy)
        .expect("set touch");
    drop(tx);
    drop(card);
    drop(source);
}

pub fn card_held_exclusively_is_explained(env: &Env) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("context");
    let reader = std::ffi::CString::new(reader_name()).expect("cstring");
    let held = ctx
        .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
        .expect("exclusive connect");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt(&["--batch"], &message);
    let _ = held.disconnect(pcsc::Disposition::LeaveCard);
    assert_fails(&out, exit::NO_CARD, "is in use");
    assert!(
        text(&out.stderr).contains("gpgconf --kill scdaemon"),
        "{}",
        text(&out.stderr)
    );
}

pub fn card_generate_makes_a_certificate_gpg_uses(env: &Env) {
    let cert = env.path("generated.asc");
    let _ = std::fs::remove_file(&cert);
    let (pin, admin) = (env.path("pin"), env.path("admin"));
    let out = env.cardecrypt(
        &[
            "card",
            "generate",
            "--batch",
            "--replace",
            "--algo",
            "nistp256",
            "--userid",
            "Made On Card <made@cardecrypt.test>",
            "--pin-file",
            pin.to_str().expect("utf8"),
            "--admin-pin-file",
            admin.to_str().expect("utf8"),
            "-o",
            cert.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_ok(&out, "card generate");
    assert_ok(
        &env.gpg(&["--import", cert.to_str().expect("utf8")], b""),
        "gpg import",
    );
    let status = env.gpg(&["--card-status"], b"");
    assert_ok(&status, "gpg --card-status");
    assert!(
        text(&status.stdout).contains("made@cardecrypt.test"),
        "{}",
        text(&status.stdout)
    );
    let enc = env.gpg(&["-e", "-r", "made@cardecrypt.test"], b"made on the card\n");
    assert_ok(&enc, "gpg -e");
    let dec = env.gpg_decrypts_on_card(&enc.stdout);
    assert_ok(&dec, "gpg -d through the card");
    assert_eq!(dec.stdout, b"made on the card\n");
    env.stop_gpg();
    let out = env.cardecrypt_with_pin(&[], &enc.stdout);
    assert_ok(&out, "cardecrypt");
    assert_eq!(out.stdout, b"made on the card\n");
}

pub fn status_pins_and_settings_through_the_cli(env: &Env) {
    env.import_to_card("rsa2048");
    let (pin, admin) = (env.path("pin"), env.path("admin"));
    let newpin = env.path("newpin");
    std::fs::write(&newpin, "97531864\n").expect("write");
    let p = |x: &PathBuf| x.to_str().expect("utf8").to_string();
    let out = env.cardecrypt(
        &[
            "card",
            "set",
            "--batch",
            "--admin-pin-file",
            &p(&admin),
            "name",
            "Alice Liddell",
        ],
        b"",
    );
    assert_ok(&out, "card set name");
    let out = env.cardecrypt(
        &[
            "card",
            "pin",
            "change-user",
            "--batch",
            "--pin-file",
            &p(&pin),
            "--new-pin-file",
            &p(&newpin),
        ],
        b"",
    );
    assert_ok(&out, "change-user");
    let message = env.gpg(
        &[
            "--import",
            data_dir()
                .join("keys/rsa2048.pub.asc")
                .to_str()
                .expect("utf8"),
        ],
        b"",
    );
    assert_ok(&message, "gpg import");
    let enc = env.gpg(&["-e", "-r", "rsa2048@cardecrypt.test"], b"new pin\n");
    let old = env.cardecrypt(&["--batch", "--pin-file", &p(&pin)], &enc.stdout);
    assert_fails(&old, exit::PIN, "wrong PIN");
    let ok = env.cardecrypt(&["--batch", "--pin-file", &p(&newpin)], &enc.stdout);
    assert_ok(&ok, "decrypt with the new PIN");
    let back = env.cardecrypt(
        &[
            "card",
            "pin",
            "change-user",
            "--batch",
            "--pin-file",
            &p(&newpin),
            "--new-pin-file",
            &p(&pin),
        ],
        b"",
    );
    assert_ok(&back, "change back");

    // The admin PIN through an inherited descriptor.
    let out = run(
        env.isolate(&mut Command::new("sh"))
            .arg("-c")
            .arg("exec \"$CARDECRYPT\" card set --batch --admin-pin-fd 3 url https://example.org/a.asc 3<\"$ADMIN_FILE\"")
            .env("CARDECRYPT", cardecrypt_bin())
            .env("ADMIN_FILE", &admin),
        b"",
    );
    assert_ok(&out, "card set url with --admin-pin-fd");
    let out = env.cardecrypt(&["card", "status", "--json"], b"");
    assert_ok(&out, "status --json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["ident"], IDENT);
    assert_eq!(json["cardholder"], "Alice Liddell");
    assert_eq!(json["url"], "https://example.org/a.asc");
    assert_eq!(json["slots"][1]["algorithm"], "RSA 2048");
    assert_eq!(json["slots"][1]["origin"], "imported");
    assert_eq!(json["pin"]["user_tries"], 3);
    let text_status = env.cardecrypt(&["card", "status"], b"");
    assert_ok(&text_status, "status");
    assert!(text(&text_status.stdout).contains("Alice Liddell"));
}

pub fn state_survives_a_restart_of_the_virtual_card(env: &Env, vcard: &mut Option<VcardProcess>) {
    env.import_to_card("nistp384");
    if let Some(card) = vcard.take() {
        card.stop();
    }
    *vcard = Some(VcardProcess::start(&env.state));
    let out = env.cardecrypt(&["card", "list"], b"");
    assert_ok(&out, "card list");
    let subkey = cert("nistp384")
        .keys()
        .subkeys()
        .next()
        .expect("subkey")
        .key()
        .fingerprint()
        .to_hex();
    assert!(text(&out.stdout).contains(&subkey), "{}", text(&out.stdout));
}

pub fn factory_reset_needs_the_card_named(env: &Env) {
    env.import_to_card("cv25519");
    let out = env.cardecrypt(&["card", "factory-reset", "--batch"], b"");
    assert_eq!(
        out.status.code(),
        Some(exit::USAGE.into()),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(IDENT));
    let out = env.cardecrypt(
        &[
            "card",
            "factory-reset",
            "--yes-really-wipe",
            "FFFE:00000BAD",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(exit::USAGE.into()));
    let list = env.cardecrypt(&["card", "list"], b"");
    assert!(
        !text(&list.stdout).contains("no decryption key"),
        "not wiped yet"
    );
    let out = env.cardecrypt(&["card", "factory-reset", "--yes-really-wipe", IDENT], b"");
    assert_ok(&out, "factory reset");
    let list = env.cardecrypt(&["card", "list"], b"");
    assert!(
        text(&list.stdout).contains("no decryption key"),
        "{}",
        text(&list.stdout)
    );
}

pub fn keep_unlocked_spares_the_pin_until_lock(env: &Env) {
    env.import_to_card("cv25519");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let pause = || std::thread::sleep(Duration::from_millis(1500)); // > pcscd's power-off delay
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "60s"], &message);
    assert_ok(&out, "decrypt and keep unlocked");
    pause();
    let out = env.cardecrypt(&["--batch"], &message);
    assert_ok(&out, "second decrypt without a PIN");
    let left = env.kept_unlocked_seconds();
    assert!(left.is_some_and(|s| s > 0 && s <= 60), "{left:?}");
    // The holder does not keep other programs from the card. (A gpg home of its own: gpg
    // remembers the card's keys, which would confuse the other gpg tests.)
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scdaemon.conf"),
        format!("disable-ccid\npcsc-shared\nreader-port {}\n", reader_name()),
    )
    .expect("conf");
    let status = run(
        Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--card-status"]),
        b"",
    );
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "all"])
        .status();
    assert_ok(&status, "gpg --card-status while held");
    assert!(
        text(&status.stdout).contains("0000C0DE"),
        "{}",
        text(&status.stdout)
    );
    let out = env.cardecrypt(&["lock"], b"");
    assert_ok(&out, "lock");
    pause();
    let out = env.cardecrypt(&["--batch"], &message);
    assert_fails(&out, exit::PIN, "needs its PIN");
}

/// The `--help` examples that need no secret and no file of the user's run as written (the
/// example card ident replaced by the virtual card's) and succeed; every other example is
/// parsed by the unit tests.
pub fn help_examples_without_secrets_run(env: &Env) {
    env.import_to_card("cv25519");
    let runnable = |argv: &[String]| {
        matches!(
            argv.get(1..3),
            Some([a, b]) if a == "card" && (b == "list" || b == "status")
        ) || matches!(argv.get(1).map(String::as_str), Some("lock"))
    };
    let mut ran = Vec::new();
    for example in cardecrypt::cli::help_examples() {
        let argv: Vec<String> = cardecrypt::cli::example_argv(&example)
            .into_iter()
            .map(|w| w.replace("FFFE:00000001", IDENT))
            .collect();
        if !runnable(&argv) {
            continue;
        }
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let out = env.cardecrypt(&args, b"");
        assert!(
            out.status.success(),
            "`{example}`: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        ran.push(example);
    }
    assert!(ran.len() >= 4, "too few examples ran: {ran:?}");
}

pub fn doctor_explains_the_setup(env: &Env) {
    env.import_to_card("cv25519");
    let home = tempfile::tempdir().expect("tempdir");
    let rc = home.path().join(".neomuttrc");
    std::fs::write(
        &rc,
        "set pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
    )
    .expect("rc");
    let doctor = || {
        run(
            env.isolate(&mut Command::new(cardecrypt_bin()))
                .arg("doctor")
                .env("HOME", home.path()),
            b"",
        )
    };
    let out = doctor();
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::OTHER.into()), "{report}");
    assert!(report.contains("ok    pcscd is running"), "{report}");
    assert!(
        report.contains(&format!(
            "card {IDENT} in \"{}\": decryption key F871B553",
            reader_name()
        )),
        "{report}"
    );
    assert!(
        report.contains("FAIL  ") && report.contains("GPGME"),
        "{report}"
    );
    assert!(
        report.contains("fix: add `unset crypt_use_gpgme`"),
        "{report}"
    );
    std::fs::write(
        &rc,
        "unset crypt_use_gpgme\nset pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
    )
    .expect("rc");
    let out = doctor();
    assert_ok(&out, "doctor with a good setup");
    assert!(!text(&out.stdout).contains("FAIL"), "{}", text(&out.stdout));
}

pub fn card_list_shows_ident_reader_and_key(env: &Env) {
    env.import_to_card("cv25519");
    let out = env.cardecrypt(&["card", "list"], b"");
    assert_ok(&out, "card list");
    let line = text(&out.stdout);
    assert!(line.contains(IDENT), "{line}");
    assert!(line.contains(reader_name()), "{line}");
    assert!(
        line.contains("F871B55303AEC7827FCF3EDE7BC04DD0BECCEA44"),
        "{line}"
    );
}

pub fn no_card_and_no_pcscd_are_explained(env: &Env, vcard: &mut Option<VcardProcess>) {
    if let Some(card) = vcard.take() {
        card.stop();
    }
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt(&["--batch"], &message);
    if sharing_pcscd() {
        // The other card is still there: the named test card is what is missing.
        assert_fails(&out, exit::NO_CARD, &format!("card {IDENT} not found"));
    } else {
        assert_fails(&out, exit::NO_CARD, "no OpenPGP card found");
    }
    *vcard = Some(VcardProcess::start(&env.state));

    let out = run(
        Command::new(cardecrypt_bin())
            .arg("--batch")
            .env("PCSCLITE_CSOCK_NAME", env.path("no-such-socket")),
        &message,
    );
    assert_fails(&out, exit::NO_CARD, "pcscd");
}

//! Faults and hostile local state, through pcscd: a planted holder file, a runtime directory
//! others can write, a full filesystem, many decrypts at once, stdout closed early, the card
//! removed, pcscd gone.

use super::*;

/// The runtime directory the tests give cardecrypt (XDG_RUNTIME_DIR/cardecrypt).
fn runtime(env: &Env) -> PathBuf {
    env.path("run").join("cardecrypt")
}

pub fn planted_holder_state_moves_nothing(env: &Env) {
    env.import_to_card("cv25519");
    // A live process of the user, and a file where an old holder kept its PID.
    let mut victim = Command::new("sleep").arg("30").spawn().expect("sleep");
    std::fs::create_dir_all(runtime(env)).expect("runtime dir");
    std::fs::set_permissions(runtime(env), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for name in ["unlocked-FFFE-0000C0DE", "unlocked-FFFE-0000C0DE.sock"] {
        std::fs::write(
            runtime(env).join(name),
            format!("{} {}\n", victim.id(), u32::MAX),
        )
        .expect("plant");
    }
    let out = env.cardecrypt(&["lock"], b"");
    assert_ok(&out, "lock");
    let status = env.cardecrypt(&["card", "status", "--json"], b"");
    assert_ok(&status, "status");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert!(json["kept_unlocked_seconds"].is_null(), "{json}");
    assert!(
        victim.try_wait().expect("try_wait").is_none(),
        "lock killed a process named in a planted file"
    );
    let _ = victim.kill();
    let _ = victim.wait();
    for name in ["unlocked-FFFE-0000C0DE", "unlocked-FFFE-0000C0DE.sock"] {
        let _ = std::fs::remove_file(runtime(env).join(name));
    }

    // A runtime directory others can write: keep-unlocked refuses it, with the reason; the
    // decrypt itself still succeeds.
    std::fs::set_permissions(runtime(env), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let message = std::fs::read(data_dir().join("base_seipd1.gpg")).expect("base");
    let out = env.cardecrypt_with_pin(&["--keep-unlocked", "60s"], &message);
    std::fs::set_permissions(runtime(env), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_ok(&out, "decrypt");
    let said = text(&out.stderr);
    assert!(
        said.contains("cannot keep the card unlocked") && said.contains("lets others in"),
        "{said}"
    );
    assert!(env.kept_unlocked_seconds().is_none());
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
}

pub fn full_filesystem_and_closed_stdout_leave_nothing(env: &Env) {
    env.import_to_card("cv25519");
    let message = data_dir().join("base_seipd1.gpg");
    let message = message.to_str().expect("utf8");
    // /dev/full: written into (never replaced), ENOSPC, exit 7, one line, no panic.
    let out = env.cardecrypt_with_pin(&["-o", "/dev/full", "--overwrite", message], b"");
    assert_fails(&out, exit::IO, "No space left");
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
    let meta = std::fs::metadata("/dev/full").expect("/dev/full");
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()),
        "/dev/full was replaced"
    );
    // Standard output closed before anything is written: no panic, no partial file.
    let mut child = env
        .cardecrypt_command()
        .args([
            "--batch",
            "--pin-file",
            env.path("pin").to_str().expect("utf8"),
            message,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

pub fn eight_decrypts_at_once_share_the_card(env: &Env) {
    env.import_to_card("cv25519");
    let message = data_dir().join("base_seipd1.gpg");
    let expected = env.cardecrypt_with_pin(&[message.to_str().expect("utf8")], b"");
    assert_ok(&expected, "one decrypt");
    let spawn = |extra: &[&str]| {
        env.cardecrypt_command()
            .args([
                "--batch",
                "--pin-file",
                env.path("pin").to_str().expect("utf8"),
            ])
            .args(extra)
            .arg(&message)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    for extra in [&[][..], &["--keep-unlocked", "30s"][..]] {
        let children: Vec<Child> = (0..8).map(|_| spawn(extra)).collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert_ok(&out, "a concurrent decrypt");
            assert_eq!(out.stdout, expected.stdout);
        }
    }
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
    // The PIN's retry counter was never spent on a failure.
    let status = env.cardecrypt(&["card", "status", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["pin"]["user_tries"], 3, "{json}");
}

/// `cardecrypt inspect` through pcscd: the card holding a recipient's key is named (no PIN
/// for that), and `--decrypt` describes the inside without showing it.
pub fn inspect_names_the_card_and_describes_the_inside(env: &Env) {
    env.import_to_card("cv25519");
    let message = data_dir().join("base_seipd1.gpg");
    let plain = std::fs::read_to_string(data_dir().join("plain.txt")).expect("plain");
    let out = env.cardecrypt(&["inspect", message.to_str().expect("utf8")], b"");
    assert_ok(&out, "inspect");
    let flat = |b: &[u8]| text(b).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(&out.stdout).contains(&format!("your card {IDENT} holds it")),
        "{}",
        text(&out.stdout)
    );
    let out = env.cardecrypt_with_pin(
        &["inspect", "--decrypt", message.to_str().expect("utf8")],
        b"",
    );
    assert_ok(&out, "inspect --decrypt");
    let shown = text(&out.stdout);
    assert!(shown.contains("Only the card holder can see:"), "{shown}");
    assert!(
        !shown.contains(plain.trim()),
        "inspect showed the plaintext:\n{shown}"
    );
}

/// The unlock holder outlives cardecrypt but must not hold the caller's pipes: a mail
/// client reading the status descriptor to its end would wait for the holder's time.
pub fn the_holder_keeps_no_descriptor_of_the_caller(env: &Env) {
    env.import_to_card("cv25519");
    let message = data_dir().join("base_seipd1.gpg");
    // The status lines on descriptor 15 (two digits, as GPGME may use), into a pipe whose
    // reader (cat) ends only when every writer closed it.
    let out = run(
        env.isolate(&mut Command::new("bash"))
            .arg("-c")
            .arg(
                "\"$0\" --keep-unlocked 120s --batch --pin-file \"$1\" --status-fd 15 \"$2\" \
                 15>&1 >/dev/null | cat",
            )
            .arg(cardecrypt_bin())
            .arg(env.path("pin"))
            .arg(&message),
        b"",
    );
    assert_ok(&out, "decrypt with keep-unlocked, status into a pipe");
    assert!(
        text(&out.stdout).contains("DECRYPTION_OKAY"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        env.kept_unlocked_seconds().is_some(),
        "the holder did not start"
    );
    assert_ok(&env.cardecrypt(&["lock"], b""), "lock");
}

/// gpg (scdaemon in shared mode) and cardecrypt decrypt on the same card at the same time:
/// every one of them gets its plaintext, and no PIN try is lost.
pub fn gpg_and_cardecrypt_share_the_card_at_once(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    assert_ok(&env.gpg(&["--card-status"], b""), "gpg --card-status");
    let enc = env.gpg(
        &["-e", "-r", "cv25519@cardecrypt.test"],
        b"at the same time\n",
    );
    assert_ok(&enc, "gpg -e");
    let message = env.path("concurrent.gpg");
    std::fs::write(&message, &enc.stdout).expect("write");
    let ours: Vec<Child> = (0..3)
        .map(|_| {
            env.cardecrypt_command()
                .args([
                    "--batch",
                    "--pin-file",
                    env.path("pin").to_str().expect("utf8"),
                ])
                .arg(&message)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn cardecrypt")
        })
        .collect();
    let theirs: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("gpg")
                .arg("--homedir")
                .arg(&env.gnupghome)
                .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
                .args(["--passphrase", USER_PIN, "-d"])
                .arg(&message)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn gpg")
        })
        .collect();
    for (who, child) in ours
        .into_iter()
        .map(|c| ("cardecrypt", c))
        .chain(theirs.into_iter().map(|c| ("gpg", c)))
    {
        let out = child.wait_with_output().expect("wait");
        assert_ok(&out, &format!("{who} while the other decrypts"));
        assert_eq!(out.stdout, b"at the same time\n", "{who}");
    }
    env.stop_gpg();
    let status = env.cardecrypt(&["card", "status", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["pin"]["user_tries"], 3, "{json}");
}

/// The card pulled out at the worst moment, as PSO:DECIPHER reaches it: exit 3, one line that
/// says so, no plaintext, nothing left at `-o`; the card back in, everything works again.
pub fn card_pulled_out_during_the_decrypt(env: &Env, vcard: &mut Option<VcardProcess>) {
    env.import_to_card("cv25519");
    if let Some(card) = vcard.take() {
        card.stop();
    }
    *vcard = Some(VcardProcess::start_with(
        &env.state,
        &["--vanish-at-ins", "2A"],
    ));
    let message = data_dir().join("base_seipd1.gpg");
    let out_file = env.path("pulled.txt");
    let out = env.cardecrypt_with_pin(
        &[
            "-o",
            out_file.to_str().expect("utf8"),
            message.to_str().expect("utf8"),
        ],
        b"",
    );
    // The process that played the card is gone; reap it before starting the next.
    if let Some(card) = vcard.take() {
        card.stop();
    }
    *vcard = Some(VcardProcess::start(&env.state));
    assert_fails(&out, exit::NO_CARD, "the card was removed");
    assert!(
        text(&out.stderr).contains("re-insert the card"),
        "{}",
        text(&out.stderr)
    );
    assert!(!out_file.exists(), "a file was left at -o");
    let again = env.cardecrypt_with_pin(&[message.to_str().expect("utf8")], b"");
    assert_ok(&again, "decrypt with the card back");
}

/// `cardecrypt mail` says, as `cardecrypt` does, when a part came in an old cipher.
pub fn mail_names_an_old_cipher(env: &Env) {
    env.import_to_card("cv25519");
    env.gpg_knows_the_card_key();
    let enc = env.gpg(
        &[
            "-a",
            "--cipher-algo",
            "CAST5",
            "-e",
            "-r",
            "cv25519@cardecrypt.test",
        ],
        b"an old archive\n",
    );
    assert_ok(&enc, "gpg -e with CAST5");
    let mut mail = b"From: a@example.org\nSubject: old\nContent-Type: text/plain\n\n".to_vec();
    mail.extend_from_slice(&enc.stdout);
    let out = env.cardecrypt_with_pin(&["mail"], &mail);
    assert_ok(&out, "cardecrypt mail");
    assert!(
        text(&out.stdout).contains("an old archive"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("note: encrypted with CAST5"),
        "{}",
        text(&out.stderr)
    );
    env.stop_gpg();
}

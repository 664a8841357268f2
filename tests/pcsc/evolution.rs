//! The real Evolution (Debian's 3.46) under Xvfb, with no scdaemon: its mail store (Camel)
//! runs `gpg` from PATH with its own command line (`--command-fd`, `--photo-viewer`, ...). A
//! PGP/MIME card message selected in a Maildir account is decrypted (Evolution's security row
//! says "GPG encrypted", the PIN from pinentry) and a tampered one is refused with
//! cardecrypt-gpg's reason; messages are selected and read through AT-SPI.

use super::*;
use crate::{
    desktop::Bus,
    front_end::{lock_card, FrontEnd},
    screen::{atspi, card_emails, shown_chrome, shown_text, Group, Xvfb},
};

const SECRET: &str = "The Evolution secret, decrypted by the card.";
/// Evolution's security row for a message it decrypted.
const DECRYPTED: &str = "Security:\nGPG encrypted";
/// What Evolution writes where an encrypted part did not decrypt.
const REFUSED: &str = "Could not parse PGP/MIME message";

/// Evolution's settings and sources under `root`: a Maildir account ("Card mail") at
/// `root/Maildir` with `messages` in its inbox, an identity and a sendmail transport (so no
/// first-run assistant), and no "default mail client" question.
fn configure(root: &Path, messages: &[(&str, Vec<u8>)]) {
    let maildir = root.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    for (name, message) in messages {
        std::fs::write(maildir.join("cur").join(format!("{name}:2,S")), message).expect("mail");
    }
    let sources = root.join("config/evolution/sources");
    std::fs::create_dir_all(&sources).expect("sources");
    let source = |uid: &str, parent: &str, body: &str| {
        std::fs::write(
            sources.join(format!("{uid}.source")),
            format!(
                "[Data Source]\nDisplayName=Card mail\nEnabled=true\nParent={parent}\n\n{body}"
            ),
        )
        .expect("source");
    };
    source(
        "card-account",
        "",
        &format!(
            "[Mail Account]\nBackendName=maildir\nIdentityUid=card-identity\n\
             NeedsInitialSetup=false\n\n[Maildir Backend]\nPath={}\n",
            maildir.display()
        ),
    );
    source(
        "card-identity",
        "card-account",
        "[Mail Identity]\nAddress=bob@example.org\nName=Bob\n\n\
         [Mail Submission]\nTransportUid=card-transport\n",
    );
    source(
        "card-transport",
        "card-account",
        "[Mail Transport]\nBackendName=sendmail\n",
    );
    let settings = root.join("config/glib-2.0/settings");
    std::fs::create_dir_all(&settings).expect("settings");
    std::fs::write(
        settings.join("keyfile"),
        // The message view beside the list (with no window manager the list would take it).
        "[org/gnome/evolution/mail]\nprompt-check-if-default-mailer=false\nlayout=1\n",
    )
    .expect("keyfile");
    std::fs::create_dir_all(root.join("data/evolution/preview-plugins")).expect("data");
    std::fs::create_dir_all(root.join("home")).expect("home");
}

/// Selects the message with `subject` and waits until its view says how decryption went:
/// the security row, or Evolution's refusal; returns the text shown.
fn open(env: &Env, bus: &str, subject: &str) -> String {
    let selected = atspi(env, bus, "select", "evolution", subject);
    assert!(selected.contains("True"), "no message {subject} to select");
    // WebKit builds a page's accessible tree when first asked: ask once it had time to load.
    std::thread::sleep(Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = shown_text(env, bus, "evolution");
        let viewed = shown.contains(&format!("Subject:\n{subject}\n"));
        let done = shown.contains(DECRYPTED) || shown.contains(REFUSED);
        if (viewed && done) || Instant::now() > deadline {
            return shown;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub fn evolution_decrypts_a_card_message_and_refuses_a_tampered_one(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "evolution");
    let (good, tampered) = card_emails(&front, "evolution", SECRET);
    let root = env.path("evolution");
    configure(&root, &[("1", tampered), ("2", good)]);
    let dirs = [
        ("XDG_CONFIG_HOME", root.join("config")),
        ("XDG_DATA_HOME", root.join("data")),
        ("HOME", root.join("home")),
        ("XDG_RUNTIME_DIR", env.path("run")),
    ];
    let vars: Vec<(&str, &Path)> = dirs.iter().map(|(k, v)| (*k, v.as_path())).collect();
    // The data server the bus starts reads the same sources.
    let bus = Bus::start_with(&vars);
    let xvfb = Xvfb::start();
    lock_card(env);
    let mut cmd = Command::new("evolution");
    front
        .client(env, &mut cmd)
        .envs(vars.iter().copied())
        .env("GSETTINGS_BACKEND", "keyfile")
        .env("DISPLAY", &xvfb.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        // WebKit's bubblewrap sandbox cannot set up its web process here (a container, as
        // root, with the tests' own XDG_RUNTIME_DIR): every message part would load empty.
        // A desktop session has what it needs; the sandbox is not what is under test.
        .env("WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS", "1");
    // The first start with a size (no window manager sizes it); later calls reach it.
    let mut start = Command::new("evolution");
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => start.env(name, value),
            None => start.env_remove(name),
        };
    }
    start.arg("--geometry=1200x1000+0+0");
    let _evolution = Group::start(&mut start, &env.path("evolution.log"));
    let log = || std::fs::read_to_string(env.path("evolution.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !shown_chrome(env, &bus.address, "evolution").contains("Card mail") {
        assert!(
            Instant::now() < deadline,
            "Evolution did not start:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Its running instance shows the account's inbox.
    let shown = run(
        cmd.arg("folder://card-account/Inbox")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    assert_ok(&shown, "evolution folder://");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !shown_chrome(env, &bus.address, "evolution").contains("tampered") {
        assert!(Instant::now() < deadline, "no inbox:\n{}", log());
        std::thread::sleep(Duration::from_millis(300));
    }

    // The tampered one first: a refusal must not be read off a previous message's view.
    let refused = open(env, &bus.address, "tampered");
    assert!(
        refused.contains(REFUSED),
        "Evolution showed:\n{refused}\n{}",
        log()
    );
    assert!(
        refused.contains("cardecrypt-gpg: decryption failed"),
        "our one-line reason is shown:\n{refused}"
    );
    assert!(!refused.contains(SECRET), "tampered, shown:\n{refused}");

    lock_card(env);
    let asked = front.pinentry_asks();
    let shown = open(env, &bus.address, "evolution");
    // Under Xvfb here the message body (a WebKit frame of its own) renders empty, for the real
    // gpg's messages too, so the case reads the security row Evolution writes once its gpg
    // context accepted the decryption (exit status, status lines, a MIME part to show).
    assert!(
        shown.contains(DECRYPTED),
        "Evolution showed:\n{shown}\n{}",
        log()
    );
    assert!(!shown.contains(REFUSED), "Evolution refused:\n{shown}");
    // Evolution passes --command-fd without --pinentry-mode loopback: as with gpg, the PIN
    // comes from pinentry, not from Evolution's passphrase dialog.
    assert_eq!(
        front.pinentry_asks(),
        asked + 1,
        "the PIN came from the pinentry"
    );
}

//! The real Claws Mail (Debian's 4.1 with its PGP/MIME plugin) under Xvfb, with no scdaemon:
//! it finds cardecrypt-gpg through GPGME (gpgconf on PATH) and passes a passphrase callback,
//! so the PIN must come from the pinentry, not from a Claws dialog. A PGP/MIME card message
//! selected in its inbox is shown decrypted and a tampered one is refused; what the window
//! shows is read through AT-SPI.

use super::*;
use crate::{
    desktop::Bus,
    front_end::{lock_card, FrontEnd},
    screen::{card_emails, wait_shown, Group, Xvfb},
};

const SECRET: &str = "The Claws secret, decrypted by the card.";
/// What Claws writes where a part did not decrypt.
const REFUSED: &str = "Couldn't decrypt";

/// The directory of Debian's Claws Mail plugins (its name carries the architecture).
fn plugin_dir() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .flatten()
        .map(|e| e.path().join("claws-mail/plugins"))
        .find(|d| d.join("pgpmime.so").exists())
        .expect("claws-mail-pgpmime (scripts/test.sh installs it)")
}

/// A Claws configuration: one account, an MH mailbox whose inbox holds `messages` as 1, 2,
/// ..., and the PGP plugins loaded.
fn configure(env: &Env, messages: &[&[u8]]) -> PathBuf {
    let config = env.path("claws-config");
    let mailbox = env.path("claws-Mail");
    for folder in ["inbox", "sent", "queue", "draft", "trash"] {
        std::fs::create_dir_all(mailbox.join(folder)).expect("mailbox");
    }
    for (n, message) in messages.iter().enumerate() {
        std::fs::write(mailbox.join("inbox").join((n + 1).to_string()), message).expect("mail");
    }
    std::fs::create_dir_all(&config).expect("config");
    let folders: String = [
        ("inbox", "inbox"),
        ("outbox", "sent"),
        ("queue", "queue"),
        ("draft", "draft"),
        ("trash", "trash"),
    ]
    .iter()
    .map(|(kind, name)| {
        format!("    <folderitem type=\"{kind}\" name=\"{name}\" path=\"{name}\" />\n")
    })
    .collect();
    std::fs::write(
        config.join("folderlist.xml"),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<folderlist>\n  <folder type=\"mh\" \
             name=\"Mailbox\" path=\"{}\" collapsed=\"0\">\n{folders}  </folder>\n</folderlist>\n",
            mailbox.display()
        ),
    )
    .expect("folderlist");
    std::fs::write(
        config.join("accountrc"),
        "[Account: 1]\naccount_name=Bob\nis_default=1\nname=Bob\naddress=bob@example.org\n\
         inbox=#mh/Mailbox/inbox\n",
    )
    .expect("accountrc");
    let plugins = plugin_dir();
    std::fs::write(
        config.join("clawsrc"),
        format!(
            "[Plugins_GTK3]\n{}\n{}\n\n",
            plugins.join("pgpcore.so").display(),
            plugins.join("pgpmime.so").display()
        ),
    )
    .expect("clawsrc");
    config
}

/// Claws with `front`'s PATH, pinentry and gpg home, on `display` and the session bus `bus`.
fn claws(env: &Env, front: &FrontEnd, config: &Path, display: &str, bus: &str) -> Command {
    let mut cmd = Command::new("claws-mail");
    front
        .client(env, &mut cmd)
        .arg("--alternate-config-dir")
        .arg(config)
        .env("DISPLAY", display)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env("HOME", env.path("claws-home"));
    cmd
}

pub fn claws_mail_shows_a_card_message(env: &Env) {
    env.import_to_card("cv25519");
    let front = FrontEnd::new(env, "claws");
    let (good, tampered) = card_emails(&front, "claws", SECRET);
    let config = configure(env, &[&tampered, &good]);
    std::fs::create_dir_all(env.path("claws-home")).expect("home");

    let xvfb = Xvfb::start();
    let bus = Bus::start();
    lock_card(env);
    let _claws = Group::start(
        &mut claws(env, &front, &config, &xvfb.display, &bus.address),
        &env.path("claws.log"),
    );
    let log = || std::fs::read_to_string(env.path("claws.log")).unwrap_or_default();
    let started = wait_shown(env, &bus.address, "claws-mail", |t| t.contains("Get Mail"));
    assert!(
        started.contains("Get Mail"),
        "Claws did not start:\n{started}\n{}",
        log()
    );

    let select = |n: u32| {
        let out = run(
            claws(env, &front, &config, &xvfb.display, &bus.address)
                .arg("--select")
                .arg(format!("#mh/Mailbox/inbox/{n}")),
            b"",
        );
        assert_ok(&out, "claws-mail --select");
    };
    // The tampered one first: a refusal must not be read off a previous message's view.
    select(1);
    let refused = wait_shown(env, &bus.address, "claws-mail", |t| t.contains(REFUSED));
    assert!(
        refused.contains(REFUSED),
        "Claws showed:\n{refused}\n{}",
        log()
    );
    assert!(
        !refused.contains("Claws secret"),
        "tampered, shown:\n{refused}"
    );

    lock_card(env);
    let asked = front.pinentry_asks();
    select(2);
    let shown = wait_shown(env, &bus.address, "claws-mail", |t| t.contains(SECRET));
    assert!(shown.contains(SECRET), "Claws showed:\n{shown}\n{}", log());
    assert_eq!(
        front.pinentry_asks(),
        asked + 1,
        "the PIN came from the pinentry"
    );
}

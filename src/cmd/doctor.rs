//! `cardecrypt doctor`: checks what decryption with a card depends on, and says how to fix
//! what is wrong. One line per finding: `ok`, `warn` or `fail`, then the fix.

use std::path::{Path, PathBuf};

use crate::{
    card::{self, link::ApduCounter, pcsc_backend, CardInfo, PcscSource},
    error::{Error, Result},
};

#[derive(Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}

fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

pub fn run() -> Result<()> {
    let findings = check_all();
    let mut failed = false;
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                failed = true;
                "FAIL"
            }
        };
        super::print(&format!("{tag}  {}\n", f.what))?;
        if let Some(fix) = &f.fix {
            super::print(&format!("      fix: {fix}\n"))?;
        }
    }
    if failed {
        return Err(Error::Other("doctor found problems (see above)".into()));
    }
    Ok(())
}

pub fn check_all() -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(check_pcsc());
    out.push(check_udev(
        Path::new("/etc/udev/rules.d"),
        Path::new("/lib/udev/rules.d"),
    ));
    out.push(check_pinentry());
    let (front_end, findings) = check_gpg_front_end();
    out.extend(findings);
    if let Some(home) = std::env::var_os("HOME") {
        out.extend(check_mail_clients_with(Path::new(&home), front_end));
    }
    out
}

fn check_pcsc() -> Vec<Finding> {
    let mut out = Vec::new();
    let installed = ["/usr/sbin/pcscd", "/usr/bin/pcscd", "/sbin/pcscd"]
        .iter()
        .any(|p| Path::new(p).exists());
    let (ctx, readers) = match pcsc_backend::readers() {
        Ok(r) => r,
        Err(_) if !installed => {
            out.push(fail("pcscd is not installed", "sudo apt install pcscd"));
            return out;
        }
        Err(_) => {
            out.push(fail(
                "pcscd is installed but not running",
                "sudo systemctl enable --now pcscd.socket",
            ));
            return out;
        }
    };
    out.push(ok("pcscd is running"));
    drop(ctx);
    if readers.is_empty() {
        out.push(fail(
            "no smartcard reader is visible",
            "plug in your security key; install the udev rules (see below) and re-plug it",
        ));
        return out;
    }
    for reader in &readers {
        out.push(ok(format!("reader: {}", reader.to_string_lossy())));
    }
    out.extend(check_cards());
    out
}

fn check_cards() -> Vec<Finding> {
    let mut out = Vec::new();
    let counter = ApduCounter::default();
    let cards = match card::open_all(&mut PcscSource::default(), &counter, false) {
        Ok(c) => c,
        Err(Error::CardBusy { reader }) => {
            return vec![fail(
                format!("the card in \"{reader}\" is held exclusively by another program"),
                "if it is gpg: `gpgconf --kill scdaemon`, and put `disable-ccid` and \
                 `pcsc-shared` in ~/.gnupg/scdaemon.conf",
            )]
        }
        Err(e) => return vec![fail(e.to_string(), e.hint().unwrap_or_default())],
    };
    for mut open in cards {
        let Ok(mut tx) = open.card.transaction() else {
            continue;
        };
        let Ok(info) = CardInfo::read(&mut tx) else {
            continue;
        };
        let id = &info.ident;
        match &info.decryption {
            Some(slot) => out.push(ok(format!(
                "card {id} in \"{}\": decryption key {:X} ({})",
                open.reader, slot.fingerprint, slot.algorithm
            ))),
            None => out.push(warn(
                format!("card {id} has no decryption key"),
                "cardecrypt card generate ..., or cardecrypt card import KEYFILE",
            )),
        }
        match info.pw1_tries {
            0 => out.push(fail(
                format!("card {id}: the user PIN is blocked"),
                "cardecrypt card pin unblock-user",
            )),
            1 | 2 => out.push(warn(
                format!("card {id}: only {} user PIN tries left", info.pw1_tries),
                "enter the PIN carefully; a correct PIN resets the counter",
            )),
            _ => out.push(ok(format!(
                "card {id}: {} user PIN tries left",
                info.pw1_tries
            ))),
        }
        if info.touch_for_decrypt {
            out.push(ok(format!("card {id}: decryption needs a touch")));
        }
    }
    out
}

/// Are rules installed that give the logged-in user the YubiKey/Nitrokey USB devices?
pub fn check_udev(etc: &Path, lib: &Path) -> Finding {
    let mentions = |dir: &Path| -> bool {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries.flatten().any(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| {
                        t.contains("uaccess") && (t.contains("1050") || t.contains("20a0"))
                    })
                })
            })
            .unwrap_or(false)
    };
    if mentions(etc) || mentions(lib) {
        ok("udev rules for YubiKey/Nitrokey are installed")
    } else {
        warn(
            "no udev rules give you access to YubiKey/Nitrokey devices",
            "sudo install -m 644 udev/60-cardecrypt.rules /etc/udev/rules.d/ && sudo udevadm \
             control --reload && sudo udevadm trigger",
        )
    }
}

/// Mail clients own stdin: without a pinentry, only a PIN file or a still-unlocked card
/// works there.
fn check_pinentry() -> Finding {
    let config = crate::config::Config::load().unwrap_or_default();
    match crate::prompt::named_pinentry(config.pinentry.as_deref()) {
        Some(p) if p.is_file() => ok(format!("pinentry: {}", p.display())),
        Some(p) => fail(
            format!(
                "pinentry {} (PINENTRY_PROGRAM or config) does not exist",
                p.display()
            ),
            "name an installed pinentry, e.g. /usr/bin/pinentry-curses",
        ),
        None => match crate::prompt::pinentry_on_path() {
            Some(p) => ok(format!(
                "pinentry: {} (asks for the PIN when a mail client runs cardecrypt)",
                std::fs::canonicalize(&p).unwrap_or(p).display()
            )),
            None => warn(
                "no pinentry program: under a mail client cardecrypt cannot ask for the PIN",
                "install one (`sudo apt install pinentry-curses` or pinentry-gnome3), or give \
                 --pin-file, or use --keep-unlocked after unlocking from a terminal",
            ),
        },
    }
}

/// Reads mutt/neomutt configuration files we know of and checks the decrypt setup.
/// Whether the gpg on PATH and the gpg GPGME runs (gpgconf's `gpg:` line) are
/// cardecrypt-gpg; returns whether GPGME clients reach the card through it.
pub fn check_gpg_front_end() -> (bool, Vec<Finding>) {
    use crate::gpg::{real, shim};
    let mut out = Vec::new();
    let install = "cardecrypt gpg-shim install (puts gpg and gpgconf links in ~/.local/bin; \
                   that directory must come first on PATH)";
    match shim::first_on_path("gpg") {
        Some(gpg) if real::is_front_end(&gpg) => {
            let configured = crate::config::Config::load().ok().and_then(|c| c.real_gpg);
            match real::find(real::Program::Gpg, configured.as_deref()) {
                Ok(real) => out.push(ok(format!(
                    "gpg on PATH is cardecrypt-gpg ({}); everything but card decryption goes \
                     to {}",
                    gpg.display(),
                    real.display()
                ))),
                Err(e) => out.push(warn(
                    e.to_string(),
                    "point real-gpg (config) or CARDECRYPT_REAL_GPG at /usr/bin/gpg",
                )),
            }
        }
        Some(gpg) => out.push(warn(
            format!(
                "gpg on PATH is {}: clients that run gpg themselves (Emacs, Evolution, aerc) \
                 cannot use the card through cardecrypt",
                gpg.display()
            ),
            install,
        )),
        None => out.push(warn("no gpg on PATH", install)),
    }
    let gpgme_gpg = shim::first_on_path("gpgconf").and_then(|gpgconf| {
        let out = std::process::Command::new(gpgconf)
            .arg("--list-components")
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("gpg:")?.split(':').nth(1).map(PathBuf::from))
    });
    let front_end = match gpgme_gpg {
        Some(gpg) if real::is_front_end(&gpg) => {
            out.push(ok(format!(
                "GPGME (Thunderbird, neomutt, notmuch, KMail, Claws) runs cardecrypt-gpg ({})",
                gpg.display()
            )));
            true
        }
        Some(gpg) => {
            out.push(warn(
                format!(
                    "GPGME runs {} (from gpgconf): GPGME clients cannot use the card through \
                     cardecrypt",
                    gpg.display()
                ),
                install,
            ));
            false
        }
        None => {
            out.push(warn(
                "no gpgconf on PATH: GPGME falls back to gpg on PATH",
                install,
            ));
            false
        }
    };
    (front_end, out)
}

pub fn check_mail_clients(home: &Path) -> Vec<Finding> {
    check_mail_clients_with(home, false)
}

/// The mail clients' settings in `home`; `front_end` says GPGME runs cardecrypt-gpg.
pub fn check_mail_clients_with(home: &Path, front_end: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let files: [(&str, PathBuf); 4] = [
        ("neomutt", home.join(".neomuttrc")),
        ("neomutt", home.join(".config/neomutt/neomuttrc")),
        ("mutt", home.join(".muttrc")),
        ("mutt", home.join(".config/mutt/muttrc")),
    ];
    for (client, file) in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .collect();
        let uses_cardecrypt = lines
            .iter()
            .any(|l| l.contains("pgp_decrypt_command") && l.contains("cardecrypt"));
        let name = file.display();
        // neomutt uses GPGME unless told otherwise, and then ignores pgp_decrypt_command.
        let gpgme_off = lines.iter().any(|l| {
            l.starts_with("unset crypt_use_gpgme")
                || l.replace(' ', "").starts_with("setcrypt_use_gpgme=no")
        });
        if client == "neomutt" && !gpgme_off && front_end {
            out.push(ok(format!(
                "{name}: neomutt uses GPGME, which runs cardecrypt-gpg"
            )));
            continue;
        }
        if !uses_cardecrypt {
            out.push(warn(
                format!("{name}: {client} does not use cardecrypt to decrypt"),
                "see README, \"Mail clients\"",
            ));
            continue;
        }
        if client == "neomutt" && !gpgme_off {
            out.push(fail(
                format!("{name}: neomutt uses GPGME, so it never calls cardecrypt"),
                "add `unset crypt_use_gpgme`, or run `cardecrypt gpg-shim install`",
            ));
        } else if !lines.iter().any(|l| l.contains("--status-fd")) {
            out.push(warn(
                format!("{name}: the decrypt command has no --status-fd"),
                "use --status-fd=2 so the client can tell success from failure",
            ));
        } else {
            out.push(ok(format!("{name}: {client} decrypts with cardecrypt")));
        }
        // Inline ("traditional") messages go through pgp_decode_command, and only when
        // pgp_auto_decode is set does the client look for them in text/plain parts.
        let decodes = lines
            .iter()
            .any(|l| l.contains("pgp_decode_command") && l.contains("cardecrypt"));
        let auto_decode = lines.iter().any(|l| {
            let l = l.replace(' ', "");
            l == "setpgp_auto_decode" || l.starts_with("setpgp_auto_decode=yes")
        });
        if !decodes || !auto_decode {
            out.push(warn(
                format!("{name}: inline (non-MIME) PGP messages will stay encrypted on screen"),
                "set pgp_decode_command to the same cardecrypt command and add \
                 `set pgp_auto_decode=yes`",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neomutt_with_gpgme_is_reported_and_classic_mode_is_fine() {
        let home = tempfile::tempdir().expect("tempdir");
        let rc = home.path().join(".neomuttrc");
        std::fs::write(
            &rc,
            "set pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
        )
        .expect("write");
        let f = check_mail_clients(home.path());
        assert_eq!(f[0].level, Level::Fail, "{}", f[0].what);
        std::fs::write(
            &rc,
            "unset crypt_use_gpgme\nset pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n",
        )
        .expect("write");
        let f = check_mail_clients(home.path());
        assert_eq!(f[0].level, Level::Ok);
        assert!(f[1].what.contains("inline"), "{}", f[1].what);
        std::fs::write(
            &rc,
            "unset crypt_use_gpgme\nset pgp_decrypt_command=\"cardecrypt --status-fd=2 %f\"\n\
             set pgp_decode_command=\"cardecrypt --status-fd=2 %f\"\nset pgp_auto_decode = yes\n",
        )
        .expect("write");
        assert_eq!(check_mail_clients(home.path()).len(), 1);
        std::fs::write(&rc, "set pgp_decrypt_command=\"gpg -d %f\"\n").expect("write");
        assert_eq!(check_mail_clients(home.path())[0].level, Level::Warn);
    }

    #[test]
    fn udev_rules_are_found_by_content() {
        let etc = tempfile::tempdir().expect("tempdir");
        let lib = tempfile::tempdir().expect("tempdir");
        assert_eq!(check_udev(etc.path(), lib.path()).level, Level::Warn);
        std::fs::write(
            etc.path().join("70-keys.rules"),
            "SUBSYSTEM==\"usb\", ATTRS{idVendor}==\"1050\", TAG+=\"uaccess\"\n",
        )
        .expect("write");
        assert_eq!(check_udev(etc.path(), lib.path()).level, Level::Ok);
    }
}

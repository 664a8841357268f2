//! How the command line asks the user for a PIN: a pinentry program, the controlling
//! terminal, or the caller itself through gpg's loopback protocol (`--command-fd`).

use std::{io::IsTerminal, path::PathBuf};

use secrecy::SecretString;

use crate::{
    error::{Error, Result},
    gpg_status::{Status, StatusWriter},
    ui::Interaction,
};

/// Asks for PINs the way a mail client's child process can: never on stdin (mail clients
/// own it). Notes go to stderr.
///
/// Which way: a pinentry named by `PINENTRY_PROGRAM` or the config file, always; otherwise
/// the terminal when stdin is one (a person at a shell), else the `pinentry` program (a
/// mail client called us; its terminal may be in curses mode), else the terminal.
#[derive(Default)]
pub struct Prompter {
    /// `pinentry` from the config file.
    pub pinentry: Option<PathBuf>,
    /// gpg's loopback protocol, when the caller asked for it; it then answers for the user.
    pub loopback: Option<Loopback>,
    /// Never the terminal, only a pinentry: the gpg front end's callers (GPGME) own it.
    pub pinentry_only: bool,
    /// The terminal a pinentry should use (GPGME's `--ttyname`), before `GPG_TTY`.
    pub tty_name: Option<String>,
    /// The desktop notification while the card waits for a touch.
    pub notice: Option<crate::desktop::Notice>,
}

/// gpg's command-descriptor protocol (`--command-fd N`, as Emacs EasyPG and Evolution
/// speak it): the PIN is requested with `NEED_PASSPHRASE_PIN` and `GET_HIDDEN
/// passphrase.enter` on the status descriptor and read as one line from descriptor N.
pub struct Loopback {
    pub status_fd: Option<i32>,
    pub command_fd: i32,
    /// The PIN was requested (the final status lines need not announce it again).
    pub asked: bool,
}

impl Loopback {
    fn ask(&mut self, ident: &str) -> Result<SecretString> {
        use std::io::Read;
        self.asked = true;
        let mut status = StatusWriter::open(self.status_fd)?;
        status.write(&Status::NeedPassphrasePin {
            aid: ident.to_string(),
        });
        status.write(&Status::GetHidden("passphrase.enter"));
        let what = format!("cannot read the PIN from --command-fd {}", self.command_fd);
        let unavailable = |e: std::io::Error| Error::PinUnavailable(format!("{what}: {e}"));
        let mut command = crate::paths::open_fd(self.command_fd, false).map_err(unavailable)?;
        // One byte at a time: whatever follows the line is not ours to consume.
        let max = crate::card::pin::MAX_PIN_LINE;
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(max));
        let mut byte = [0u8; 1];
        while command.read(&mut byte).map_err(unavailable)? == 1 && byte[0] != b'\n' {
            if line.len() == max {
                return Err(Error::PinUnavailable(format!(
                    "{what}: the line is longer than any PIN"
                )));
            }
            line.push(byte[0]);
        }
        status.write(&Status::GotIt);
        crate::card::pin::first_line_pin(&line, &what)
    }
}

enum Asker {
    Pinentry(PathBuf),
    Tty,
}

impl Prompter {
    fn asker(&self) -> Option<Asker> {
        if let Some(program) = named_pinentry(self.pinentry.as_deref()) {
            return Some(Asker::Pinentry(program));
        }
        if self.pinentry_only {
            return pinentry_on_path().map(Asker::Pinentry);
        }
        let tty = std::fs::File::open("/dev/tty").is_ok();
        if tty && std::io::stdin().is_terminal() {
            return Some(Asker::Tty);
        }
        if let Some(program) = pinentry_on_path() {
            return Some(Asker::Pinentry(program));
        }
        tty.then_some(Asker::Tty)
    }
}

/// The pinentry the user named (`PINENTRY_PROGRAM`, else `configured` from the config
/// file): always used when there is one.
pub fn named_pinentry(configured: Option<&std::path::Path>) -> Option<PathBuf> {
    std::env::var_os("PINENTRY_PROGRAM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.map(PathBuf::from))
}

/// `pinentry` found on PATH: used when a mail client owns stdin. Only absolute entries count:
/// an empty or relative one would run whatever `pinentry` sits in the current directory (a
/// mail folder, a download) and hand it the PIN.
pub fn pinentry_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("pinentry"))
        .find(|p| p.is_file())
}

impl Interaction for Prompter {
    fn user_pin(&mut self, ident: &str, tries_left: u8) -> Result<SecretString> {
        if let Some(loopback) = &mut self.loopback {
            return loopback.ask(ident);
        }
        match self.asker() {
            Some(Asker::Pinentry(program)) => {
                pinentry_pin(&program, ident, tries_left, self.tty_name.clone())
            }
            Some(Asker::Tty) => {
                let prompt = format!("PIN for card {ident} ({tries_left} tries left): ");
                rpassword::prompt_password(prompt)
                    .map(|mut typed| {
                        // Copied once into its own allocation; the String is wiped.
                        let pin = SecretString::from(typed.as_str());
                        zeroize::Zeroize::zeroize(&mut typed);
                        pin
                    })
                    .map_err(|e| {
                        Error::PinUnavailable(format!("and the terminal cannot ask for it ({e})"))
                    })
            }
            None => Err(Error::PinUnavailable(
                "and there is no terminal and no pinentry program to ask for it".into(),
            )),
        }
    }

    fn touch(&mut self, ident: &str) {
        eprintln!("cardecrypt: touch your card {ident} to decrypt");
        // Mail clients show no stderr: the desktop says it, once the wait is noticeable.
        if self.pinentry_only || !std::io::stderr().is_terminal() {
            self.notice = Some(crate::desktop::Notice::after(
                crate::desktop::NOTICE_DELAY,
                "Touch your OpenPGP card".into(),
                format!("The card {ident} waits for a touch to decrypt a message."),
            ));
        }
    }

    fn touch_done(&mut self) {
        self.notice = None;
    }

    fn note(&mut self, message: &str) {
        eprintln!("cardecrypt: {message}");
    }
}

/// One PIN through the pinentry protocol; the terminal is `GPG_TTY` when set (as for
/// gpg-agent), else the controlling terminal; graphical pinentries use `DISPLAY`.
fn pinentry_pin(
    program: &std::path::Path,
    ident: &str,
    tries_left: u8,
    tty_name: Option<String>,
) -> Result<SecretString> {
    let Some(mut input) = pinentry::PassphraseInput::with_binary(program) else {
        return Err(Error::PinUnavailable(format!(
            "and the pinentry program {} cannot be run",
            program.display()
        )));
    };
    let description = format!(
        "Please unlock the OpenPGP card {ident} to decrypt a message.\n\
         {tries_left} PIN tries left before the card blocks."
    );
    let gpg_tty = tty_name.or_else(|| std::env::var("GPG_TTY").ok());
    let mut options = pinentry::unix::Options::builder();
    if let Some(tty) = gpg_tty.as_deref().filter(|t| !t.is_empty()) {
        options = options.tty_name(tty);
    }
    input
        .with_title("cardecrypt")
        .with_description(&description)
        .with_prompt("PIN")
        .required("The PIN cannot be empty.")
        .with_unix_options(options.build());
    input.interact().map_err(|e| match e {
        pinentry::Error::Cancelled => Error::PinUnavailable("and entering it was cancelled".into()),
        pinentry::Error::Timeout => Error::PinUnavailable("and pinentry timed out".into()),
        other => Error::PinUnavailable(format!(
            "and pinentry {} failed: {other}",
            program.display()
        )),
    })
}

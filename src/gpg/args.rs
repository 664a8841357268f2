//! gpg's command line, as far as the front end needs to know it: is this a decryption it can
//! do itself, and with which input, output, descriptors and PIN settings.
//!
//! Anything it does not recognise makes the call "someone else's": the real gpg gets it
//! unchanged. So an option added by a future GPGME is never misread, only forwarded.

use std::ffi::OsString;

use super::options::{FLAGS, WITH_VALUE};

/// Where the ciphertext comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    /// `-&N` with `--enable-special-filenames`.
    Fd(i32),
    Path(std::path::PathBuf),
}

/// A decryption the front end may do itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecryptCall {
    pub source: Option<Source>,
    /// `--output`; `-` is standard output.
    pub output: Option<String>,
    /// No `--decrypt`: gpg's implicit command on a file.
    pub implicit: bool,
    pub unwrap: bool,
    /// `--show-session-key`: a SESSION_KEY status line (notmuch stashes it).
    pub show_session_key: bool,
    /// A signing call (`--sign`, `--detach-sign`, `--clearsign`) instead of a decryption.
    pub sign: Option<SignMode>,
    /// `-u`/`--local-user`/`--default-key`: the key to sign with.
    pub local_user: Vec<String>,
    /// `--encrypt` with a signing command: sign here, then the real gpg encrypts the signed
    /// packets (recipients, trust and keyring stay gpg's).
    pub encrypt: bool,
    /// `--armor`, `--textmode`: how a signature is written.
    pub armor: bool,
    pub textmode: bool,
    pub status_fd: Option<i32>,
    pub command_fd: Option<i32>,
    pub passphrase_fd: Option<i32>,
    pub pinentry_mode: Option<String>,
    pub batch: bool,
    pub yes: bool,
    pub homedir: Option<String>,
    pub ttyname: Option<String>,
    pub display: Option<String>,
    pub lc_ctype: Option<String>,
    pub lc_messages: Option<String>,
    /// Options to hand on to the real gpg when it checks the signatures inside (trust
    /// settings, keyrings, the home directory).
    pub verify_options: Vec<String>,
    /// Where in argv the source is (the index of `-&N`, `-` or the file), to point the real
    /// gpg at a copy when the message turns out not to be for a card.
    pub source_index: Option<usize>,
}

/// Which signature a signing call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMode {
    /// `--sign`: the data inside a signed message.
    Inline,
    /// `--detach-sign`: the signature alone.
    Detached,
    /// `--clearsign`: the text readable, the signature below it.
    Clear,
}

/// What a gpg command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    Decrypt(Box<DecryptCall>),
    /// A signature, which a card's signature key may make (`DecryptCall::sign` says which).
    Sign(Box<DecryptCall>),
    /// `--version`: the real gpg's answer, with a line naming cardecrypt.
    Version,
    /// `--list-config` (EasyPG reads `cfg:version`): likewise.
    ListConfig,
    /// `--list-secret-keys --with-colons` (GPGME's secret key lookup): the real gpg's
    /// listing with the keys on present cards added.
    ListSecretKeys,
    /// Everything else: the real gpg, unchanged.
    Forward,
}

/// Reads gpg's argv (without the program name).
pub fn parse(args: &[OsString]) -> Call {
    let mut call = DecryptCall::default();
    let mut command: Option<&str> = None;
    let mut special_filenames = false;
    let mut with_colons = false;
    let mut files = Vec::new();
    let mut i = 0;
    let text: Vec<Option<&str>> = args.iter().map(|a| a.to_str()).collect();
    let mut options_done = false;
    while i < args.len() {
        let Some(arg) = text[i] else {
            // Not UTF-8: nothing the front end handles.
            return Call::Forward;
        };
        if options_done || arg == "-" || !arg.starts_with('-') || arg.starts_with("-&") {
            files.push((i, arg));
            i += 1;
            continue;
        }
        if arg == "--" {
            options_done = true;
            i += 1;
            continue;
        }
        let (name, inline_value) = match arg.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            },
            None => match arg {
                "-d" => ("decrypt", None),
                "-o" => ("output", None),
                "-q" => ("quiet", None),
                "-v" => ("verbose", None),
                "-a" => ("armor", None),
                "-s" => ("sign", None),
                "-b" => ("detach-sign", None),
                "-t" => ("textmode", None),
                "-u" => ("local-user", None),
                "-K" => ("list-secret-keys", None),
                "-e" => ("encrypt", None),
                "-r" => ("recipient", None),
                "-R" => ("hidden-recipient", None),
                _ => return Call::Forward,
            },
        };
        match name {
            "encrypt" => call.encrypt = true,
            "decrypt" | "version" | "list-config" | "sign" | "detach-sign" | "detach"
            | "clearsign" | "clear-sign" | "list-secret-keys" => {
                // GPGME writes `--sign --detach` (gpg takes unique prefixes of options).
                let name = if name == "detach" {
                    "detach-sign"
                } else {
                    name
                };
                command = match (command, name) {
                    (None, n) => Some(n),
                    (Some(c), n) if c == n => Some(n),
                    (Some("sign"), "detach-sign") | (Some("detach-sign"), "sign") => {
                        Some("detach-sign")
                    }
                    // Two commands in one line: the real gpg says what that means.
                    _ => return Call::Forward,
                };
            }
            _ if FLAGS.binary_search(&name).is_ok() => {
                match name {
                    "batch" => call.batch = true,
                    "yes" => call.yes = true,
                    "unwrap" => call.unwrap = true,
                    "show-session-key" => call.show_session_key = true,
                    "armor" => call.armor = true,
                    "with-colons" => with_colons = true,
                    "textmode" => call.textmode = true,
                    "enable-special-filenames" => special_filenames = true,
                    "always-trust" | "no-default-keyring" | "no-auto-check-trustdb" => {
                        call.verify_options.push(format!("--{name}"))
                    }
                    _ => {}
                }
                if inline_value.is_some() {
                    return Call::Forward;
                }
            }
            _ if WITH_VALUE.binary_search(&name).is_ok() => {
                let value = match inline_value {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match text.get(i) {
                            Some(Some(v)) => v,
                            _ => return Call::Forward,
                        }
                    }
                };
                let fd = || value.parse::<i32>().ok();
                match name {
                    "status-fd" => call.status_fd = fd(),
                    "command-fd" => call.command_fd = fd(),
                    "passphrase-fd" => call.passphrase_fd = fd(),
                    "output" => call.output = Some(value.to_string()),
                    "pinentry-mode" => call.pinentry_mode = Some(value.to_string()),
                    "homedir" => {
                        call.homedir = Some(value.to_string());
                        call.verify_options.push(format!("--homedir={value}"));
                    }
                    "trust-model" | "keyring" | "trusted-key" => {
                        call.verify_options.push(format!("--{name}={value}"))
                    }
                    "ttyname" => call.ttyname = Some(value.to_string()),
                    "display" => call.display = Some(value.to_string()),
                    "lc-ctype" => call.lc_ctype = Some(value.to_string()),
                    "lc-messages" => call.lc_messages = Some(value.to_string()),
                    "local-user" | "default-key" => call.local_user.push(value.to_string()),
                    _ => {}
                }
            }
            _ => return Call::Forward,
        }
        i += 1;
    }
    // Encrypting alone is the real gpg's; with --sign the signature is the card's.
    if call.encrypt && command != Some("sign") {
        return Call::Forward;
    }
    call.sign = match command {
        Some("sign") => Some(SignMode::Inline),
        Some("detach-sign") => Some(SignMode::Detached),
        Some("clearsign" | "clear-sign") => Some(SignMode::Clear),
        _ => None,
    };
    match command {
        Some("list-secret-keys") if with_colons => return Call::ListSecretKeys,
        Some("list-secret-keys") => return Call::Forward,
        Some("version") => return Call::Version,
        Some("list-config") => return Call::ListConfig,
        Some("decrypt") => {}
        Some(_) if call.sign.is_some() => {}
        // gpg's implicit command on one file decrypts what is encrypted; we handle only
        // that form, and hand the real gpg everything else (verify, import, ...).
        None if files.len() == 1 => call.implicit = true,
        _ => return Call::Forward,
    }
    if files.len() > 1 {
        return Call::Forward;
    }
    if let Some(&(index, file)) = files.first() {
        call.source_index = Some(index);
        call.source = Some(match file {
            "-" => Source::Stdin,
            f if special_filenames && f.starts_with("-&") => match f[2..].parse() {
                Ok(fd) => Source::Fd(fd),
                Err(_) => return Call::Forward,
            },
            f => Source::Path(f.into()),
        });
    }
    // A file named only by its fd needs --enable-special-filenames; without it gpg would
    // open a file called "-&3".
    if call.implicit && !matches!(call.source, Some(Source::Path(_))) {
        return Call::Forward;
    }
    if call.sign.is_some() {
        return Call::Sign(Box::new(call));
    }
    Call::Decrypt(Box::new(call))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(line: &str) -> Call {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        parse(&args)
    }

    fn decrypt(line: &str) -> DecryptCall {
        match call(line) {
            Call::Decrypt(d) => *d,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn gpgmes_decrypt_line() {
        let d = decrypt(
            "--enable-special-filenames --pinentry-mode=ask --batch --no-sk-comments --lc-messages=C \
             --lc-ctype=C.UTF-8 --status-fd 5 --logger-fd 6 --no-tty --charset=utf8 \
             --enable-progress-filter --exit-on-status-write-error --display=:0 \
             --ttyname=/dev/pts/3 --ttytype=xterm --decrypt --unwrap --output - \
             --input-size-hint=1234 -- -&7",
        );
        assert_eq!(d.source, Some(Source::Fd(7)));
        assert_eq!(d.status_fd, Some(5));
        assert!(d.unwrap && d.batch && !d.implicit);
        assert_eq!(d.output.as_deref(), Some("-"));
        assert_eq!(d.ttyname.as_deref(), Some("/dev/pts/3"));
        assert_eq!(d.display.as_deref(), Some(":0"));
        assert_eq!(d.source_index, Some(23), "the index of -&7");
    }

    #[test]
    fn easypg_evolution_and_aerc_lines() {
        let easypg = decrypt(
            "--no-tty --status-fd 1 --yes --enable-progress-filter --command-fd 0 \
             --output out --pinentry-mode loopback --decrypt -- msg.gpg",
        );
        assert_eq!(easypg.command_fd, Some(0));
        assert_eq!(easypg.source, Some(Source::Path("msg.gpg".into())));
        let evolution = decrypt(
            "--verbose --no-secmem-warning --no-greeting --no-tty --status-fd=3 \
             --command-fd=4 --decrypt --output -",
        );
        assert_eq!(evolution.source, None);
        let aerc = decrypt("--status-fd 2 --log-file /dev/null --batch --decrypt");
        assert_eq!(aerc.status_fd, Some(2));
        // Evolution 3.46's line, photo viewer and all.
        let evolution = decrypt(
            "--verbose --no-secmem-warning --no-greeting --no-tty --status-fd=3 \
             --command-fd=4 --verify-options show-photos --photo-viewer viewer \
             --decrypt --output -",
        );
        assert_eq!(evolution.command_fd, Some(4));
    }

    #[test]
    fn session_keys_shown_here_and_given_to_the_real_gpg() {
        let d = decrypt("--show-session-key --status-fd 2 --decrypt -- msg.gpg");
        assert!(d.show_session_key);
        // With a session key given no card is needed: the real gpg decrypts it.
        for line in [
            "--override-session-key-fd 5 --decrypt -- msg.gpg",
            "--override-session-key 9:00 --decrypt msg.gpg",
        ] {
            assert_eq!(call(line), Call::Forward, "{line}");
        }
    }

    #[test]
    fn signing_calls_are_read() {
        let gpgme = match call(
            "--status-fd 3 --no-tty --charset utf8 -u ABCDEF --detach-sign --armor --textmode \
             --output - -- -",
        ) {
            Call::Sign(c) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(gpgme.sign, Some(SignMode::Detached));
        assert_eq!(gpgme.local_user, ["ABCDEF"]);
        assert!(gpgme.armor && gpgme.textmode);
        assert!(
            matches!(call("--clearsign msg"), Call::Sign(c) if c.sign == Some(SignMode::Clear))
        );
        assert!(matches!(call("-s -u x msg"), Call::Sign(c) if c.sign == Some(SignMode::Inline)));
        // GPGME's detached signature.
        let detached = "--enable-special-filenames --status-fd 4 --sign --detach --armor -- -&7";
        assert!(matches!(call(detached), Call::Sign(c) if c.sign == Some(SignMode::Detached)));
        // Encrypt and sign: signed here, encrypted by the real gpg.
        assert!(matches!(call("--sign --encrypt -r x msg"), Call::Sign(c) if c.encrypt));
        assert_eq!(call("--encrypt -r x msg"), Call::Forward);
        assert_eq!(call("--detach-sign --encrypt -r x msg"), Call::Forward);
    }

    #[test]
    fn the_implicit_command_decrypts_a_file() {
        let d = decrypt("--batch message.gpg");
        assert!(d.implicit);
        assert_eq!(call("--batch"), Call::Forward);
    }

    #[test]
    fn everything_else_is_forwarded() {
        for line in [
            "--list-keys",
            "--import key.asc",
            "-e -r alice msg",
            "--verify sig.asc data",
            "--decrypt --some-future-option msg",
            "--list-only --decrypt msg",
            "--assert-signer ABCD --decrypt msg",
            "--max-output 100 --decrypt msg",
            "--decrypt --list-keys",
            "--decrypt a b",
            "--card-status",
            "-qd msg",
        ] {
            assert_eq!(call(line), Call::Forward, "{line}");
        }
        assert_eq!(call("--version"), Call::Version);
        assert_eq!(
            call("--with-colons --list-secret-keys --with-keygrip"),
            Call::ListSecretKeys
        );
        assert_eq!(call("--list-secret-keys"), Call::Forward, "human listing");
        assert_eq!(call("--with-colons --list-config"), Call::ListConfig);
    }
}

//! A decryption as gpg would do it, but through the card: the card unwraps the session key,
//! the engine authenticates everything, and only then does anything reach the output, in
//! bounded memory at any size (a message from a descriptor is first copied into an unnamed
//! file: ciphertext, which the engine reads twice and the real gpg can be handed). The
//! signatures inside are checked by the real gpg, which reads the authenticated inner packet
//! stream, so trust and keyring are the user's gpg's; an unsigned message of mail size is
//! written without starting it (`inner`). A message that is not for a card goes to the real
//! gpg whole.

use std::{
    ffi::OsString,
    fs::File,
    io::{Seek, Write},
    path::{Path, PathBuf},
};

use super::{
    args::{DecryptCall, Source},
    inner::InnerGpg,
    order, real,
};
use crate::{
    card::{
        pin::{PinPolicy, PinSource},
        PcscSource,
    },
    config::Config,
    decrypt::{self, DecryptOptions, Report},
    engine,
    error::{Error, Result},
    gpg_status::{Status, StatusWriter},
    prompt::{Loopback, Prompter},
};

/// gpg's exit code for a failed operation.
const GPG_FAILED: u8 = 2;

/// Runs one decryption; returns the exit code, or hands the process to the real gpg.
pub fn run(call: &DecryptCall, args: &[OsString], config: &Config, real_gpg: &Path) -> u8 {
    let message = match read_message(call) {
        Ok(m) => m,
        Err(e) => return fail(call, &Report::default(), &e),
    };
    let loopback = loopback(call);
    let asked_by_caller = loopback.is_some();
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        loopback,
        pinentry_only: true,
        tty_name: call.ttyname.clone(),
        notice: None,
    };
    if let Some(display) = &call.display {
        // The pinentry we start inherits it, as gpg-agent's would.
        std::env::set_var("DISPLAY", display);
    }
    let options = DecryptOptions {
        card: super::chosen_card(),
        pin: PinPolicy {
            source: match call.passphrase_fd {
                Some(fd) => PinSource::Fd(fd),
                None => PinSource::Ask,
            },
            // gpg's `--pinentry-mode error|cancel`: never ask, fail as gpg would.
            batch: matches!(call.pinentry_mode.as_deref(), Some("error" | "cancel")),
            allow_last_try: false,
            memory: Default::default(),
        },
        trace: false,
        key_cache: crate::card::pubkey::default_cache_dir(),
        signer_certs: Vec::new(),
        spool_dir: None,
        // The inner packet stream: for --unwrap it is the output, otherwise the real gpg
        // reads it to check the signatures and writes the literal data.
        unwrap: true,
        progress: None,
        max_plaintext: crate::engine::memory::DEFAULT_LIMIT,
        show_session_key: call.show_session_key,
        // A call with a session key given goes to the real gpg, which needs no card for it.
        session_key: None,
    };
    let output = match output_path(call) {
        Ok(o) => o,
        Err(e) => return fail(call, &Report::default(), &e),
    };
    let mut report = Report::default();
    let mut source = PcscSource::keeping_pw1(keep_asked(config).is_some());
    let shared = order::status_shares_output(call, output.as_deref());
    let mut inner_gpg = InnerGpg::new(call, output.clone(), real_gpg).capturing(shared);
    let result = message
        .try_clone()
        .map_err(|e| Error::io("cannot read the message", e))
        .and_then(|copy| {
            let input = engine::Input::File(copy);
            let decrypt_to = |dest| {
                decrypt::decrypt_to(input, dest, &mut source, &mut ui, &options, &mut report)
            };
            match (&output, call.unwrap) {
                (Some(path), true) => decrypt_to(engine::Dest::File(
                    crate::output::PendingFile::create(path, call.yes)?,
                )),
                (None, true) => {
                    crate::paths::widen_pipe(std::io::stdout());
                    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
                    let n = decrypt_to(engine::Dest::Stream(&mut out))?;
                    out.flush()
                        .map_err(|e| Error::io("cannot write to standard output", e))?;
                    Ok(n)
                }
                (_, false) => decrypt_to(engine::Dest::Stream(&mut inner_gpg)),
            }
        });
    let pin_announced = asked_by_caller && ui.loopback.as_ref().is_some_and(|l| l.asked);
    let length = match result {
        Ok(length) => length,
        // No card was involved: whatever stopped us (not for a card, a password, an
        // algorithm or quirk we refuse), the real gpg gets the message and decides.
        Err(e) if not_for_a_card(&e) || report.card.is_empty() => {
            inner_gpg.abort();
            release(&mut source, false);
            return forward(call, args, &message, real_gpg);
        }
        Err(e) => {
            inner_gpg.abort();
            return fail(call, &report, &e);
        }
    };
    let kept = keep_unlocked(config, &report, &source);
    release(&mut source, kept);
    report.primary_fingerprint = order::primary_of(call, real_gpg, &report.key_fingerprint);
    let lines = report.status_lines(length, Ok(()), pin_announced);
    if call.unwrap {
        // The decrypted packet stream itself, no PLAINTEXT line (Thunderbird).
        write_status(call, &lines, &[]);
        return 0;
    }
    match inner_gpg.finish() {
        Ok(inner) => match inner.verdict() {
            Ok(()) => match &inner.captured {
                Some(plaintext) => {
                    match order::write_in_order(call, &lines, &inner.lines, plaintext) {
                        Ok(()) => inner.code,
                        Err(e) => fail(call, &report, &e),
                    }
                }
                None => {
                    write_status(call, &lines, &inner.lines);
                    inner.code
                }
            },
            Err(why) => fail(
                call,
                &report,
                &Error::Other(format!("gpg could not read the decrypted content: {why}")),
            ),
        },
        Err(e) => fail(call, &report, &e),
    }
}

/// As for `cardecrypt`: `CARDECRYPT_KEEP_UNLOCKED`, else `keep-unlocked` from the config,
/// keeps the card unlocked after a PIN was accepted. A failure to do so spoils nothing.
/// Returns whether a holder keeps the PIN.
fn keep_unlocked(config: &Config, report: &Report, source: &PcscSource) -> bool {
    let ours = source.verified_in(&report.reader);
    let keep = keep_asked(config);
    crate::card::holder::keep(&report.card, &report.reader, ours, keep).unwrap_or_else(|e| {
        eprintln!("cardecrypt-gpg: cannot keep the card unlocked: {e}");
        false
    })
}

/// How long the card is to stay unlocked after a decrypt; `None` when not at all.
fn keep_asked(config: &Config) -> Option<std::time::Duration> {
    std::env::var("CARDECRYPT_KEEP_UNLOCKED")
        .ok()
        .and_then(|v| crate::time::parse_duration(&v).ok())
        .or(config.keep_unlocked)
        .filter(|k| !k.is_zero())
}

/// The cards forget the PINs we sent (PW1 left to the holder when `kept`).
fn release(source: &mut PcscSource, kept: bool) {
    for note in source.release(kept) {
        eprintln!("cardecrypt-gpg: {note}");
    }
}

/// Errors that mean "this is not a message for a card here": the real gpg may still have a
/// software key for it, or it is not encrypted at all.
fn not_for_a_card(e: &Error) -> bool {
    matches!(
        e,
        Error::NoMatchingKey { .. }
            | Error::NoService(_)
            | Error::NoReader
            | Error::NoCard { .. }
            | Error::CardNotFound { .. }
            | Error::PasswordOnly
            | Error::NotOpenPgp(_)
            | Error::Unencrypted
    )
}

/// gpg's loopback protocol: a command descriptor to answer on and no pinentry asked for. As
/// gpg 2 does, only with `--pinentry-mode loopback`: GPGME passes a command descriptor for
/// other questions too, and a client that did not ask for loopback has no PIN to give there.
pub(super) fn loopback(call: &DecryptCall) -> Option<Loopback> {
    let mode_allows = call.pinentry_mode.as_deref() == Some("loopback");
    match (
        mode_allows,
        call.command_fd,
        call.status_fd,
        call.passphrase_fd,
    ) {
        (true, Some(command_fd), Some(_), None) => Some(Loopback {
            status_fd: call.status_fd,
            command_fd,
            asked: false,
        }),
        _ => None,
    }
}

/// The message as a regular file, at its start: a named regular file as it is; anything
/// else (standard input, a descriptor, a FIFO) copied into an unnamed file first. The copy
/// holds ciphertext only, in `$TMPDIR`, mode 0600, gone when the process ends.
pub(super) fn read_message(call: &DecryptCall) -> Result<File> {
    let what = |e| Error::io("cannot read the message", e);
    let mut input = match &call.source {
        None | Some(Source::Stdin) => std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .map(File::from),
        Some(Source::Fd(fd)) => crate::paths::open_fd(*fd, false),
        Some(Source::Path(p)) => File::open(p),
    }
    .map_err(what)?;
    if matches!(call.source, Some(Source::Path(_))) && input.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(input);
    }
    let mut copy = unnamed_copy()?;
    std::io::copy(&mut input, &mut copy).map_err(what)?;
    copy.rewind().map_err(what)?;
    Ok(copy)
}

/// Where the plaintext goes: `None` is standard output.
fn output_path(call: &DecryptCall) -> Result<Option<PathBuf>> {
    match call.output.as_deref() {
        Some("-") => Ok(None),
        Some(path) => Ok(Some(PathBuf::from(path))),
        // gpg's implicit command writes FILE.gpg's plaintext to FILE.
        None if call.implicit => match &call.source {
            Some(Source::Path(p))
                if p.extension()
                    .is_some_and(|e| e == "gpg" || e == "pgp" || e == "asc") =>
            {
                Ok(Some(p.with_extension("")))
            }
            _ => Err(Error::Usage(
                "no output file name: give --output FILE or --decrypt".into(),
            )),
        },
        None => Ok(None),
    }
}

/// Our lines with the real gpg's signature lines in their place (after DECRYPTION_INFO,
/// before DECRYPTION_OKAY), as one gpg would write them.
fn write_status(call: &DecryptCall, lines: &[Status], inner_lines: &[String]) {
    let Ok(mut status) = StatusWriter::open(call.status_fd) else {
        return;
    };
    let (head, tail) = order::split(lines);
    for line in head {
        status.write(line);
    }
    status.write_raw(inner_lines);
    status.write_all(tail);
}

/// A failure: gpg's failure lines, one message on stderr, gpg's exit code.
fn fail(call: &DecryptCall, report: &Report, e: &Error) -> u8 {
    if let Ok(mut status) = StatusWriter::open(call.status_fd) {
        status.write_all(&report.status_lines(0, Err(e), false));
    }
    eprintln!("cardecrypt-gpg: decryption failed: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("cardecrypt-gpg: hint: {hint}");
    }
    GPG_FAILED
}

/// Hands the message to the real gpg as if it had been there from the start: a file is
/// named again; what came through a descriptor is put into an unnamed file (ciphertext)
/// that the real gpg reads instead.
fn forward(call: &DecryptCall, args: &[OsString], message: &File, real_gpg: &Path) -> u8 {
    let mut args = args.to_vec();
    let handed = |e: std::io::Error| Error::io("cannot hand the message on", e);
    let result = match &call.source {
        Some(Source::Path(_)) => Ok(()),
        source => message
            .try_clone()
            .and_then(|mut copy| copy.rewind().map(|()| copy))
            .map_err(handed)
            .and_then(|copy| match source {
                Some(Source::Fd(_)) => {
                    rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty())
                        .map_err(|e| handed(e.into()))?;
                    // Kept open across exec: the real gpg reads it.
                    let fd = std::os::fd::IntoRawFd::into_raw_fd(copy);
                    if let Some(i) = call.source_index {
                        args[i] = OsString::from(format!("-&{fd}"));
                    }
                    Ok(())
                }
                _ => rustix::stdio::dup2_stdin(&copy).map_err(|e| handed(e.into())),
            }),
    };
    if let Err(e) = result {
        return fail(call, &Report::default(), &e);
    }
    let e = real::exec(real_gpg, &args);
    fail(call, &Report::default(), &e)
}

/// An unnamed temporary file for a copy of the message.
fn unnamed_copy() -> Result<File> {
    let dir = std::env::temp_dir();
    crate::output::unnamed_file(&dir).map_err(|e| {
        Error::io(
            format!("cannot make a temporary file in {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    fn call(args: &[&str]) -> DecryptCall {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match super::super::args::parse(&args) {
            super::super::args::Call::Decrypt(call) => *call,
            _ => panic!("not a decrypt call: {args:?}"),
        }
    }

    #[test]
    fn the_command_descriptor_carries_the_pin_only_in_loopback_mode() {
        let base = ["--status-fd", "1", "--command-fd", "0", "--decrypt"];
        assert!(loopback(&call(&base)).is_none());
        let mut looped = base.to_vec();
        looped.extend(["--pinentry-mode", "loopback"]);
        assert!(loopback(&call(&looped)).is_some());
        for mode in ["error", "cancel", "ask"] {
            let mut other = base.to_vec();
            other.extend(["--pinentry-mode", mode]);
            assert!(loopback(&call(&other)).is_none(), "{mode}");
        }
    }
}

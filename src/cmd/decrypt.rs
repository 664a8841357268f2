//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::{DecryptArgs, GpgCompat, ReadArgs},
    config::Config,
    decrypt::{self, DecryptOptions, Report},
    engine,
    error::{Error, Result},
    gpg_status::StatusWriter,
    output,
    prompt::{Loopback, Prompter},
    ui::Interaction,
    verify,
};

pub fn run(args: &DecryptArgs, verbose: bool) -> Result<()> {
    let config = Config::load()?;
    let loopback = loopback(&args.gpg, args.status_fd);
    let mut pin = super::pin_policy(&args.read.pin, args.gpg.passphrase_fd);
    // The caller that speaks the loopback protocol is asked, --batch or not (as gpg does).
    pin.batch &= loopback.is_none();
    let mut options = options(&args.read, pin, &config, verbose)?;
    // A person watching a large file: only on a terminal, never for a mail client.
    if args.status_fd.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        options.progress = Some(std::sync::Arc::new(draw_progress));
    }
    let input = engine::Input::open(args.file.as_deref())?;
    let mut ui = Prompter {
        pinentry: config.pinentry.clone(),
        loopback,
        ..Prompter::default()
    };
    let mut status = StatusWriter::open(args.status_fd)?;
    let mut report = Report::default();
    let overwrite = args.read.overwrite || args.gpg.yes;
    let result = decrypt_to(
        input,
        args.read.output.as_deref(),
        overwrite,
        &mut ui,
        &options,
        &mut report,
    );
    let pin_announced = ui.loopback.as_ref().is_some_and(|l| l.asked);
    if status.is_open() {
        let lines = match &result {
            Ok(len) => report.status_lines(*len, Ok(()), pin_announced),
            Err(e) => report.status_lines(0, Err(e), pin_announced),
        };
        status.write_all(&lines);
    }
    result?;
    weak_cipher_note(&report, &mut ui);
    keep_unlocked(&args.read, &config, &report, verbose, &mut ui);
    let have_certs = !options.signer_certs.is_empty();
    for check in &report.signatures {
        ui.note(&check.summary(have_certs));
    }
    if verbose {
        ui.note(&format!(
            "decrypted with card {} key {} using {} APDUs",
            report.card, report.key_fingerprint, report.apdus
        ));
    }
    Ok(())
}

/// The one line for a message in an old cipher: it decrypted, but the sender should know.
pub(crate) fn weak_cipher_note(report: &Report, ui: &mut dyn Interaction) {
    if let Some(weak) = report.weak_cipher {
        ui.note(&format!(
            "note: encrypted with {weak}: read it, but ask the sender to update their \
             OpenPGP program"
        ));
    }
}

/// One progress line on the terminal, redrawn in place and cleared when a pass ends.
fn draw_progress(phase: &'static str, done: u64, total: u64) {
    let percent = done.saturating_mul(100) / total.max(1);
    if done >= total {
        eprint!("\r\x1b[K");
    } else {
        eprint!(
            "\r\x1b[Kcardecrypt: {phase} {percent}% of {} MiB",
            total >> 20
        );
    }
}

/// gpg's loopback protocol, when the caller gave a command descriptor to answer on and a
/// status descriptor to ask on, no passphrase descriptor, and did not ask for pinentry
/// (`--pinentry-mode ask`). EasyPG passes `--command-fd 0` with or without loopback mode
/// and answers `GET_HIDDEN` either way; Evolution never names a mode.
pub(crate) fn loopback(gpg: &GpgCompat, status_fd: Option<i32>) -> Option<Loopback> {
    let mode_allows = matches!(gpg.pinentry_mode.as_deref(), None | Some("loopback"));
    match (mode_allows, gpg.command_fd, status_fd, gpg.passphrase_fd) {
        (true, Some(command_fd), Some(_), None) => Some(Loopback {
            status_fd,
            command_fd,
            asked: false,
        }),
        _ => None,
    }
}

/// Decrypt options from the command line and the config file.
pub(crate) fn options(
    read: &ReadArgs,
    pin: crate::card::pin::PinPolicy,
    config: &Config,
    verbose: bool,
) -> Result<DecryptOptions> {
    let mut keyrings = config.signer_certs.clone();
    keyrings.extend(read.signer_certs.iter().cloned());
    Ok(DecryptOptions {
        card: read.card.card.clone(),
        pin,
        trace: verbose,
        key_cache: pubkey::default_cache_dir(),
        signer_certs: verify::load_certs(&keyrings)?,
        spool_dir: read.spool_dir.clone(),
        unwrap: false,
        progress: None,
    })
}

/// After a decrypt that succeeded: leave the card unlocked if asked (command line, else
/// config file). Holding the card cannot spoil that decrypt, so a failure here is a note,
/// not an error.
pub(crate) fn keep_unlocked(
    read: &ReadArgs,
    config: &Config,
    report: &Report,
    verbose: bool,
    ui: &mut dyn Interaction,
) {
    let keep = read.keep_unlocked.or(config.keep_unlocked);
    let Some(keep) = keep.filter(|k| !k.is_zero()) else {
        return;
    };
    if report.card.is_empty() {
        return;
    }
    match crate::card::holder::start(&report.reader, &report.card, keep) {
        Ok(()) if verbose => ui.note(&format!(
            "card {} stays unlocked for {} s (cardecrypt lock ends it)",
            report.card,
            keep.as_secs()
        )),
        Ok(()) => {}
        Err(e) => ui.note(&format!("cannot keep the card unlocked: {e}")),
    }
}

/// Decrypts to FILE (new, 0600, named only once complete), into an existing device or FIFO
/// (after authentication, as gpg does), or to standard output.
fn decrypt_to(
    input: engine::Input,
    path: Option<&std::path::Path>,
    overwrite: bool,
    ui: &mut dyn Interaction,
    options: &DecryptOptions,
    report: &mut Report,
) -> Result<u64> {
    let path = path.filter(|p| *p != std::path::Path::new("-"));
    let mut source = PcscSource;
    match path {
        Some(path) if matches!(output::existing(path), output::Existing::Special) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            let dest = engine::Dest::Stream(&mut file);
            decrypt::decrypt_to(input, dest, &mut source, ui, options, report)
        }
        Some(path) => {
            let dest = engine::Dest::File(output::PendingFile::create(path, overwrite)?);
            decrypt::decrypt_to(input, dest, &mut source, ui, options, report)
        }
        None => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let n = decrypt::decrypt_to(
                input,
                engine::Dest::Stream(&mut out),
                &mut source,
                ui,
                options,
                report,
            )?;
            out.flush()
                .map_err(|e| Error::io("cannot write to standard output", e))?;
            Ok(n)
        }
    }
}

/// Writes complete output to FILE (new, 0600) or standard output.
pub(crate) fn write_out(
    path: Option<&std::path::Path>,
    overwrite: bool,
    data: &[u8],
) -> Result<()> {
    match path {
        Some(path) if path != std::path::Path::new("-") => {
            output::write_file(path, data, overwrite)
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("cannot write to standard output", e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn other_gpg_front_ends_parse() {
        // Emacs EasyPG (epg.el), then Evolution (camel-gpg-context.c), then aerc.
        let lines: [&[&str]; 3] = [
            &[
                "--no-tty",
                "--status-fd",
                "1",
                "--yes",
                "--enable-progress-filter",
                "--command-fd",
                "0",
                "--output",
                "out",
                "--pinentry-mode",
                "loopback",
                "--decrypt",
                "--",
                "msg.gpg",
            ],
            &[
                "--verbose",
                "--no-secmem-warning",
                "--no-greeting",
                "--no-tty",
                "--status-fd=3",
                "--command-fd=4",
                "--decrypt",
                "--output",
                "-",
            ],
            &[
                "--status-fd",
                "2",
                "--log-file",
                "/dev/null",
                "--batch",
                "--decrypt",
            ],
        ];
        let speaks_loopback: Vec<bool> = lines
            .iter()
            .map(|args| {
                let cli = Cli::try_parse_from(std::iter::once(&"cardecrypt").chain(*args))
                    .expect("gpg front end's line");
                assert!(cli.command.is_none());
                loopback(&cli.decrypt.gpg, cli.decrypt.status_fd).is_some()
            })
            .collect();
        assert_eq!(speaks_loopback, [true, true, false]);
        let ask = Cli::try_parse_from([
            "cardecrypt",
            "--status-fd=1",
            "--command-fd=0",
            "--pinentry-mode=ask",
        ])
        .expect("parse");
        assert!(loopback(&ask.decrypt.gpg, ask.decrypt.status_fd).is_none());
    }
}

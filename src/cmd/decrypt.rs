//! `cardecrypt [FILE]`: decrypt one message.

use std::io::Write;

use crate::{
    card::{pubkey, PcscSource},
    cli::{DecryptArgs, GpgCompat, ReadArgs},
    config::Config,
    decrypt::GivenKey,
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
        let line = ProgressLine::default();
        options.progress = Some(std::sync::Arc::new(move |phase, done, total| {
            line.draw(phase, done, total)
        }));
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
    let mut source = PcscSource::keeping_pw1(keep_asked(&args.read, &config).is_some());
    let result = decrypt_to(
        input,
        args.read.output.as_deref(),
        overwrite,
        &mut source,
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
    if result.is_err() {
        release(&mut source, false, &mut ui);
    }
    result?;
    weak_cipher_note(&report, &mut ui);
    let kept = keep_unlocked(&args.read, &config, &report, &source, verbose, &mut ui);
    release(&mut source, kept, &mut ui);
    let have_certs = !options.signer_certs.is_empty();
    for check in &report.signatures {
        ui.note(&check.summary(have_certs));
    }
    session_key_note(&report, &mut ui);
    if verbose {
        for why in &report.skipped {
            ui.note(&format!("note: {why}"));
        }
        ui.note(&format!(
            "decrypted with card {} key {} using {} APDUs",
            report.card, report.key_fingerprint, report.apdus
        ));
    }
    Ok(())
}

/// `--show-session-key`: the key, as gpg prints it.
pub(crate) fn session_key_note(report: &Report, ui: &mut dyn Interaction) {
    if let Some(key) = &report.session_key {
        ui.note(&format!("session key: '{}'", &*key.0));
    }
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

/// One progress line on the terminal, redrawn in place and cleared when a pass ends: the
/// phase, a bar, how much, the rate and the time left.
#[derive(Default)]
struct ProgressLine {
    /// The phase being drawn and when it started.
    phase: std::sync::Mutex<Option<(&'static str, std::time::Instant)>>,
}

impl ProgressLine {
    fn draw(&self, phase: &'static str, done: u64, total: u64) {
        let Ok(mut current) = self.phase.lock() else {
            return;
        };
        let started = match *current {
            Some((p, t)) if p == phase => t,
            _ => {
                let now = std::time::Instant::now();
                *current = Some((phase, now));
                now
            }
        };
        if done >= total {
            eprint!("\r\x1b[K");
        } else {
            eprint!(
                "\r\x1b[K{}",
                progress_text(phase, done, total, started.elapsed())
            );
        }
    }
}

/// `cardecrypt: checking [#####...........]  35% 90/256 MiB 812 MiB/s 0:01 left` (at most
/// 80 columns; sizes in GiB from 10 GiB on).
fn progress_text(phase: &str, done: u64, total: u64, elapsed: std::time::Duration) -> String {
    const WIDTH: u64 = 16;
    let total = total.max(1);
    let done = done.min(total);
    let filled = (done * WIDTH / total) as usize;
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    );
    let amount = if total >= 10 << 30 {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        format!("{:.1}/{:.1} GiB", gib(done), gib(total))
    } else {
        format!("{}/{} MiB", done >> 20, total >> 20)
    };
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.05 && done > 0 {
        let per_sec = done as f64 / secs;
        let left = ((total - done) as f64 / per_sec).ceil() as u64;
        format!(
            " {:.0} MiB/s {}:{:02} left",
            per_sec / f64::from(1u32 << 20),
            left / 60,
            left % 60
        )
    } else {
        String::new()
    };
    format!(
        "cardecrypt: {phase} [{bar}] {:>3}% {amount}{rate}",
        done * 100 / total
    )
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
        max_plaintext: config.max_plaintext()?,
        show_session_key: read.show_session_key,
        session_key: read
            .override_session_key_fd
            .map(GivenKey::from_fd)
            .transpose()?
            .map(std::sync::Arc::new),
    })
}

/// After a decrypt that succeeded: leave the card unlocked if asked (command line, else
/// config file), by a holder that extends its time or starts. Only a PIN we sent, or one a
/// holder of ours already keeps, is kept: a card another program unlocked is not ours to
/// hold. Holding the card cannot spoil that decrypt, so a failure here is a note, not an
/// error. Returns whether a holder keeps the PIN.
pub(crate) fn keep_unlocked(
    read: &ReadArgs,
    config: &Config,
    report: &Report,
    source: &PcscSource,
    verbose: bool,
    ui: &mut dyn Interaction,
) -> bool {
    let ours = source.verified_in(&report.reader);
    let keep = keep_asked(read, config);
    match crate::card::holder::keep(&report.card, &report.reader, ours, keep) {
        Ok(true) => {
            if let (true, Some(keep)) = (verbose, keep) {
                ui.note(&format!(
                    "card {} stays unlocked for {} s (cardecrypt lock ends it)",
                    report.card,
                    keep.as_secs()
                ));
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            ui.note(&format!("cannot keep the card unlocked: {e}"));
            false
        }
    }
}

/// How long the user asked the card to stay unlocked after a decrypt (command line, else
/// config file); `None` when not at all.
pub(crate) fn keep_asked(read: &ReadArgs, config: &Config) -> Option<std::time::Duration> {
    read.keep_unlocked
        .or(config.keep_unlocked)
        .filter(|k| !k.is_zero())
}

/// The end of a command that used cards: they forget the PINs we sent, PW1 left to the
/// holder when `kept`; a card that had to be reset for it is named in one line.
pub(crate) fn release(source: &mut PcscSource, kept: bool, ui: &mut dyn Interaction) {
    for note in source.release(kept) {
        ui.note(&note);
    }
}

/// Decrypts to FILE (new, 0600, named only once complete), into an existing device or FIFO
/// (after authentication, as gpg does), or to standard output.
fn decrypt_to(
    input: engine::Input,
    path: Option<&std::path::Path>,
    overwrite: bool,
    source: &mut PcscSource,
    ui: &mut dyn Interaction,
    options: &DecryptOptions,
    report: &mut Report,
) -> Result<u64> {
    let path = path.filter(|p| *p != std::path::Path::new("-"));
    match path {
        Some(path) if matches!(output::existing(path), output::Existing::Special) => {
            let mut file = output::open_special(path)?;
            let dest = engine::Dest::Stream(&mut file);
            decrypt::decrypt_to(input, dest, source, ui, options, report)
        }
        Some(path) => {
            let dest = engine::Dest::File(output::PendingFile::create(path, overwrite)?);
            decrypt::decrypt_to(input, dest, source, ui, options, report)
        }
        None => {
            crate::paths::widen_pipe(std::io::stdout());
            // Smaller than the engine's writes of the bulk, which then bypass it (no copy);
            // small writes (headers, short messages) are still gathered.
            let mut out = std::io::BufWriter::with_capacity(1 << 17, std::io::stdout().lock());
            let n = decrypt::decrypt_to(
                input,
                engine::Dest::Stream(&mut out),
                source,
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
    fn the_progress_line_has_a_bar_the_rate_and_the_time_left_in_80_columns() {
        use std::time::Duration;
        let line = progress_text("checking", 128 << 20, 256 << 20, Duration::from_millis(500));
        assert_eq!(
            line,
            "cardecrypt: checking [########........]  50% 128/256 MiB 256 MiB/s 0:01 left"
        );
        // Before a rate can be known: no rate, no estimate.
        let early = progress_text("writing", 0, 4 << 30, Duration::ZERO);
        assert_eq!(
            early,
            "cardecrypt: writing [................]   0% 0/4096 MiB"
        );
        // A long file: GiB, minutes left.
        let slow = progress_text("checking", 1 << 30, 40 << 30, Duration::from_secs(10));
        assert!(slow.ends_with("1.0/40.0 GiB 102 MiB/s 6:30 left"), "{slow}");
        // The widest: a fast pass over a big file with hours left is still one line.
        let wide = progress_text("checking", 9 << 30, 999 << 30, Duration::from_secs(3));
        for l in [line, early, slow, wide] {
            assert!(l.len() <= 80, "{} columns: {l}", l.len());
        }
    }

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
